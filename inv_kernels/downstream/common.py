"""The common form of a downstream task (docs/METHOD.md section 6) and the helpers its adapters share: items with optional
crop boxes, landmark remapping into the crop's pixel coordinates, seeded splits, and input checks.

A task is a list of trainval items and a list of test items. Each item is an image path, a target (a class index, or
a float vector of keypoint coordinates / latents) and an optional crop box (left, top, right, bottom) in source
pixels. Features are taken from ``crop(box)`` followed by the clean preprocessing Resize(resize_size) +
CenterCrop(out_size); keypoint targets are stored already mapped into that out_size x out_size frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from inv_kernels.data.folders import DECODE_ERRORS
from inv_kernels.transforms.resample import center_crop_start, resized_shape

MODES: tuple[str, ...] = ("paper", "corrected")
KINDS: tuple[str, ...] = ("classification", "regression")
METRICS: tuple[str, ...] = ("accuracy", "mean_per_class_accuracy", "r2")

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class TaskItem:
    """One image of a task.

    Attributes:
        path: the image file.
        target: the class index (classification) or a tuple of floats (regression; keypoints as x0, y0, x1, y1, ...
            in out_size-pixel crop coordinates).
        box: (left, top, right, bottom) crop in source pixels applied before Resize + CenterCrop (may extend past the
            image: the outside is black, as PIL's ``Image.crop``), or None for the whole image.
        visible: per target value, whether it is annotated as visible (LSP in corrected mode), else None.
    """

    path: str
    target: int | tuple[float, ...]
    box: Box | None = None
    visible: tuple[bool, ...] | None = None


@dataclass(frozen=True)
class DownstreamTask:
    """A downstream task: what to predict, how it is scored, and its trainval / test items.

    Attributes:
        name: the task's key (``cifar10``, ``caltech101``, ``flowers``, ``300w``, ``celeba``, ``leeds_sports_pose``,
            ``causal3dident``, or a folder's name); part of the feature cache key.
        kind: "classification" or "regression".
        metric: "accuracy", "mean_per_class_accuracy" or "r2" (uniform average over outputs).
        trainval, test: the items (non-empty). Trainval may hold repeats (Caltech101 in paper mode).
        root: the dataset folder. mode: "paper" or "corrected".
        out_size, resize_size: the preprocessing the keypoint targets were mapped for.
        classes: class names (classification). target_names: names of the regression outputs.
        skipped: images left out while building the task because even their header could not be read.
        notes: what this task does differently from the reference code (or why it matches it).

    Raises:
        ValueError: an unknown kind / metric / mode, or an empty split (named).
    """

    name: str
    kind: str
    metric: str
    trainval: tuple[TaskItem, ...]
    test: tuple[TaskItem, ...]
    root: str
    mode: str = "paper"
    out_size: int = 224
    resize_size: int = 224
    classes: tuple[str, ...] = ()
    target_names: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    notes: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"DownstreamTask {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.metric not in METRICS:
            raise ValueError(f"DownstreamTask {self.name!r}: metric must be one of {METRICS}, got {self.metric!r}")
        check_mode(f"DownstreamTask {self.name!r}", self.mode)
        for split in ("trainval", "test"):
            if len(getattr(self, split)) == 0:
                raise ValueError(f"DownstreamTask {self.name!r} (root {self.root}): the {split} split is empty")
        object.__setattr__(self, "trainval", tuple(self.trainval))
        object.__setattr__(self, "test", tuple(self.test))

    def items(self, split: str) -> tuple[TaskItem, ...]:
        """The items of ``split`` ("trainval" or "test")."""
        if split not in ("trainval", "test"):
            raise ValueError(f"DownstreamTask.items: split must be 'trainval' or 'test', got {split!r}")
        return getattr(self, split)

    def targets(self, split: str) -> np.ndarray:
        """The targets of ``split``: (n,) int64 class indices, or (n, T) float32 regression targets."""
        items = self.items(split)
        if self.kind == "classification":
            return np.asarray([it.target for it in items], dtype=np.int64)
        return np.asarray([it.target for it in items], dtype=np.float32).reshape(len(items), -1)

    def visibility(self, split: str) -> np.ndarray | None:
        """(n, T) bool visibility of the regression targets when the adapter recorded it, else None."""
        items = self.items(split)
        if any(it.visible is None for it in items):
            return None
        return np.asarray([it.visible for it in items], dtype=bool)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def check_mode(op: str, mode: object) -> str:
    if mode not in MODES:
        raise ValueError(f"{op}: mode must be 'paper' or 'corrected', got {mode!r}")
    return mode  # type: ignore[return-value]


def check_sizes(op: str, out_size: object, resize_size: object) -> tuple[int, int]:
    """out_size and resize_size (default: out_size) as positive ints with out_size <= resize_size."""
    resize_size = out_size if resize_size is None else resize_size
    for name, value in (("out_size", out_size), ("resize_size", resize_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{op}: {name} must be a positive int, got {value!r}")
    if out_size > resize_size:
        raise ValueError(f"{op}: out_size ({out_size}) must be <= resize_size ({resize_size})")
    return out_size, resize_size


def require_dir(op: str, path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{op}: {what} folder {str(path)!r} does not exist")
    if not path.is_dir():
        raise NotADirectoryError(f"{op}: {what} {str(path)!r} is not a folder")
    return path


def require_file(op: str, path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{op}: {what} file {str(path)!r} does not exist")
    return path


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from the image header, or None when the file cannot be read as an image."""
    try:
        with Image.open(path) as img:
            return img.size
    except DECODE_ERRORS:
        return None


def centre_square_box(width: int, height: int) -> Box:
    """The central square of side min(w, h), as torchvision's CenterCrop(min(w, h)) places it."""
    side = min(width, height)
    left, top = center_crop_start(width, side), center_crop_start(height, side)
    return (left, top, left + side, top + side)


def remap_points(points: np.ndarray, box: Box, out_size: int, resize_size: int) -> np.ndarray:
    """Maps source-pixel points into the frame of crop(box) -> Resize(resize_size) -> CenterCrop(out_size).

    Args:
        points: (K, 2) x, y in source pixels (continuous coordinates: pixel i covers [i, i + 1)).
        box: (left, top, right, bottom) crop in source pixels.

    Returns:
        (K, 2) float64 x, y in out_size-pixel crop coordinates.
    """
    left, top, right, bottom = box
    width, height = right - left, bottom - top
    new_h, new_w = resized_shape(height, width, resize_size)
    x0, y0 = center_crop_start(new_w, out_size), center_crop_start(new_h, out_size)
    pts = np.asarray(points, dtype=np.float64)
    x = (pts[:, 0] - left) * (new_w / width) - x0
    y = (pts[:, 1] - top) * (new_h / height) - y0
    return np.stack([x, y], axis=1)


def landmark_box(points: np.ndarray, mode: str, margin: float = 0.1) -> Box:
    """The face crop of 300W (docs/METHOD.md section 6).

    ``paper``: a square anchored at the landmarks' min-x / min-y with side max(bbox w, h) and no margin (the
    reference code; the face is off-centre). ``corrected``: a square centred on the landmark bbox, side
    max(w, h) * (1 + 2 margin). Coordinates rounded as PIL's crop rounds them.
    """
    pts = np.asarray(points, dtype=np.float64)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    side = float(max(hi - lo))
    if mode == "paper":
        left, top = lo
    else:
        side *= 1.0 + 2.0 * margin
        left, top = (lo + hi) / 2.0 - side / 2.0
    side_px = max(1, int(round(side)))
    left, top = int(round(left)), int(round(top))
    return (left, top, left + side_px, top + side_px)


def random_split(n: int, fractions: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Positions of a seeded random split: the first round(fractions * n) of ``RandomState(seed).permutation(n)``
    (kept in permutation order) and the rest."""
    perm = np.random.RandomState(seed).permutation(n).tolist()
    cut = int(round(fractions * n))
    return perm[:cut], perm[cut:]


def as_float_tuple(values) -> tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(values, dtype=np.float64).ravel())


def finite_or_raise(op: str, values: np.ndarray, where: str) -> None:
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{op}: non-finite annotation values in {where}")


__all__ = [
    "DownstreamTask",
    "MODES",
    "METRICS",
    "TaskItem",
    "centre_square_box",
    "landmark_box",
    "random_split",
    "remap_points",
]
