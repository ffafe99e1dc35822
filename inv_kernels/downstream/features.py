"""Frozen features of a downstream task, with a disk cache.

Each item's image is decoded, cropped to its box (if any), then given the clean preprocessing Resize(resize_size) +
CenterCrop(out_size) (docs/METHOD.md section 3: Resize(224) + CenterCrop(224) downstream; CIFAR-10 upsampled from 32 px),
and passed through the extractor (bf16 autocast and channels_last on a GPU, ``FeatureExtractor``). An image that does
not decode or is under 2 x 2 pixels (the rule of every loader, ``data.folders.load_image``), or whose crop box is
under 2 x 2 pixels, is left out of X and y alike and named with the reason (``TaskFeatures.skipped_files``).

Cache: ``<cache_dir>/<task name>-<key>.pt``, with key a hash of (extractor.info.model_id -- the checkpoint's file name
and SHA-256 prefix --, the task's name, root and mode, the item paths and boxes per split, out_size, resize_size).
It holds fp16 features (fp32 when a value would overflow fp16) and the positions of the images that decoded; it is
written atomically, so a crash leaves no partial file (``inv_kernels.feature_cache``, shared with measurement). The
features returned are those stored, so a cached and a fresh call give identical arrays. Images changed in place
under the same path are not detected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm import tqdm

from inv_kernels.data.clean_views import CleanViewDataset, collate_skipping
from inv_kernels.data.folders import UnusableImageError, size_problem, skipped_among, unusable_reason
from inv_kernels.downstream.common import DownstreamTask, TaskItem, check_sizes
from inv_kernels.feature_cache import config_key, default_cache_dir, read_entry, to_storage, write_entry
from inv_kernels.hashing import digest_lines

CACHE_VERSION = 1


def crop_image(image: Tensor, box: tuple[int, int, int, int] | None) -> Tensor:
    """Crops (3, H, W) to box (left, top, right, bottom); the part outside the image is zero (as PIL's crop).

    Returns:
        (3, bottom - top, right - left), the image's dtype.
    """
    if box is None:
        return image
    left, top, right, bottom = box
    _, height, width = image.shape
    if left >= 0 and top >= 0 and right <= width and bottom <= height:
        return image[:, top:bottom, left:right]
    out = torch.zeros(image.shape[0], bottom - top, right - left, dtype=image.dtype)
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(right, width), min(bottom, height)
    if x1 > x0 and y1 > y0:
        out[:, y0 - top : y1 - top, x0 - left : x1 - left] = image[:, y0:y1, x0:x1]
    return out


def box_problem(box: tuple[int, int, int, int] | None) -> str | None:
    """Why a crop box (left, top, right, bottom) gives no usable view (under 2 x 2 pixels), else None."""
    if box is None:
        return None
    problem = size_problem(box[2] - box[0], box[3] - box[1])
    return None if problem is None else f"crop box {tuple(box)} is {problem}"


def skip_reason(item: TaskItem) -> str | None:
    """Why ``item`` gives no features: its image is unusable or its crop box too small; None when it does."""
    return unusable_reason(item.path) or box_problem(item.box)


class CropViewDataset(CleanViewDataset):
    """Item i: (view (3, out_size, out_size) float32 in [0, 1] of the image cropped to its box, 0, position i), or
    None when the image is unusable or its box is under 2 x 2 pixels."""

    def __init__(self, items: tuple[TaskItem, ...], *, out_size: int, resize_size: int):
        super().__init__([it.path for it in items], [0] * len(items), out_size=out_size, resize_size=resize_size)
        self.boxes = [it.box for it in items]

    def source(self, i: int, image: Tensor) -> Tensor:
        problem = box_problem(self.boxes[i])
        if problem is not None:
            raise UnusableImageError(self.paths[i], problem)
        return crop_image(image, self.boxes[i])


@dataclass
class TaskFeatures:
    """Features and targets of a task; unpacks as ``X_trainval, y_trainval, X_test, y_test``.

    Attributes:
        X_trainval: (n, D) float32. y_trainval: (n,) int64 classes or (n, T) float32 targets. X_test, y_test: alike.
        kept_trainval, kept_test: (n,) int64 positions of the rows in ``task.trainval`` / ``task.test`` (the
            unusable images are left out of X and y alike).
        skipped: {"trainval": count, "test": count} of the items left out. skipped_paths: their files.
        skipped_files: {"trainval": [(path, reason)], "test": [...]}, each file once.
        cache_path: the cache file (None without a cache). from_cache: whether it was read rather than computed.
    """

    X_trainval: Tensor
    y_trainval: Tensor
    X_test: Tensor
    y_test: Tensor
    kept_trainval: Tensor
    kept_test: Tensor
    skipped: dict = field(default_factory=dict)
    skipped_paths: list = field(default_factory=list)
    skipped_files: dict = field(default_factory=dict)
    cache_path: Path | None = None
    from_cache: bool = False

    def __iter__(self):
        return iter((self.X_trainval, self.y_trainval, self.X_test, self.y_test))


def _items_digest(items: tuple[TaskItem, ...]) -> str:
    return digest_lines(f"{it.path}\0{it.box}" for it in items)


def cache_key(model_id: str, task: DownstreamTask, out_size: int, resize_size: int) -> tuple[str, dict]:
    """(24 hex digits, the config they hash) identifying a task's features under one model and preprocessing."""
    config = {
        "version": CACHE_VERSION,
        "model_id": model_id,
        "task": task.name,
        "root": str(task.root),
        "mode": task.mode,
        "trainval": _items_digest(task.trainval),
        "test": _items_digest(task.test),
        "out_size": out_size,
        "resize_size": resize_size,
    }
    return config_key(config), config


@torch.no_grad()
def _extract(extractor, items, *, out_size, resize_size, batch_size, workers, desc, progress):
    dataset = CropViewDataset(items, out_size=out_size, resize_size=resize_size)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate_skipping,
        pin_memory=getattr(extractor, "device", torch.device("cpu")).type == "cuda",
    )
    feats, kept = [], []
    for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
        if batch is None:
            continue
        views, _, positions = batch  # (B, 3, S, S), labels, (B,)
        out = extractor(views)  # (B, D)
        feats.append(out.float().cpu())
        kept.append(positions)
    if not feats:
        return None, torch.zeros(0, dtype=torch.int64)
    return torch.cat(feats), torch.cat(kept)


def _targets(task: DownstreamTask, split: str, kept: Tensor) -> Tensor:
    y = torch.from_numpy(task.targets(split))
    return y[kept]


def task_features(
    extractor,
    task: DownstreamTask,
    *,
    out_size: int | None = None,
    resize_size: int | None = None,
    batch_size: int = 64,
    workers: int = 0,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    progress: bool = True,
) -> TaskFeatures:
    """Features of every trainval and test item of ``task``, read from the cache when present.

    Args:
        extractor: a ``FeatureExtractor`` (callable (B, 3, S, S) in [0, 1] -> (B, D), with ``info.model_id``).
        task: a DownstreamTask.
        out_size, resize_size: default the task's (keypoint targets are in that frame, so a regression task with crop
            boxes refuses others).
        batch_size, workers: DataLoader settings. cache_dir: default ``default_cache_dir()``. use_cache: False
            computes and writes nothing. progress: a tqdm bar per split.

    Returns:
        TaskFeatures (unpacks as X_trainval (n, D) float32, y_trainval, X_test (m, D) float32, y_test).

    Raises:
        ValueError: sizes that differ from the task's for a regression task with crop boxes; a split where no image
            is usable (the task and the first file named, with the reason); non-finite features from the extractor.
    """
    op = "task_features"
    if not isinstance(task, DownstreamTask):
        raise TypeError(f"{op}: task must be a DownstreamTask, got {type(task).__name__}")
    out_size = task.out_size if out_size is None else out_size
    resize_size = (task.resize_size if out_size == task.out_size else out_size) if resize_size is None else resize_size
    out_size, resize_size = check_sizes(op, out_size, resize_size)
    if (
        task.kind == "regression"
        and any(it.box is not None for it in task.trainval)
        and ((out_size, resize_size) != (task.out_size, task.resize_size))
    ):
        raise ValueError(
            f"{op}: task {task.name!r} has keypoint targets in the frame of out_size={task.out_size}, "
            f"resize_size={task.resize_size}; got out_size={out_size}, resize_size={resize_size} "
            f"(build the task with those sizes instead)"
        )
    key, config = cache_key(extractor.info.model_id, task, out_size, resize_size)
    path = None
    if use_cache:
        folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = folder / f"{task.name}-{key}.pt"
        stored = read_entry(path, config, op=op)
        if stored is not None:
            return _assemble(task, stored, path, from_cache=True)
    stored = {"config": config}
    for split in ("trainval", "test"):
        items = task.items(split)
        x, kept = _extract(
            extractor,
            items,
            out_size=out_size,
            resize_size=resize_size,
            batch_size=batch_size,
            workers=workers,
            desc=f"{task.name} {split}",
            progress=progress,
        )
        if x is None:
            raise ValueError(
                f"{op}: task {task.name!r}: no image of the {split} split is usable "
                f"(first: {items[0].path!r}: {skip_reason(items[0])})"
            )
        if not bool(torch.isfinite(x).all()):
            bad = int((~torch.isfinite(x)).any(dim=1).nonzero()[0, 0])
            raise ValueError(f"{op}: the extractor gave NaN/Inf features for {items[int(kept[bad])].path!r}")
        stored[split] = to_storage(x)
        stored[f"kept_{split}"] = kept
    if path is not None:
        write_entry(stored, path)
    return _assemble(task, stored, path, from_cache=False)


def _assemble(task: DownstreamTask, stored: dict, path: Path | None, *, from_cache: bool) -> TaskFeatures:
    kept_tv, kept_te = stored["kept_trainval"], stored["kept_test"]
    skipped_paths = [task.trainval[i].path for i in sorted(set(range(len(task.trainval))) - set(kept_tv.tolist()))]
    skipped_paths += [task.test[i].path for i in sorted(set(range(len(task.test))) - set(kept_te.tolist()))]
    skipped_files = {}
    for split, kept in (("trainval", kept_tv), ("test", kept_te)):
        items = task.items(split)
        skipped_files[split] = skipped_among(
            [it.path for it in items], kept.tolist(), lambda i, items=items: skip_reason(items[i])
        )
    return TaskFeatures(
        X_trainval=stored["trainval"].float(),
        y_trainval=_targets(task, "trainval", kept_tv),
        X_test=stored["test"].float(),
        y_test=_targets(task, "test", kept_te),
        kept_trainval=kept_tv,
        kept_test=kept_te,
        skipped={"trainval": len(task.trainval) - len(kept_tv), "test": len(task.test) - len(kept_te)},
        skipped_paths=skipped_paths,
        skipped_files=skipped_files,
        cache_path=path,
        from_cache=from_cache,
    )
