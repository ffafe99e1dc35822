"""The kNN monitor of contrastive pretraining: features of a labelled train/test folder pair, weighted kNN top-1.

Voting as in Wu et al. 2018 (InstDisc) and the MoCo CIFAR demo: the k nearest train features by cosine similarity
vote for their class with weight exp(similarity / t), t = 0.1. Images that do not decode or are under 2 x 2 pixels
are left out (the rule of every loader, ``data.folders.load_image``) and named in the result.
"""

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from inv_kernels.data.clean_views import CleanViewDataset, collate_skipping
from inv_kernels.data.folders import ImageFolderIndex, skipped_among
from inv_kernels.ops.fused_augment_ref import IMAGENET_MEAN, IMAGENET_STD


def _subset(num_items: int, max_images: int | None, seed: int) -> list[int] | None:
    if max_images is None or max_images >= num_items:
        return None
    generator = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(num_items, generator=generator)[:max_images].tolist())


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    index: ImageFolderIndex,
    *,
    size: int,
    device: torch.device,
    batch_size: int = 256,
    workers: int = 0,
    max_images: int | None = None,
    seed: int = 0,
    amp: bool = False,
) -> tuple[Tensor, Tensor, list[tuple[str, str]]]:
    """L2-normalised features (N, F) float32 and labels (N,) of a folder's usable images, and (path, reason) of the
    images left out.

    Raises:
        ValueError: no image of the folder (or of its ``max_images`` subset) is usable.
    """
    subset = _subset(len(index), max_images, seed)
    chosen = subset if subset is not None else range(len(index))
    paths = [index.paths[i] for i in chosen]
    dataset = CleanViewDataset(paths, [index.labels[i] for i in chosen], out_size=size, resize_size=size)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_skipping)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    was_training = backbone.training
    backbone.eval()
    features, labels, kept = [], [], []
    for batch in loader:
        if batch is None:  # every image of the batch was unusable
            continue
        images, targets, positions = batch
        kept += positions.tolist()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            out = backbone((images.to(device, non_blocking=True) - mean) / std)
        features.append(F.normalize(out.float(), dim=1).cpu())
        labels.append(targets)
    backbone.train(was_training)
    skipped = skipped_among(paths, kept)
    if not features:
        raise ValueError(
            f"kNN monitor: none of the {len(paths)} images of {str(index.root)!r} is usable "
            f"(first: {skipped[0][0]}: {skipped[0][1]})"
        )
    return torch.cat(features), torch.cat(labels), skipped


def knn_top1(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    *,
    k: int = 200,
    temperature: float = 0.1,
    chunk: int = 1024,
) -> float:
    """Weighted kNN top-1 accuracy in [0, 1].

    Args:
        train_features: (N, F) L2-normalised. train_labels: (N,) int64.
        test_features: (M, F) L2-normalised. test_labels: (M,) int64.
        k: neighbours (capped at N). temperature: vote weight exp(similarity / temperature).
    """
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    k = min(k, train_features.shape[0])
    correct = 0
    for start in range(0, test_features.shape[0], chunk):
        sims = test_features[start : start + chunk] @ train_features.t()  # (m, N)
        top_sims, top_idx = sims.topk(k, dim=1)  # (m, k)
        votes = torch.zeros(sims.shape[0], num_classes)
        votes.scatter_add_(1, train_labels[top_idx], (top_sims / temperature).exp())
        correct += int((votes.argmax(dim=1) == test_labels[start : start + chunk]).sum())
    return correct / test_features.shape[0]


@dataclass
class KnnResult:
    """What the kNN monitor found: ``top1`` in [0, 1], and ``skipped`` {"train": [(path, reason)], "test": [...]},
    the images of each folder left out."""

    top1: float
    skipped: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


def knn_monitor(
    backbone: nn.Module,
    train: ImageFolderIndex,
    test: ImageFolderIndex,
    *,
    size: int,
    device: torch.device,
    k: int = 200,
    max_images: int | None = None,
    workers: int = 0,
    amp: bool = False,
) -> KnnResult:
    """kNN top-1 of ``backbone``'s features: train-folder features as the memory bank, test-folder as queries.

    Raises:
        ValueError: the folders' classes differ, or one of them has no usable image.
    """
    if train.classes != test.classes:
        raise ValueError(
            f"kNN monitor: train classes {train.classes[:5]}... differ from test classes {test.classes[:5]}..."
        )
    common = dict(size=size, device=device, workers=workers, max_images=max_images, amp=amp)
    train_features, train_labels, train_skipped = extract_features(backbone, train, **common)
    test_features, test_labels, test_skipped = extract_features(backbone, test, **common)
    top1 = knn_top1(train_features, train_labels, test_features, test_labels, k=k)
    return KnnResult(top1, {"train": train_skipped, "test": test_skipped})
