"""The built-in generated datasets: rendered scenes with known factors, made once per machine and cached.

``generated_dataset(kind)`` returns the folder of a complete set, rendering and writing it on first use (with a
progress bar) into the cache (``cache.cache_root()``), in a folder named by a hash of its settings. Every entry
point can use these as its default data: they need no download and their true factors of variation are known.
See docs/DATA.md for the layouts.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from inv_kernels.data.cache import build_atomically, cache_root, set_key
from inv_kernels.data.scenes import LATENT_NAMES, check_size
from inv_kernels.data.shapes import SHAPE_NAMES
from inv_kernels.data.writers import WRITERS, images_per_set

KINDS: tuple[str, ...] = tuple(WRITERS)  # classification, coil, aloi, latents
DEFAULT_SIZE = 64
# Images per class in the training split (classification, latents), or objects (coil, aloi).
DEFAULT_COUNTS: dict[str, int] = {"classification": 300, "coil": 20, "aloi": 20, "latents": 300}


def _check_args(op: str, kind: object, size: object, count: object, seed: object) -> int:
    """Validates the set's settings; returns the count (the kind's default when ``count`` is None)."""
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"{op}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    check_size(op, size)
    if count is None:
        count = DEFAULT_COUNTS[kind]
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(f"{op}: count must be an int, got {type(count).__name__}")
    if count < 1:
        raise ValueError(f"{op}: count must be >= 1, got {count}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"{op}: seed must be an int, got {type(seed).__name__}")
    return count


def write_dataset(
    kind: str,
    folder: str | Path,
    *,
    size: int = DEFAULT_SIZE,
    count: int | None = None,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> Path:
    """Writes one generated set at ``folder`` atomically (built beside it, then renamed); reuses it if complete.

    Args: as ``generated_dataset``, with ``folder`` the set's final place.

    Returns:
        ``folder`` as a Path, holding the set and its ``manifest.json``.
    """
    op = "write_dataset"
    count = _check_args(op, kind, size, count, seed)
    config = {"kind": kind, "size": size, "count": count, "seed": seed}
    manifest = {"kind": kind, "config": config, "latent_names": list(LATENT_NAMES), "shape_names": list(SHAPE_NAMES)}
    dev = torch.device(device) if device is not None else None

    def build(tmp: Path) -> dict:
        total = images_per_set(kind, count)
        with tqdm(total=total, desc=f"generating {kind} ({size}px)", unit="img", disable=not progress) as bar:
            return WRITERS[kind](tmp, size=size, count=count, seed=seed, bar=bar, device=dev)

    return build_atomically(Path(folder), build, manifest)


def generated_dataset(
    kind: str,
    *,
    size: int = DEFAULT_SIZE,
    count: int | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> Path:
    """The folder of a generated set, rendered into the cache on first use (deterministic in its settings).

    Args:
        kind: "classification" (ImageFolder ``train/`` and ``test/`` of JPEGs, class = shape), "coil" (turntables,
            ``obj<o>__<angle>.png``), "aloi" (``illumination/``, ``temperature/``, ``viewpoint/`` groups) or
            "latents" (Causal3DIdent ``trainset/`` and ``testset/`` with ``latents_<c>.npy``).
        size: image side in pixels, in [16, 512].
        count: images per class in the training split (classification, latents; the test split gets count // 4,
            at least 1) or number of objects (coil, aloi); >= 1. Default ``DEFAULT_COUNTS[kind]``.
        seed: the seed every scene is drawn from.
        cache_dir: where sets live; default ``cache.cache_root()`` (honours $INV_KERNELS_CACHE, $XDG_CACHE_HOME).
        progress: show a tqdm progress bar while generating.
        device: where to render; default the GPU when present, else the CPU. Not part of the set's identity.

    Returns:
        The set's folder: the root its real-world adapter takes (for classification, ImageFolder reads
        ``<folder>/train``), holding a ``manifest.json`` with the settings and counts.

    Raises:
        ValueError: unknown kind, size outside [16, 512], count < 1. TypeError: non-int size, count or seed.
    """
    count = _check_args("generated_dataset", kind, size, count, seed)
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    name = f"{kind}-{size}px-{set_key({'kind': kind, 'size': size, 'count': count, 'seed': seed})}"
    return write_dataset(
        kind, root / "generated" / name, size=size, count=count, seed=seed, progress=progress, device=device
    )
