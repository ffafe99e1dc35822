"""Synthetic invariance (docs/METHOD.md 4.1): for each image, its clean view and the k transformed views of a family go
through the model; the whitened cosine and Mahalanobis distance of every (clean, view) pair are scored in batches,
then averaged over images per parameter value (nanmean) and over values.

A family whose views all leave the clean image unchanged (translation when the crop size equals the resize size,
paper-mode blur below a 20 px crop; any family whose view features all equal the clean ones) is degenerate: it is
reported with the reason and a warning, and not scored (a score of 1.0 would claim perfect invariance where nothing
was varied)."""

import warnings
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor
from tqdm import tqdm

from inv_kernels.measure.features import sample_indices
from inv_kernels.ops.invariance_scores import invariance_scores
from inv_kernels.transforms import MODES, clean_view, get_family, iter_views
from inv_kernels.transforms.grids import degenerate_reason


class DegenerateFamilyWarning(UserWarning):
    """A transform family's views all equal the clean image, so it is not scored."""


@dataclass
class FamilyResult:
    family: str
    kind: str  # "spatial" or "appearance"
    mode: str  # "paper" or "corrected"
    k: int
    num_images: int
    cosine_mean: float | None  # mean over values of the nanmean over images (higher: more invariant); None: degenerate
    distance_mean: float | None  # likewise for the Mahalanobis distance (lower: more invariant); None: degenerate
    cosine_per_value: list[float]
    distance_per_value: list[float]
    degenerate: str | None = None  # why the views all equal the clean image (then the scores are None)
    cosine_std_per_value: list[float] = field(default_factory=list)  # spread over images (empty: degenerate)
    distance_std_per_value: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def sample_images(
    num_items: int, count: int, *, mode: str, seed: int, same_images: bool = False
) -> tuple[list[int], dict]:
    """The images a synthetic measurement uses (docs/METHOD.md 4.1), and a record of how they were drawn.

    ``paper`` mode draws as the reference code does: ``np.random.seed(seed); np.random.choice(num_items, count)``,
    with replacement (an image can come twice, and fewer than ``count`` distinct images are measured).
    ``corrected`` mode draws ``min(count, num_items)`` distinct images (sorted). ``same_images`` makes both modes
    draw the corrected way, so a paper and a corrected run measure the same images and differ only in their
    transforms.

    Returns:
        (indices into the image list, {"mode": "with_replacement" | "without_replacement", "seed", "same_images",
        "requested": count, "drawn": len(indices), "unique": distinct indices}).

    Raises:
        ValueError: an unknown mode.
    """
    if mode not in MODES:
        raise ValueError(f"sample_images: mode must be one of {', '.join(MODES)}, got {mode!r}")
    with_replacement = mode == "paper" and not same_images
    chosen = sample_indices(num_items, count, seed=seed, with_replacement=with_replacement)
    record = {
        "mode": "with_replacement" if with_replacement else "without_replacement",
        "seed": seed,
        "same_images": bool(same_images),
        "requested": count,
        "drawn": len(chosen),
        "unique": len(set(chosen)),
    }
    return chosen, record


@torch.no_grad()
def clean_features(extractor, images: list[Tensor], *, out_size: int, resize_size: int, batch_size: int) -> Tensor:
    """Features of the clean views (Resize + CenterCrop) of raw images.

    Args:
        extractor: images (B, 3, S, S) in [0, 1] -> features (B, D); ``info.feature_dim`` is D.
        images: n raw (3, H, W) uint8 images (n may be 0).

    Returns:
        (n, D) float32 on the CPU.
    """
    parts = [torch.empty(0, extractor.info.feature_dim)]
    for start in range(0, len(images), batch_size):
        views = clean_view(images[start : start + batch_size], out_size=out_size, resize_size=resize_size)
        parts.append(extractor(views).float().cpu())
    return torch.cat(parts)  # (n, D)


def distinct_views(views: Tensor) -> tuple[Tensor, Tensor]:
    """The distinct views of a batch, exactly (bit for bit): views[keep][inverse] equals views.

    Small crops and shears round many grid values to the same pixels (at 64 px, the 256 shear views of an image hold
    about 80 distinct ones), so the forward pass runs once per distinct view.

    Args:
        views: (P, ...) tensor.

    Returns:
        keep (U,) int64 indices of the first view of each distinct one, ascending; inverse (P,) int64 into keep.
    """
    flat = views.reshape(len(views), -1)
    sample = flat[:, :: max(1, flat.shape[1] // 1024)].cpu().numpy()  # a cheap key; equal keys are then compared
    first: dict[bytes, list[int]] = {}
    keep: list[int] = []
    inverse = torch.empty(len(views), dtype=torch.int64)
    for j in range(len(views)):
        candidates = first.setdefault(sample[j].tobytes(), [])
        match = next((u for u in candidates if torch.equal(flat[keep[u]], flat[j])), None)
        if match is None:
            match = len(keep)
            keep.append(j)
            candidates.append(match)
        inverse[j] = match
    return torch.tensor(keep, dtype=torch.int64), inverse


@torch.no_grad()
def family_features(
    extractor,
    images: list[Tensor],
    family: str,
    *,
    mode: str = "paper",
    out_size: int = 224,
    resize_size: int = 256,
    batch_size: int = 256,
    progress: bool = True,
) -> Tensor:
    """Features of every transformed view of a family. Views of several images share a batch of up to ``batch_size``,
    and each distinct view of a batch goes through the model once (``distinct_views``).

    Args:
        extractor: images (B, 3, S, S) in [0, 1] -> features (B, D); ``info.feature_dim`` is D.
        images: n raw (3, H, W) uint8 images (full resolution: paper mode transforms them before resizing; n may be 0).
        family: a name of inv_kernels.transforms.FAMILIES.

    Returns:
        (n, k, D) float32 on the CPU: row [i, j] is image i under the family's j-th parameter value.
    """
    k = get_family(family).k
    out = torch.empty(len(images), k, extractor.info.feature_dim)
    if not images:
        return out
    bar = tqdm(total=len(images) * k, desc=f"{family} ({mode})", unit="view", disable=not progress, leave=False)
    pending: list[tuple[int, Tensor, Tensor]] = []  # (image index, grid rows, views) waiting for a batch

    def run_batch() -> None:
        batch = torch.cat([views for _, _, views in pending])
        keep, inverse = distinct_views(batch)
        features = extractor(batch[keep]).float().cpu()[inverse]  # (P, D)
        start = 0
        for i, rows, _ in pending:
            out[i, rows] = features[start : start + rows.numel()]
            start += rows.numel()
        bar.update(start)
        pending.clear()

    for i, rows, views in iter_views(
        family, images, mode=mode, chunk=batch_size, out_size=out_size, resize_size=resize_size
    ):
        if pending and sum(r.numel() for _, r, _ in pending) + rows.numel() > batch_size:
            run_batch()
        pending.append((i, rows, views))
    if pending:
        run_batch()
    bar.close()
    return out


def views_equal_clean(clean: Tensor, views: Tensor) -> bool:
    """Whether every view's features equal its clean view's (up to the rounding of another batch size).

    Args:
        clean: (n, D) features of the clean views; views: (n, k, D) features of the transformed views.
    """
    clean = clean.float().cpu()
    scale = float(clean.abs().max()) if clean.numel() else 0.0
    return torch.allclose(views.float().cpu(), clean[:, None].expand_as(views), rtol=1e-4, atol=1e-5 * max(scale, 1.0))


def _degenerate(family: str, k: int, n: int, mode: str, reason: str) -> FamilyResult:
    warnings.warn(
        f"transform family {family!r} is degenerate ({reason}): it is reported as degenerate, not scored",
        DegenerateFamilyWarning,
        stacklevel=4,  # the caller of score_family (past its no_grad wrapper)
    )
    nan = [float("nan")] * k
    return FamilyResult(family, get_family(family).kind, mode, k, n, None, None, nan, nan, reason)


@torch.no_grad()
def score_family(
    clean: Tensor,
    views: Tensor,
    stats,
    family: str,
    *,
    mode: str = "paper",
    images_per_score: int = 16,
    backend: str = "auto",
    out_size: int | None = None,
    resize_size: int | None = None,
) -> FamilyResult:
    """A family's invariance from features: per (image, value) scores, nanmean over images, mean over values.

    Args:
        clean: (n, D) features of the clean views, n >= 1, any device.
        views: (n, k, D) features of the transformed views (row [i, j]: image i, value j).
        stats: FeatureStats of the model on a statistics set; scoring runs on its device in float32.
        family: the family's name (for its kind and k).
        out_size, resize_size: the sizes the views were made at; given, a grid that cannot vary the image at these
            sizes (``grids.degenerate_reason``) makes the family degenerate.

    Returns:
        The FamilyResult; a degenerate family (see the module docstring) has ``degenerate`` set, None scores and NaN
        per-value lists, and a DegenerateFamilyWarning names it and the reason.
    """
    fam = get_family(family)
    n, k, _ = views.shape
    if clean.shape[0] != n or k != fam.k:
        raise ValueError(
            f"score_family: expected clean (n, D) and views (n, {fam.k}, D) for {family!r}, got "
            f"{tuple(clean.shape)} and {tuple(views.shape)}"
        )
    reason = degenerate_reason(family, out_size, resize_size, mode) if out_size and resize_size else None
    if reason is None and views_equal_clean(clean, views):
        reason = "every view's features equal the clean view's: the views leave the images unchanged"
    if reason is not None:
        return _degenerate(family, k, n, mode, reason)
    cosine = torch.empty(n, k, dtype=torch.float64)
    distance = torch.empty(n, k, dtype=torch.float64)
    device = stats.device
    for first in range(0, n, images_per_score):
        last = min(first + images_per_score, n)
        result = invariance_scores(
            clean[first:last].to(device, torch.float32),
            views[first:last].to(device, torch.float32),
            stats,
            backend=backend,
        )
        cosine[first:last] = result.cosine.double().cpu()
        distance[first:last] = result.distance.double().cpu()
    per_value_cos = torch.nanmean(cosine, dim=0)  # (k,)
    per_value_dist = torch.nanmean(distance, dim=0)
    std_cos = torch.nanmean((cosine - per_value_cos).square(), dim=0).sqrt()  # (k,) spread over images
    std_dist = torch.nanmean((distance - per_value_dist).square(), dim=0).sqrt()
    return FamilyResult(
        family,
        fam.kind,
        mode,
        k,
        n,
        float(per_value_cos.mean()),
        float(per_value_dist.mean()),
        per_value_cos.tolist(),
        per_value_dist.tolist(),
        cosine_std_per_value=std_cos.tolist(),
        distance_std_per_value=std_dist.tolist(),
    )


def measure_family(
    extractor,
    images: list[Tensor],
    clean: Tensor,
    stats,
    family: str,
    *,
    mode: str = "paper",
    out_size: int = 224,
    resize_size: int = 256,
    batch_size: int = 256,
    images_per_score: int = 16,
    backend: str = "auto",
    progress: bool = True,
) -> FamilyResult:
    """One family's invariance: ``family_features`` then ``score_family``.

    Args:
        extractor: images (B, 3, S, S) in [0, 1] -> features (B, D).
        images: n raw (3, H, W) uint8 images (full resolution: paper mode transforms them before resizing).
        clean: (n, D) features of their clean views.
        stats: FeatureStats of the model on a statistics set.
        family: a name of inv_kernels.transforms.FAMILIES.
    """
    views = family_features(
        extractor,
        images,
        family,
        mode=mode,
        out_size=out_size,
        resize_size=resize_size,
        batch_size=batch_size,
        progress=progress,
    )
    return score_family(
        clean,
        views,
        stats,
        family,
        mode=mode,
        images_per_score=images_per_score,
        backend=backend,
        out_size=out_size,
        resize_size=resize_size,
    )


def measure_synthetic(
    extractor,
    images: list[Tensor],
    stats,
    families,
    *,
    mode: str = "paper",
    out_size: int = 224,
    resize_size: int = 256,
    batch_size: int = 256,
    backend: str = "auto",
    progress: bool = True,
) -> list[FamilyResult]:
    """measure_family for each of ``families`` on the same images (clean features computed once)."""
    clean = clean_features(extractor, images, out_size=out_size, resize_size=resize_size, batch_size=batch_size)
    return [
        measure_family(
            extractor,
            images,
            clean,
            stats,
            name,
            mode=mode,
            out_size=out_size,
            resize_size=resize_size,
            batch_size=batch_size,
            backend=backend,
            progress=progress,
        )
        for name in tqdm(families, desc="transform families", unit="family", disable=not progress)
    ]
