"""Features of image folders for measurement: the paper's clean preprocessing (Resize + CenterCrop, the same
``transforms.clean_view`` the synthetic views use), streamed through a feature extractor, and the statistics pass."""

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from inv_kernels.augment.folder import DECODE_ERRORS, ImageFolderIndex, decode_rgb
from inv_kernels.stats import FeatureStats, RunningMoments
from inv_kernels.transforms import clean_view


class CleanViewDataset(Dataset):
    """Item i: (clean view (3, out_size, out_size) float32 in [0, 1], label, position i), or None when the image
    cannot be decoded. ``paths`` and ``labels`` are parallel sequences."""

    def __init__(self, paths, labels, *, out_size: int, resize_size: int):
        self.paths, self.labels = list(paths), list(labels)
        self.out_size, self.resize_size = out_size, resize_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            image = decode_rgb(self.paths[i])  # (3, H, W) uint8
        except DECODE_ERRORS:
            return None
        view = clean_view([image], out_size=self.out_size, resize_size=self.resize_size)[0]
        return view, self.labels[i], i


def collate_skipping(batch):
    """Stacks the decodable items: (views (B, 3, S, S), labels (B,), positions (B,)); counts the rest."""
    good = [b for b in batch if b is not None]
    if not good:
        return None
    return (torch.stack([b[0] for b in good]), torch.tensor([b[1] for b in good]), torch.tensor([b[2] for b in good]))


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
def stream_features(extractor, paths, labels=None, *, out_size: int, resize_size: int, batch_size: int = 256,
                    workers: int = 0, desc: str = "features", progress: bool = True):  # fmt: skip
    """Yields (features (B, D) float32 on the extractor's device, labels (B,), positions (B,)) batch by batch;
    undecodable images are left out (their positions are missing)."""
    labels = labels if labels is not None else [0] * len(paths)
    dataset = CleanViewDataset(paths, labels, out_size=out_size, resize_size=resize_size)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_skipping)
    for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
        if batch is None:
            continue
        views, batch_labels, positions = batch
        yield extractor(views), batch_labels, positions


def folder_statistics(extractor, index: ImageFolderIndex, *, out_size: int, resize_size: int,
                      max_images: int | None = None, seed: int = 0, shrinkage="none", batch_size: int = 256,
                      workers: int = 0, progress: bool = True) -> tuple[FeatureStats, int]:  # fmt: skip
    """Feature mean and covariance of a folder's clean views (PAPER.md section 4), streamed in float64.

    Returns:
        (FeatureStats tagged with the extractor's model id, number of images that could not be decoded).
    """
    chosen = sample_indices(len(index), max_images, seed=seed, with_replacement=False)
    paths = [index.paths[i] for i in chosen]
    moments, seen = RunningMoments(), 0
    for features, _, positions in stream_features(
        extractor, paths, out_size=out_size, resize_size=resize_size, batch_size=batch_size, workers=workers,
        desc="statistics", progress=progress,
    ):  # fmt: skip
        moments.update(features)
        seen += positions.numel()
    stats = FeatureStats.from_moments(moments, shrinkage, model_id=extractor.info.model_id)
    return stats, len(paths) - seen


def load_images(paths) -> tuple[list[Tensor], list[int]]:
    """Decodes images to (3, H, W) uint8 tensors; returns them and the positions that failed."""
    images, failed = [], []
    for i, path in enumerate(paths):
        try:
            images.append(decode_rgb(path))
        except DECODE_ERRORS:
            failed.append(i)
    return images, failed
