"""The probes' scores: accuracy and mean per-class accuracy of classifiers, and sklearn's R^2 per output of
regressors, batched over folds and grid values."""

from __future__ import annotations

import torch


def class_scores(
    pred: torch.Tensor, y: torch.Tensor, valid: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Accuracy and mean per-class accuracy (recall averaged over the classes present in y).

    Args:
        pred: (F, n, g) predicted class indices in [0, num_classes).
        y: (F, n) true class indices; any value on padded rows.
        valid: (F, n) bool, False on padded rows.
        num_classes: K.

    Returns:
        accuracy (F, g) and mean per-class accuracy (F, g), float64.
    """
    correct = (pred == y[:, :, None]) & valid[:, :, None]  # (F, n, g)
    acc = correct.sum(dim=1).double() / valid.sum(dim=1, keepdim=True).double()
    onehot = torch.nn.functional.one_hot(y.clamp_min(0), num_classes).double() * valid[:, :, None].double()  # (F, n, K)
    hits = torch.einsum("fng,fnk->fgk", correct.double(), onehot)
    counts = onehot.sum(dim=1)  # (F, K)
    present = counts > 0
    recall = hits / counts.clamp_min(1)[:, None, :]
    mpca = (recall * present[:, None, :]).sum(dim=2) / present.sum(dim=1, keepdim=True)
    return acc, mpca


def r2_per_output(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """sklearn's r2_score per output along dim -2: 1 - SSE/SST; constant outputs score 1 if predicted exactly, else 0.

    Args:
        y_true: (..., N, T).
        y_pred: (..., N, T).

    Returns:
        (..., T).
    """
    sse = ((y_true - y_pred) ** 2).sum(dim=-2)
    sst = ((y_true - y_true.mean(dim=-2, keepdim=True)) ** 2).sum(dim=-2)
    safe = torch.where(sst > 0, sst, torch.ones_like(sst))
    r2 = 1.0 - sse / safe
    return torch.where(sst > 0, r2, torch.where(sse == 0, torch.ones_like(r2), torch.zeros_like(r2)))
