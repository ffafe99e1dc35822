"""Features of image folders for measurement: clean views (``data.clean_views``) streamed through a feature
extractor, and the statistics pass.

Images are read by the rule every loader follows (``data.folders.load_image``): one that does not decode or is
under 2 x 2 pixels is left out, and the callers name it (``data.folders.skipped_among``)."""

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm import tqdm

from inv_kernels.data.clean_views import CleanViewDataset, collate_skipping
from inv_kernels.data.folders import ImageFolderIndex, UnusableImageError, load_image, skipped_among
from inv_kernels.stats import FeatureStats, RunningMoments


def sample_indices(num_items: int, count: int | None, *, seed: int, with_replacement: bool) -> list[int]:
    """The images to use: all (count None), or ``count`` drawn as the reference code does
    (``np.random.seed(seed); np.random.choice(num_items, count)``, with replacement) or without replacement."""
    if count is None:
        return list(range(num_items))
    rng = np.random.RandomState(seed)
    if with_replacement:
        return rng.choice(num_items, count).tolist()
    return sorted(rng.choice(num_items, min(count, num_items), replace=False).tolist())


@torch.no_grad()
def stream_features(
    extractor,
    paths,
    labels=None,
    *,
    out_size: int,
    resize_size: int,
    batch_size: int = 256,
    workers: int = 0,
    desc: str = "features",
    progress: bool = True,
):
    """Yields (features (B, D) float32 on the extractor's device, labels (B,), positions (B,)) batch by batch;
    unusable images are left out (their positions are missing)."""
    labels = labels if labels is not None else [0] * len(paths)
    dataset = CleanViewDataset(paths, labels, out_size=out_size, resize_size=resize_size)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_skipping)
    for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
        if batch is None:
            continue
        views, batch_labels, positions = batch
        yield extractor(views), batch_labels, positions


def path_features(
    extractor,
    paths,
    *,
    out_size: int,
    resize_size: int,
    batch_size: int = 256,
    workers: int = 0,
    desc: str = "features",
    progress: bool = True,
    ctx=None,
) -> tuple[Tensor, Tensor] | None:
    """Clean-view features of image files; under torchrun each process computes a contiguous block of ``paths`` (whole
    batches, so the batches are those of one process) and the main process gathers them in order.

    Args:
        extractor: images (B, 3, S, S) in [0, 1] -> features (B, D); ``info.feature_dim`` is D.
        paths: the N image files.
        ctx: the process's ``DistContext`` (None: a single process).

    Returns:
        On the main process (features (N', D) float32 CPU, positions (N',) int64: the indices in ``paths`` of the
        usable images, ascending); None on the others.
    """
    from inv_kernels.distributed import gather_positions, gather_rows, shard

    block = range(len(paths)) if ctx is None else shard(ctx, len(paths), batch_size)
    feats, kept = [torch.empty(0, extractor.info.feature_dim)], [torch.empty(0, dtype=torch.int64)]
    for batch, _, positions in stream_features(
        extractor,
        [paths[i] for i in block],
        out_size=out_size,
        resize_size=resize_size,
        batch_size=batch_size,
        workers=workers,
        desc=desc,
        progress=progress,
    ):
        feats.append(batch.float().cpu())
        kept.append(positions)
    features, positions = torch.cat(feats), torch.cat(kept)
    if ctx is None or ctx.world_size == 1:
        return features, positions + block.start
    gathered = gather_rows(ctx, features)
    positions = gather_positions(ctx, positions, block.start)
    return None if gathered is None else (gathered, positions)


def folder_moments(
    extractor,
    paths,
    *,
    out_size: int,
    resize_size: int,
    batch_size: int = 256,
    workers: int = 0,
    progress: bool = True,
    ctx=None,
) -> tuple[RunningMoments, list[tuple[str, str]]]:
    """Float64 streaming moments of the clean-view features of image files, over one or several processes.

    Under torchrun each process streams a contiguous block of ``paths`` (whole batches) and the blocks' moments are
    merged exactly in rank order (``RunningMoments.all_reduce``), so every process ends with the same moments, equal
    to a one-process pass up to float64 rounding.

    Args:
        extractor: images (B, 3, S, S) in [0, 1] -> features (B, D); ``info.feature_dim`` is D.
        paths: the image files.
        ctx: the process's ``DistContext`` (None: a single process).

    Returns:
        (RunningMoments of D features, (path, reason) of each unusable image, over all processes, in order).
    """
    from inv_kernels.distributed import all_gather_objects, shard

    block = range(len(paths)) if ctx is None else shard(ctx, len(paths), batch_size)
    mine = [paths[i] for i in block]
    moments, kept = RunningMoments(extractor.info.feature_dim), []
    for features, _, positions in stream_features(
        extractor,
        mine,
        out_size=out_size,
        resize_size=resize_size,
        batch_size=batch_size,
        workers=workers,
        desc="statistics",
        progress=progress,
    ):
        moments.update(features)
        kept += positions.tolist()
    skipped = skipped_among(mine, kept)
    if ctx is not None and ctx.world_size > 1:
        moments.all_reduce()
        skipped = [pair for block_skipped in all_gather_objects(ctx, skipped) for pair in block_skipped]
    return moments, skipped


def folder_statistics(
    extractor,
    index: ImageFolderIndex,
    *,
    out_size: int,
    resize_size: int,
    max_images: int | None = None,
    seed: int = 0,
    shrinkage="none",
    batch_size: int = 256,
    workers: int = 0,
    progress: bool = True,
    ctx=None,
) -> tuple[FeatureStats, list[tuple[str, str]]]:
    """Feature mean and covariance of a folder's clean views (docs/METHOD.md section 4), streamed in float64
    (``folder_moments``; ``ctx`` as there).

    Returns:
        (FeatureStats tagged with the extractor's model id, (path, reason) of each unusable image).
    """
    chosen = sample_indices(len(index), max_images, seed=seed, with_replacement=False)
    moments, skipped = folder_moments(
        extractor,
        [index.paths[i] for i in chosen],
        out_size=out_size,
        resize_size=resize_size,
        batch_size=batch_size,
        workers=workers,
        progress=progress,
        ctx=ctx,
    )
    return FeatureStats.from_moments(moments, shrinkage, model_id=extractor.info.model_id), skipped


def load_images(paths) -> tuple[list[Tensor], list[int]]:
    """Decodes the usable images (``load_image``) to (3, H, W) uint8 tensors; returns them and the positions of the
    unusable ones."""
    images, failed = [], []
    for i, path in enumerate(paths):
        try:
            images.append(load_image(path))
        except UnusableImageError:
            failed.append(i)
    return images, failed
