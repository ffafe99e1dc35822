"""The cross-validation driver the probes share: score every fold over the grid, then pick the grid value with the
best mean score."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def cross_validate(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], score_fold: Callable[[int, np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray:
    """The scores of every fold, ``score_fold(fold, train_idx, val_idx)`` for each pair in order.

    Args:
        pairs: F pairs ``(train_idx, val_idx)`` (``folds.resolve_folds`` / ``kfold_indices``).
        score_fold: returns the fold's validation scores over the grid, an array of shape S (e.g. (G,)).

    Returns:
        (F, *S) float64.
    """
    return np.stack([np.asarray(score_fold(f, tr, va), dtype=np.float64) for f, (tr, va) in enumerate(pairs)])


def select_best(fold_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The CV choice over a grid.

    Args:
        fold_scores: (F, G) validation scores per fold and grid value.

    Returns:
        (cv_scores (G,) mean over folds, cv_std (G,) standard deviation over folds (ddof 0), the index of the first
        maximum of cv_scores).
    """
    cv_scores = fold_scores.mean(axis=0)
    return cv_scores, fold_scores.std(axis=0), int(np.argmax(cv_scores))
