"""Real-world invariance (PAPER.md 4.3): features of every image of every view group are extracted once, then
scored per group by ``group_invariance`` (mean pairwise whitened cosine, with and without the self-pairs, and mean
pairwise Mahalanobis distance), with the statistics of the model's statistics set (not of the groups)."""

import torch

from inv_kernels.measure.features import stream_features
from inv_kernels.ops.group_invariance import group_invariance


def measure_groups(extractor, groups, stats, *, out_size: int, resize_size: int, batch_size: int = 256,
                   workers: int = 0, backend: str = "auto", progress: bool = True, name: str = "groups") -> dict:  # fmt: skip
    """Scores a list of ViewGroup (from ``realworld.find_groups``).

    Returns:
        A dict for reports: name, num_groups, num_images, the three means over groups, undecodable images, groups
        dropped because fewer than 2 of their images could be decoded, and per-group rows (key, size, measures).
    """
    paths, owner = [], []
    for g, group in enumerate(groups):
        paths.extend(group.paths)
        owner.extend([g] * len(group.paths))
    features, kept = [], []
    for batch, _, positions in stream_features(
        extractor, paths, out_size=out_size, resize_size=resize_size, batch_size=batch_size, workers=workers,
        desc=f"groups {name}", progress=progress,
    ):  # fmt: skip
        features.append(batch)
        kept.append(positions)
    feats = torch.cat(features)  # (N', D)
    group_ids = torch.tensor(owner)[torch.cat(kept)]  # (N',)
    sizes = torch.bincount(group_ids, minlength=len(groups))
    usable = sizes[group_ids] >= 2  # a group left with one decodable image has no pairs
    result = group_invariance(feats[usable.to(feats.device)], group_ids[usable].to(feats.device), stats,
                              backend=backend)  # fmt: skip
    keys = {g: group.key for g, group in enumerate(groups)}
    rows = [
        {"key": keys[int(g)], "size": int(s), "cosine_with_diagonal": float(cw), "cosine_off_diagonal": float(co),
         "distance": float(d)}
        for g, s, cw, co, d in zip(result.group_ids.tolist(), result.sizes.tolist(),
                                   result.cosine_with_diagonal.tolist(), result.cosine_off_diagonal.tolist(),
                                   result.distance.tolist())
    ]  # fmt: skip
    return {
        "name": name,
        "num_groups": len(rows),
        "num_images": int(usable.sum()),
        "cosine_with_diagonal": result.cosine_with_diagonal_mean,
        "cosine_off_diagonal": result.cosine_off_diagonal_mean,
        "distance": result.distance_mean,
        "undecodable_images": len(paths) - feats.shape[0],
        "dropped_groups": [keys[g] for g in range(len(groups)) if 0 < sizes[g] < 2 or sizes[g] == 0],
        "groups": rows,
    }
