"""Real-world invariance (docs/METHOD.md 4.3): features of every image of every view group are extracted once, then
scored per group by ``group_invariance`` (mean pairwise whitened cosine, with and without the self-pairs, and mean
pairwise Mahalanobis distance), with the statistics of the model's statistics set (not of the groups)."""

import torch
from torch import Tensor

from inv_kernels.measure.features import path_features
from inv_kernels.ops.group_invariance import group_invariance


def group_paths(groups) -> list[str]:
    """The image files of a list of ViewGroup, group after group (the order ``score_groups`` expects)."""
    return [path for group in groups for path in group.paths]


def score_groups(
    features: Tensor, positions: Tensor, groups, stats, *, backend: str = "auto", name: str = "groups"
) -> dict:
    """Scores view groups from their images' features.

    Args:
        features: (N', D) features of the images that decoded, any device.
        positions: (N',) int64 indices of those images in ``group_paths(groups)``.
        groups: the list of ViewGroup (from ``realworld.find_groups``).
        stats: FeatureStats of the model on its statistics set; scoring runs on its device.

    Returns:
        A dict for reports: name, num_groups, num_images, the three means over groups, undecodable images, groups
        dropped because fewer than 2 of their images could be decoded, and per-group rows (key, size, measures).
    """
    owner = torch.tensor([g for g, group in enumerate(groups) for _ in group.paths], dtype=torch.int64)
    device = stats.device
    feats = features.to(device, torch.float32)  # (N', D)
    group_ids = owner[positions.cpu()]  # (N',)
    sizes = torch.bincount(group_ids, minlength=len(groups))
    usable = sizes[group_ids] >= 2  # a group left with one decodable image has no pairs
    result = group_invariance(feats[usable.to(device)], group_ids[usable].to(device), stats, backend=backend)
    keys = {g: group.key for g, group in enumerate(groups)}
    rows = [
        {
            "key": keys[int(g)],
            "size": int(s),
            "cosine_with_diagonal": float(cw),
            "cosine_off_diagonal": float(co),
            "distance": float(d),
        }
        for g, s, cw, co, d in zip(
            result.group_ids.tolist(),
            result.sizes.tolist(),
            result.cosine_with_diagonal.tolist(),
            result.cosine_off_diagonal.tolist(),
            result.distance.tolist(),
        )
    ]
    return {
        "name": name,
        "num_groups": len(rows),
        "num_images": int(usable.sum()),
        "cosine_with_diagonal": result.cosine_with_diagonal_mean,
        "cosine_off_diagonal": result.cosine_off_diagonal_mean,
        "distance": result.distance_mean,
        "undecodable_images": len(owner) - feats.shape[0],
        "dropped_groups": [keys[g] for g in range(len(groups)) if sizes[g] < 2],
        "groups": rows,
    }


def measure_groups(
    extractor,
    groups,
    stats,
    *,
    out_size: int,
    resize_size: int,
    batch_size: int = 256,
    workers: int = 0,
    backend: str = "auto",
    progress: bool = True,
    name: str = "groups",
) -> dict:
    """Scores a list of ViewGroup (from ``realworld.find_groups``) in one process: ``path_features`` of
    ``group_paths(groups)``, then ``score_groups`` (see there for the returned dict)."""
    features, positions = path_features(
        extractor,
        group_paths(groups),
        out_size=out_size,
        resize_size=resize_size,
        batch_size=batch_size,
        workers=workers,
        desc=f"groups {name}",
        progress=progress,
    )
    return score_groups(features, positions, groups, stats, backend=backend, name=name)
