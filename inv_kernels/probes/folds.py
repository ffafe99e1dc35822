"""Seeded k-fold splits (the reference code's KFold(shuffle=True) had no seed: docs/METHOD.md section 12) and the class-count
check that classification CV needs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def _labels_numpy(y: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(y, torch.Tensor):
        return y.detach().cpu().numpy()
    return np.asarray(y)


def check_class_counts(y: torch.Tensor | np.ndarray, n_folds: int, *, source: str | None = None) -> None:
    """Checks that every class has at least ``n_folds`` samples.

    Args:
        y: (N,) integer labels.
        n_folds: the number of CV folds.
        source: where the labels came from (a file name), shown in the message.

    Raises:
        ValueError: naming the first too-small class, its count and ``n_folds``.
    """
    labels = _labels_numpy(y)
    classes, counts = np.unique(labels, return_counts=True)
    small = np.nonzero(counts < n_folds)[0]
    if small.size:
        where = f" (from {source})" if source else ""
        details = ", ".join(f"class {classes[i].item()!r} has {int(counts[i])}" for i in small[:5])
        raise ValueError(
            f"y{where}: every class needs at least n_folds={n_folds} samples for cross-validation; {details} "
            f"({small.size} class(es) too small)"
        )


def kfold_indices(
    n_samples: int,
    n_folds: int = 5,
    *,
    seed: int = 0,
    y: torch.Tensor | np.ndarray | None = None,
    stratify: bool = False,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Shuffled k-fold splits from a seeded generator, laid out like sklearn's ``KFold(shuffle=True)``.

    Unstratified: a seeded permutation cut into ``n_folds`` consecutive parts, the first ``n_samples % n_folds`` one
    sample longer. Stratified: each class's samples are permuted and dealt round-robin over the folds (every class then
    appears in every fold when it has at least ``n_folds`` samples).

    Args:
        n_samples: N, the number of samples.
        n_folds: k >= 2.
        seed: seed of the numpy generator that shuffles.
        y: (N,) labels, needed when ``stratify``.
        stratify: balance classes over folds.

    Returns:
        k pairs ``(train_idx, val_idx)`` of sorted int64 arrays; the validation sets partition ``range(N)``.

    Raises:
        ValueError: ``n_folds < 2`` or ``> n_samples``, ``stratify`` without ``y`` or with ``len(y) != N``, or (when
        stratifying) a class with fewer than ``n_folds`` samples.
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ValueError(f"kfold_indices: n_folds must be an int >= 2, got {n_folds!r}")
    if n_folds > n_samples:
        raise ValueError(f"kfold_indices: n_folds={n_folds} is larger than the number of samples ({n_samples})")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(n_samples, dtype=np.int64)
    if stratify:
        if y is None:
            raise ValueError("kfold_indices: stratify=True needs the labels y")
        labels = _labels_numpy(y)
        if labels.shape != (n_samples,):
            raise ValueError(f"kfold_indices: y must have shape ({n_samples},), got {labels.shape}")
        check_class_counts(labels, n_folds)
        offset = 0
        for cls in np.unique(labels):
            members = rng.permutation(np.nonzero(labels == cls)[0])
            fold_of[members] = (np.arange(members.size) + offset) % n_folds
            offset += members.size  # continue dealing where the last class stopped, to balance fold sizes
    else:
        perm = rng.permutation(n_samples)
        sizes = np.full(n_folds, n_samples // n_folds)
        sizes[: n_samples % n_folds] += 1
        fold_of[perm] = np.repeat(np.arange(n_folds), sizes)
    everything = np.arange(n_samples)
    return [(everything[fold_of != f], everything[fold_of == f]) for f in range(n_folds)]


def resolve_folds(
    op: str,
    folds: int | Sequence[tuple[Sequence[int], Sequence[int]]],
    n_samples: int,
    *,
    seed: int,
    y: torch.Tensor | np.ndarray | None = None,
    stratify: bool = False,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``folds`` as a list of ``(train_idx, val_idx)`` int64 arrays: drawn by ``kfold_indices`` when an int, checked
    when given explicitly (indices in range, non-empty, train and validation disjoint)."""
    if isinstance(folds, (int, np.integer)) and not isinstance(folds, bool):
        return kfold_indices(n_samples, int(folds), seed=seed, y=y, stratify=stratify)
    try:
        pairs = [(np.asarray(tr, dtype=np.int64), np.asarray(va, dtype=np.int64)) for tr, va in folds]
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{op}: folds must be an int or a sequence of (train_idx, val_idx) pairs ({exc})") from None
    if len(pairs) < 2:
        raise ValueError(f"{op}: folds needs at least 2 (train_idx, val_idx) pairs, got {len(pairs)}")
    for f, (tr, va) in enumerate(pairs):
        if tr.ndim != 1 or va.ndim != 1 or tr.size == 0 or va.size == 0:
            raise ValueError(f"{op}: fold {f} must have non-empty 1-D train and validation indices")
        for name, idx in (("train", tr), ("validation", va)):
            if idx.min() < 0 or idx.max() >= n_samples:
                raise ValueError(
                    f"{op}: fold {f} {name} indices must lie in [0, {n_samples}), got {idx.min()}..{idx.max()}"
                )
        if np.intersect1d(tr, va).size:
            raise ValueError(f"{op}: fold {f} has samples in both its train and validation indices")
    return pairs
