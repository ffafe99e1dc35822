"""Combining representations (docs/METHOD.md section 7) and a fusion that adapts to the task.

The paper's modes (``model_utils.ModelCombiner``): ``cat`` concatenates the blocks in the listed order, ``add`` sums
them elementwise and ``mean`` averages them (both need equal dimensions).

The paper's fusions let the block with the largest feature scale dominate, and they cannot drop a block that hurts a
task. ``weighted`` fusion fixes both:

1. ``standardise_blocks``: z-score each feature with the trainval mean and std, then scale block i by 1/sqrt(D_i),
   so every member carries the same total variance (1) whatever its width or feature scale.
2. ``choose_block_weights``: per task, pick weights w on a simplex grid (w_i >= 0, sum w_i = 1, step 1/steps) by the
   K-fold cross-validated score of a cheap closed-form ridge probe (one-hot targets and argmax for classification,
   as sklearn's RidgeClassifier; the ridge strength picked per candidate from a small grid). The folds, the ridge
   path, the metrics and the CV driver are the probes' (``inv_kernels.probes``).
3. ``fuse(blocks, "weighted", weights)``: concatenation of w_i * block_i (zero-weight blocks dropped).

Why it cannot do much worse than its best member: the grid holds every member alone (w = e_i), so when fusing does
not help, cross-validation selects the best single member (up to the ridge grid, a member alone is scored just as a
probe on that member would be). The remaining gap is the noise of the CV estimate (the choice among the candidates),
which shrinks with the number of trainval samples; the table of every candidate's mean and fold spread is returned.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from inv_kernels._validate import check_finite, check_nonempty, check_tensor
from inv_kernels.probes import class_scores, cross_validate, kfold_indices, r2_per_output, ridge_path, select_best

FUSE_MODES: tuple[str, ...] = ("cat", "add", "mean", "weighted")
TASK_KINDS: tuple[str, ...] = ("classification", "regression")
DEFAULT_LAMBDAS: tuple[float, ...] = tuple(10.0**k for k in range(-5, 2))  # ridge alpha = lambda * n_train


def _check_blocks(op: str, blocks: object, name: str = "features") -> list[Tensor]:
    if isinstance(blocks, Tensor) or not isinstance(blocks, Sequence) or len(blocks) == 0:
        raise ValueError(f"{op}: {name} must be a non-empty list of (n, D_i) tensors, got {type(blocks).__name__}")
    out = []
    for i, block in enumerate(blocks):
        check_tensor(op, f"{name}[{i}]", block, ndim=2, layout="(n, D_i)")
        check_nonempty(op, f"{name}[{i}]", block)
        check_finite(op, f"{name}[{i}]", block)
        if block.shape[0] != blocks[0].shape[0]:
            raise ValueError(
                f"{op}: {name}[{i}] has {block.shape[0]} rows but {name}[0] has {blocks[0].shape[0]} "
                f"(every block must describe the same samples)"
            )
        if block.device != blocks[0].device:
            raise ValueError(f"{op}: {name}[{i}] is on {block.device} but {name}[0] is on {blocks[0].device}")
        out.append(block)
    return out


def fuse(features: Sequence[Tensor], mode: str = "cat", weights: Sequence[float] | None = None) -> Tensor:
    """Fuses m feature blocks of the same n samples.

    Args:
        features: m tensors (n, D_i) (finite, same rows, same device).
        mode: "cat" (n, sum D_i); "add" (n, D) elementwise sum; "mean" (n, D) elementwise mean (add / mean need all
            D_i equal); "weighted" (n, sum of D_i with w_i > 0): cat of w_i * block_i, normally of
            ``standardise_blocks`` output with ``choose_block_weights`` weights.
        weights: m non-negative finite numbers, not all zero (only and required for "weighted").

    Returns:
        The fused (n, D') tensor, in the promoted dtype of the blocks.

    Raises:
        ValueError: an unknown mode, an empty list, blocks with different rows or devices, NaN/Inf, unequal widths
            for add/mean, missing or bad weights. TypeError: a non-tensor or non-float block.
    """
    op = "fuse"
    if mode not in FUSE_MODES:
        raise ValueError(f"{op}: mode must be one of {', '.join(FUSE_MODES)}, got {mode!r}")
    blocks = _check_blocks(op, features)
    if mode != "weighted" and weights is not None:
        raise ValueError(f"{op}: weights are only used by mode='weighted', got mode={mode!r}")
    dtype = blocks[0].dtype
    for b in blocks[1:]:
        dtype = torch.promote_types(dtype, b.dtype)
    blocks = [b.to(dtype) for b in blocks]
    if mode == "cat":
        return torch.cat(blocks, dim=1)  # (n, sum D_i)
    if mode in ("add", "mean"):
        widths = [b.shape[1] for b in blocks]
        if len(set(widths)) != 1:
            raise ValueError(f"{op}: mode={mode!r} needs blocks of equal width, got widths {widths}")
        total = torch.stack(blocks).sum(dim=0)  # (n, D)
        return total / len(blocks) if mode == "mean" else total
    w = _check_weights(op, weights, len(blocks))
    return torch.cat([wi * b for wi, b in zip(w, blocks) if wi > 0], dim=1)  # (n, sum of D_i with w_i > 0)


def _check_weights(op: str, weights: object, m: int) -> list[float]:
    if weights is None:
        raise ValueError(f"{op}: mode='weighted' needs weights (one per block; see choose_block_weights)")
    w = [float(v) for v in weights]  # type: ignore[union-attr]
    if len(w) != m:
        raise ValueError(f"{op}: got {len(w)} weights for {m} blocks")
    if any(not math.isfinite(v) or v < 0 for v in w) or sum(w) <= 0:
        raise ValueError(f"{op}: weights must be finite, >= 0 and not all zero, got {w}")
    return w


def standardise_blocks(
    train_blocks: Sequence[Tensor], other_blocks: Sequence[Tensor] | None = None, *, eps: float = 1e-8
) -> tuple[list[Tensor], list[Tensor] | None]:
    """Z-scores every feature with the trainval statistics, then scales block i by 1/sqrt(D_i).

    Each standardised block then has total variance 1 on trainval (constant features become 0), so no member
    dominates a fusion by its width or scale.

    Args:
        train_blocks: m tensors (n, D_i) of trainval features (finite).
        other_blocks: None, or m tensors (n', D_i) (test features) transformed with the trainval statistics.
        eps: standard deviations at or below eps count as constant.

    Returns:
        (m float32 tensors (n, D_i), m float32 tensors (n', D_i) or None).

    Raises:
        ValueError / TypeError: as ``fuse``'s checks; other_blocks of another count or widths.
    """
    op = "standardise_blocks"
    train = _check_blocks(op, train_blocks, "train_blocks")
    other = None if other_blocks is None else _check_blocks(op, other_blocks, "other_blocks")
    if other is not None:
        if len(other) != len(train):
            raise ValueError(f"{op}: other_blocks has {len(other)} blocks, train_blocks has {len(train)}")
        for i, (a, b) in enumerate(zip(train, other)):
            if a.shape[1] != b.shape[1]:
                raise ValueError(f"{op}: other_blocks[{i}] has width {b.shape[1]}, train_blocks[{i}] has {a.shape[1]}")
    out_train, out_other = [], []
    for i, block in enumerate(train):
        x = block.double()  # (n, D_i)
        mean = x.mean(dim=0)  # (D_i,)
        std = x.std(dim=0, unbiased=False)  # (D_i,)
        scale = torch.where(std > eps, 1.0 / std, torch.zeros_like(std)) / math.sqrt(x.shape[1])  # (D_i,)
        out_train.append(((x - mean) * scale).float())
        if other is not None:
            out_other.append(((other[i].double() - mean) * scale).float())
    return out_train, (out_other if other is not None else None)


def simplex_grid(m: int, steps: int) -> list[tuple[float, ...]]:
    """All weight vectors w (m,) with w_i in {0, 1/steps, ..., 1} and sum 1; the m single members come first."""
    if m < 1 or steps < 1:
        raise ValueError(f"simplex_grid: need m >= 1 and steps >= 1, got m={m}, steps={steps}")
    grid = [
        tuple(c / steps for c in combo)
        for combo in itertools.product(range(steps + 1), repeat=m)
        if sum(combo) == steps
    ]
    singles = [tuple(1.0 if j == i else 0.0 for j in range(m)) for i in range(m)]
    return singles + [w for w in grid if max(w) < 1.0]


def choose_block_weights(
    blocks: Sequence[Tensor],
    y: Tensor,
    task_kind: str,
    *,
    folds: int = 5,
    steps: int = 4,
    candidates: Sequence[Sequence[float]] | None = None,
    metric: str | None = None,
    lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    max_samples: int | None = 4096,
    seed: int = 0,
) -> tuple[tuple[float, ...], list[dict]]:
    """Per-block fusion weights chosen by cross-validation of a closed-form ridge probe.

    Args:
        blocks: m tensors (n, D_i), normally ``standardise_blocks`` output of the trainval features.
        y: (n,) int class labels (classification) or (n,) / (n, T) float targets (regression).
        task_kind: "classification" or "regression".
        folds: K of the (stratified, seeded) K-fold split.
        steps: the simplex grid's resolution (``simplex_grid(m, steps)``), unless ``candidates`` is given.
        candidates: explicit weight vectors to compare (each m non-negative numbers, not all zero).
        metric: the CV score; default accuracy (classification) or r2 (regression).
        lambdas: ridge strengths relative to the fold's training size.
        max_samples: a seeded random subsample of at most this many rows for the CV (None: all), to stay cheap.
        seed: seeds the folds and the subsample.

    Returns:
        (weights: the best candidate, a tuple of m floats;
         table: one dict per candidate {"weights", "score" (mean CV score at its best lambda), "std" (over folds),
         "lambda"}, best first).

    Raises:
        ValueError: blocks with different rows, NaN/Inf features or targets, labels whose count does not match the
            features, a class with fewer samples than folds, a bad task kind, metric or candidate.
        TypeError: non-tensor or non-float blocks; float class labels.
    """
    op = "choose_block_weights"
    xs = _check_blocks(op, blocks, "blocks")
    if task_kind not in TASK_KINDS:
        raise ValueError(f"{op}: task_kind must be 'classification' or 'regression', got {task_kind!r}")
    if not isinstance(y, Tensor):
        raise TypeError(f"{op}: y must be a torch.Tensor, got {type(y).__name__}")
    if y.shape[0] != xs[0].shape[0]:
        raise ValueError(
            f"{op}: y has {y.shape[0]} labels but the features have {xs[0].shape[0]} rows "
            f"(labels do not match the features)"
        )
    metric = metric or ("accuracy" if task_kind == "classification" else "r2")
    if task_kind == "classification":
        if y.dtype.is_floating_point or y.dim() != 1:
            raise TypeError(f"{op}: classification labels must be a 1-D integer tensor, got {y.dtype} {tuple(y.shape)}")
        if metric not in ("accuracy", "mean_per_class_accuracy"):
            raise ValueError(f"{op}: metric {metric!r} does not score a classification")
    else:
        if metric != "r2":
            raise ValueError(f"{op}: metric {metric!r} does not score a regression (use 'r2')")
        check_finite(op, "y", y.float())
    grid = [tuple(float(v) for v in c) for c in candidates] if candidates is not None else simplex_grid(len(xs), steps)
    for c in grid:
        _check_weights(op, c, len(xs))
    n = xs[0].shape[0]
    rows = torch.arange(n)
    if max_samples is not None and n > max_samples:
        rows = torch.from_numpy(np.sort(np.random.RandomState(seed).choice(n, max_samples, replace=False)))
    xs = [x[rows].double().cpu() for x in xs]
    y = y[rows].cpu()
    classification = task_kind == "classification"
    pairs = kfold_indices(len(y), folds, seed=seed, y=y if classification else None, stratify=classification)
    targets, score = _ridge_targets(y, task_kind, metric)
    lambdas_t = torch.tensor(lambdas, dtype=torch.float64)  # (L,)
    table = []
    for w in grid:
        x = torch.cat([wi * b for wi, b in zip(w, xs) if wi > 0], dim=1)  # (n, D_w)
        scores = _ridge_cv(x, targets, score, pairs, lambdas_t)  # (folds, L)
        cv_scores, _, best = select_best(scores)
        table.append(
            {
                "weights": w,
                "score": float(cv_scores[best]),
                "std": float(np.std(scores[:, best], ddof=1)),
                "lambda": float(lambdas[best]),
            }
        )
    order = sorted(range(len(table)), key=lambda i: (-table[i]["score"], i))  # ties: grid order (singles first)
    table = [table[i] for i in order]
    return table[0]["weights"], table


def _ridge_cv(x: Tensor, targets: Tensor, score, pairs, lambdas: Tensor) -> np.ndarray:
    """(folds, L) validation scores of the ridge probe on x (n, D) with targets (n, T), at alpha = lambda * n_train
    for each of the L lambdas."""
    return cross_validate(pairs, lambda f, tr, va: score(ridge_path(x[tr], targets[tr], x[va], lambdas * len(tr)), va))


def _ridge_targets(y: Tensor, task_kind: str, metric: str):
    """The ridge probe's targets and its scorer.

    Args:
        y: (n,) int class labels or (n,) / (n, T) float targets.

    Returns:
        (targets (n, C) one-hot in {-1, 1} as sklearn's RidgeClassifier, or (n, T) float64;
         score(predictions (L, nv, C or T), val_idx) -> (L,) metric of the argmax class, or R^2 averaged over outputs).
    """
    if task_kind != "classification":
        targets = y.double().reshape(len(y), -1)  # (n, T)
        return targets, lambda pred, va: r2_per_output(targets[va][None], pred).mean(dim=-1).numpy()
    classes, y_idx = torch.unique(y, return_inverse=True)
    targets = torch.full((len(y), len(classes)), -1.0, dtype=torch.float64)
    targets[torch.arange(len(y)), y_idx] = 1.0  # (n, C)

    def score(pred: Tensor, va) -> np.ndarray:
        valid = torch.ones(1, len(va), dtype=torch.bool)
        accuracy, per_class = class_scores(pred.argmax(dim=2).T[None], y_idx[va][None], valid, len(classes))  # (1, L)
        return (accuracy if metric == "accuracy" else per_class)[0].numpy()

    return targets, score


def weighted_fusion(
    train_blocks: Sequence[Tensor], test_blocks: Sequence[Tensor], y_train: Tensor, task_kind: str, **kwargs
) -> tuple[Tensor, Tensor, tuple[float, ...], list[dict]]:
    """Standardises the blocks, chooses weights on trainval, and fuses both splits.

    Args:
        train_blocks: m tensors (n, D_i). test_blocks: m tensors (n', D_i). y_train: (n,) or (n, T).
        task_kind, kwargs: as ``choose_block_weights``.

    Returns:
        (X_train (n, D'), X_test (n', D'), weights, CV table).
    """
    train, test = standardise_blocks(train_blocks, test_blocks)
    weights, table = choose_block_weights(train, y_train, task_kind, **kwargs)
    return fuse(train, "weighted", weights), fuse(test, "weighted", weights), weights, table


__all__ = [
    "FUSE_MODES",
    "choose_block_weights",
    "fuse",
    "simplex_grid",
    "standardise_blocks",
    "weighted_fusion",
]
