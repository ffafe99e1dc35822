"""Classification tasks from folder layouts (docs/METHOD.md section 6): any ImageFolder with ``train/`` and ``test/`` (or
``val/``) -- CIFAR-10 as JPEG folders and the generated classification set are instances -- Caltech101 and
Flowers102.

Modes (docs/METHOD.md section 12): Caltech101 trainval is 30 draws per class *with* replacement in ``paper`` mode and
without replacement in ``corrected`` mode; Flowers102 is scored by plain accuracy in ``paper`` mode (the reference
code's isinstance bug) and by mean per-class accuracy in ``corrected`` mode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inv_kernels.data.folders import ImageFolderIndex
from inv_kernels.downstream.common import (
    DownstreamTask,
    TaskItem,
    check_mode,
    check_sizes,
    require_dir,
    require_file,
)


def image_folder_task(
    root: str | Path,
    *,
    name: str | None = None,
    mode: str = "paper",
    out_size: int = 224,
    resize_size: int | None = None,
) -> DownstreamTask:
    """A classification task from ``root/train/<class>/*`` and ``root/test/<class>/*`` (or ``root/val/``).

    Args:
        root: the dataset folder. name: the task's key (default: the folder's name).
        mode: "paper" or "corrected" (no difference for a plain folder). out_size, resize_size: preprocessing
            (Resize(224) + CenterCrop(224) by default; CIFAR-10 is upsampled from 32 px as in the paper).

    Returns:
        A DownstreamTask scored by accuracy; classes are the train folder's class names.

    Raises:
        FileNotFoundError: root or both test/ and val/ missing. ValueError: empty folders (see ImageFolderIndex), or a
            test class that train lacks (named).
    """
    op = "image_folder_task"
    check_mode(op, mode)
    out_size, resize_size = check_sizes(op, out_size, resize_size)
    root = require_dir(op, Path(root), "dataset")
    train_dir = require_dir(op, root / "train", "train")
    test_dir = root / "test" if (root / "test").is_dir() else root / "val"
    if not test_dir.is_dir():
        raise FileNotFoundError(f"{op}: neither {str(root / 'test')!r} nor {str(root / 'val')!r} exists")
    train, test = ImageFolderIndex(train_dir), ImageFolderIndex(test_dir)
    unknown = sorted(set(test.classes) - set(train.classes))
    if unknown:
        raise ValueError(
            f"{op}: class folder(s) in {str(test_dir)!r} missing from {str(train_dir)!r}: {', '.join(unknown[:10])}"
        )
    lookup = {c: i for i, c in enumerate(train.classes)}
    trainval = [TaskItem(p, int(y)) for p, y in zip(train.paths, train.labels)]
    tests = [TaskItem(p, lookup[test.classes[y]]) for p, y in zip(test.paths, test.labels)]
    return DownstreamTask(
        name or root.name,
        "classification",
        "accuracy",
        tuple(trainval),
        tuple(tests),
        str(root),
        mode,
        out_size,
        resize_size,
        classes=train.classes,
        notes=f"ImageFolder train/ vs {test_dir.name}/",
    )


def cifar10_task(root: str | Path, **kwargs) -> DownstreamTask:
    """CIFAR-10 as JPEG folders ``root/train/<class>/*.jpg``, ``root/test/<class>/*.jpg``; as ``image_folder_task``."""
    return image_folder_task(root, name=kwargs.pop("name", "cifar10"), **kwargs)


def generated_classification_task(root: str | Path, **kwargs) -> DownstreamTask:
    """The generated classification set (``inv_kernels.data.generated_dataset("classification")``): an ImageFolder
    with train/ and test/, class = shape; as ``image_folder_task``."""
    return image_folder_task(root, name=kwargs.pop("name", "generated_classification"), **kwargs)


def caltech101_task(
    root: str | Path,
    *,
    mode: str = "paper",
    per_class: int = 30,
    seed: int = 0,
    out_size: int = 224,
    resize_size: int | None = None,
) -> DownstreamTask:
    """Caltech101 from ``root/101_ObjectCategories/<class>/*.jpg`` (102 classes with BACKGROUND_Google).

    Trainval: per class (sorted class order, one ``RandomState(seed)`` for all), ``per_class`` positions drawn with
    replacement in ``paper`` mode (``rng.choice(n_c, 30)``: repeats kept, fewer unique images) or without replacement
    in ``corrected`` mode (``min(per_class, n_c)`` distinct images). Test: every image of the class not drawn.
    Metric: mean per-class accuracy in both modes.

    Raises:
        FileNotFoundError: the folder is missing. ValueError: empty class folders; every image drawn (empty test).
    """
    op = "caltech101_task"
    check_mode(op, mode)
    out_size, resize_size = check_sizes(op, out_size, resize_size)
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f"{op}: per_class must be a positive int, got {per_class!r}")
    root = Path(root)
    index = ImageFolderIndex(require_dir(op, root / "101_ObjectCategories", "Caltech101 image"))
    labels = np.asarray(index.labels)
    rng = np.random.RandomState(seed)
    trainval, test = [], []
    for label in range(len(index.classes)):
        members = np.flatnonzero(labels == label)
        if mode == "paper":
            picks = rng.choice(len(members), per_class)
        else:
            picks = rng.choice(len(members), min(per_class, len(members)), replace=False)
        trainval += [TaskItem(index.paths[members[p]], label) for p in picks.tolist()]
        drawn = set(picks.tolist())
        test += [TaskItem(index.paths[m], label) for j, m in enumerate(members.tolist()) if j not in drawn]
    notes = (
        "30 per class drawn with replacement (reference code; repeats leak across CV folds)"
        if mode == "paper"
        else "30 per class drawn without replacement"
    )
    return DownstreamTask(
        "caltech101",
        "classification",
        "mean_per_class_accuracy",
        tuple(trainval),
        tuple(test),
        str(root),
        mode,
        out_size,
        resize_size,
        classes=index.classes,
        notes=notes,
    )


def _load_mat(op: str, path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    import scipy.io

    require_file(op, path, "annotation")
    try:
        mat = scipy.io.loadmat(path)
    except Exception as error:  # scipy raises several types for a broken .mat
        raise ValueError(f"{op}: cannot read {str(path)!r} as a MATLAB file: {error}") from None
    missing = [k for k in keys if k not in mat]
    if missing:
        raise ValueError(f"{op}: {str(path)!r} lacks the variable(s) {', '.join(missing)}")
    return {k: np.asarray(mat[k]).ravel() for k in keys}


def flowers102_task(
    root: str | Path, *, mode: str = "paper", out_size: int = 224, resize_size: int | None = None
) -> DownstreamTask:
    """Oxford Flowers102 from ``root/jpg/image_XXXXX.jpg``, ``root/imagelabels.mat`` (``labels``, 1-based, one per
    image) and ``root/setid.mat`` (``trnid``, ``valid``, ``tstid``: 1-based image ids).

    Trainval = trnid + valid (2 x 1,020), test = tstid (6,149). Metric: ``accuracy`` in ``paper`` mode (the
    reference code's bug: the ConcatDataset fails its isinstance test) and ``mean_per_class_accuracy`` in
    ``corrected`` mode. Classes are named "1".."102" (the label values).

    Raises:
        FileNotFoundError: a missing folder or .mat file. ValueError: an unreadable .mat or missing variable; an
            image id outside the labels; an id whose image file is missing (the .mat file, the row and the file named).
    """
    op = "flowers102_task"
    check_mode(op, mode)
    out_size, resize_size = check_sizes(op, out_size, resize_size)
    root = Path(root)
    image_dir = require_dir(op, root / "jpg", "Flowers102 image")
    labels = _load_mat(op, root / "imagelabels.mat", ("labels",))["labels"].astype(np.int64)
    setid_path = root / "setid.mat"
    ids = _load_mat(op, setid_path, ("trnid", "valid", "tstid"))
    present = {e.name for e in image_dir.iterdir()}
    values = sorted(set(labels.tolist()))
    lookup = {v: i for i, v in enumerate(values)}

    def items(keys: tuple[str, ...]) -> list[TaskItem]:
        out = []
        for key in keys:
            for row, image_id in enumerate(ids[key].astype(np.int64).tolist()):
                if not 1 <= image_id <= len(labels):
                    raise ValueError(
                        f"{op}: {str(setid_path)!r} {key}[{row}] = {image_id} is outside the "
                        f"{len(labels)} labels of imagelabels.mat"
                    )
                name = f"image_{image_id:05d}.jpg"
                if name not in present:
                    raise ValueError(
                        f"{op}: {str(setid_path)!r} {key}[{row}] = {image_id} names "
                        f"{str(image_dir / name)!r}, which is missing"
                    )
                out.append(TaskItem(str(image_dir / name), lookup[int(labels[image_id - 1])]))
        return out

    metric = "accuracy" if mode == "paper" else "mean_per_class_accuracy"
    notes = (
        "scored by plain accuracy (reference code's bug)"
        if mode == "paper"
        else "scored by mean per-class accuracy (the intended metric)"
    )
    return DownstreamTask(
        "flowers",
        "classification",
        metric,
        tuple(items(("trnid", "valid"))),
        tuple(items(("tstid",))),
        str(root),
        mode,
        out_size,
        resize_size,
        classes=tuple(str(v) for v in values),
        notes=notes,
    )
