"""Synthetic invariance (PAPER.md 4.1): for each image, its clean view and the k transformed views of a family go
through the model; the whitened cosine and Mahalanobis distance of every (clean, view) pair are scored in batches,
then averaged over images per parameter value (nanmean) and over values."""

from dataclasses import asdict, dataclass

import torch
from torch import Tensor
from tqdm import tqdm

from inv_kernels.ops.invariance_scores import invariance_scores
from inv_kernels.transforms import clean_view, get_family, iter_views


@dataclass
class FamilyResult:
    family: str
    kind: str  # "spatial" or "appearance"
    mode: str  # "paper" or "corrected"
    k: int
    num_images: int
    cosine_mean: float  # mean over values of the nanmean over images (higher: more invariant)
    distance_mean: float  # likewise for the Mahalanobis distance (lower: more invariant)
    cosine_per_value: list[float]
    distance_per_value: list[float]

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def _clean_features(extractor, images: list[Tensor], out_size: int, resize_size: int, batch_size: int) -> Tensor:
    parts = []
    for start in range(0, len(images), batch_size):
        views = clean_view(images[start : start + batch_size], out_size=out_size, resize_size=resize_size)
        parts.append(extractor(views))
    return torch.cat(parts)  # (n, D)


@torch.no_grad()
def measure_family(extractor, images: list[Tensor], clean: Tensor, stats, family: str, *, mode: str = "paper",
                   out_size: int = 224, resize_size: int = 256, batch_size: int = 256, images_per_score: int = 16,
                   backend: str = "auto", progress: bool = True) -> FamilyResult:  # fmt: skip
    """One family's invariance.

    Args:
        extractor: images (B, 3, S, S) in [0, 1] -> features (B, D).
        images: n raw (3, H, W) uint8 images (full resolution: paper mode transforms them before resizing).
        clean: (n, D) features of their clean views.
        stats: FeatureStats of the model on a statistics set.
        family: a name of inv_kernels.transforms.FAMILIES.
    """
    fam = get_family(family)
    k = fam.k
    n, dim = clean.shape
    cosine = torch.empty(n, k, dtype=torch.float64)
    distance = torch.empty(n, k, dtype=torch.float64)
    buffer = torch.empty(min(images_per_score, n), k, dim, device=clean.device)  # (b, k, D) view features
    first = 0  # index of the image in buffer row 0

    def score(count: int) -> None:
        result = invariance_scores(clean[first : first + count], buffer[:count], stats, backend=backend)
        cosine[first : first + count] = result.cosine.double().cpu()
        distance[first : first + count] = result.distance.double().cpu()

    bar = tqdm(total=n * k, desc=f"{family} ({mode})", unit="view", disable=not progress, leave=False)
    for i, rows, views in iter_views(family, images, mode=mode, chunk=batch_size, out_size=out_size,
                                     resize_size=resize_size):  # fmt: skip
        if i - first == buffer.shape[0]:
            score(buffer.shape[0])
            first = i
        buffer[i - first, rows.to(buffer.device)] = extractor(views)
        bar.update(rows.numel())
    score(n - first)
    bar.close()
    per_value_cos = torch.nanmean(cosine, dim=0)  # (k,)
    per_value_dist = torch.nanmean(distance, dim=0)
    return FamilyResult(
        family, fam.kind, mode, k, n, float(per_value_cos.mean()), float(per_value_dist.mean()),
        per_value_cos.tolist(), per_value_dist.tolist(),
    )  # fmt: skip


def measure_synthetic(extractor, images: list[Tensor], stats, families, *, mode: str = "paper",
                      out_size: int = 224, resize_size: int = 256, batch_size: int = 256, backend: str = "auto",
                      progress: bool = True) -> list[FamilyResult]:  # fmt: skip
    """measure_family for each of ``families`` on the same images (clean features computed once)."""
    clean = _clean_features(extractor, images, out_size, resize_size, batch_size)
    return [
        measure_family(extractor, images, clean, stats, name, mode=mode, out_size=out_size, resize_size=resize_size,
                       batch_size=batch_size, backend=backend, progress=progress)  # fmt: skip
        for name in tqdm(families, desc="transform families", unit="family", disable=not progress)
    ]
