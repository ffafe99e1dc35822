"""Causal3DIdent-layout tasks (docs/METHOD.md section 5): ``trainset/`` and ``testset/``, each with ``images_<c>/``
folders and ``latents_<c>.npy`` (N_c x 10 normalised latents); the image order is the concatenation over classes c
of the sorted file names, row for row with the latents files. The generated latent set
(``inv_kernels.data.generated_dataset("latents")``) has the same layout.

Trainval: ``max_trainval`` images drawn without replacement with a fixed seed (the reference code takes the first
320 batches of 64 of a shuffled loader with no seed: 20,480 random images); test: the whole test set.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from inv_kernels.data.folders import IMG_EXTENSIONS
from inv_kernels.data.scenes import LATENT_NAMES
from inv_kernels.downstream.common import DownstreamTask, TaskItem, check_mode, check_sizes, require_dir

PAPER_TRAINVAL = 20480


def _read_split(op: str, folder: Path) -> tuple[list[str], list[int], np.ndarray]:
    """Paths, class indices and (n, 10) latents of one split folder."""
    require_dir(op, folder, "Causal3DIdent split")
    classes = sorted(
        (int(m.group(1)), e.name)
        for e in os.scandir(folder)
        if e.is_dir() and (m := re.fullmatch(r"images_(\d+)", e.name))
    )
    if not classes:
        raise ValueError(f"{op}: {str(folder)!r} holds no images_<c>/ folders")
    paths, labels, latents = [], [], []
    for c, name in classes:
        files = sorted(f for f in os.listdir(folder / name) if f.lower().endswith(IMG_EXTENSIONS))
        lat_path = folder / f"latents_{c}.npy"
        if not lat_path.is_file():
            raise FileNotFoundError(f"{op}: latents file {str(lat_path)!r} for {str(folder / name)!r} does not exist")
        try:
            lat = np.load(lat_path)
        except (OSError, ValueError) as error:
            raise ValueError(f"{op}: cannot read {str(lat_path)!r}: {error}") from None
        if lat.ndim != 2 or lat.shape[1] != len(LATENT_NAMES):
            raise ValueError(f"{op}: {str(lat_path)!r} has shape {lat.shape}, expected (N, {len(LATENT_NAMES)})")
        if lat.shape[0] != len(files):
            raise ValueError(
                f"{op}: {str(lat_path)!r} has {lat.shape[0]} rows but {str(folder / name)!r} holds {len(files)} images"
            )
        if not np.all(np.isfinite(lat)):
            row = int(np.argwhere(~np.isfinite(lat))[0, 0])
            raise ValueError(f"{op}: {str(lat_path)!r} holds NaN or Inf (first in row {row})")
        paths += [str(folder / name / f) for f in files]
        labels += [c] * len(files)
        latents.append(lat.astype(np.float32))
    return paths, labels, np.concatenate(latents)


def causal3dident_task(
    root: str | Path,
    *,
    target: int | str | list[int] = "all",
    mode: str = "paper",
    max_trainval: int | None = PAPER_TRAINVAL,
    seed: int = 0,
    name: str = "causal3dident",
    out_size: int = 224,
    resize_size: int | None = None,
) -> DownstreamTask:
    """A task on a Causal3DIdent-layout folder.

    Args:
        root: holds ``trainset/`` and ``testset/``.
        target: a latent index 0..9 (``LATENT_NAMES``), a list of indices, "all" (the 10 latents, R^2 averaged), or
            "class" (the object class, accuracy).
        mode: "paper" or "corrected" (the same here: the reference code's only difference is its missing seed).
        max_trainval: how many training images to draw (without replacement, ``RandomState(seed)``); None for all.

    Raises:
        FileNotFoundError: a missing split folder or latents file. ValueError: latents rows that disagree with the
            images (the file named), a bad target.
    """
    op = "causal3dident_task"
    check_mode(op, mode)
    out_size, resize_size = check_sizes(op, out_size, resize_size)
    root = Path(root)
    require_dir(op, root, "dataset")
    if target == "class":
        cols = None
    elif target == "all":
        cols = list(range(len(LATENT_NAMES)))
    else:
        cols = [target] if isinstance(target, int) and not isinstance(target, bool) else target
        if (
            not isinstance(cols, (list, tuple))
            or not cols
            or not all(isinstance(c, int) and 0 <= c < len(LATENT_NAMES) for c in cols)
        ):
            raise ValueError(f"{op}: target must be 'class', 'all', or latent indices in 0..9, got {target!r}")
        cols = list(cols)
    splits = {}
    for split, folder in (("trainval", "trainset"), ("test", "testset")):
        paths, labels, lat = _read_split(op, root / folder)
        if cols is None:
            items = [TaskItem(p, int(y)) for p, y in zip(paths, labels)]
        else:
            items = [TaskItem(p, tuple(float(v) for v in row)) for p, row in zip(paths, lat[:, cols])]
        splits[split] = items
    if max_trainval is not None and max_trainval < len(splits["trainval"]):
        chosen = np.sort(np.random.RandomState(seed).choice(len(splits["trainval"]), max_trainval, replace=False))
        splits["trainval"] = [splits["trainval"][i] for i in chosen.tolist()]
    if cols is None:
        n_cls = 1 + max(it.target for it in splits["trainval"] + splits["test"])
        return DownstreamTask(
            name,
            "classification",
            "accuracy",
            tuple(splits["trainval"]),
            tuple(splits["test"]),
            str(root),
            mode,
            out_size,
            resize_size,
            classes=tuple(str(c) for c in range(n_cls)),
            notes="target: object class",
        )
    return DownstreamTask(
        name,
        "regression",
        "r2",
        tuple(splits["trainval"]),
        tuple(splits["test"]),
        str(root),
        mode,
        out_size,
        resize_size,
        target_names=tuple(LATENT_NAMES[c] for c in cols),
        notes=f"target: latents {cols}; trainval {len(splits['trainval'])} drawn with seed {seed}",
    )


def generated_latents_task(root: str | Path, **kwargs) -> DownstreamTask:
    """The generated latent set as a task; as ``causal3dident_task`` (default name "generated_latents")."""
    return causal3dident_task(root, name=kwargs.pop("name", "generated_latents"), **kwargs)
