"""Multi-output ridge probe: per fold one eigendecomposition, then every alpha of the grid in closed form
(PAPER.md sections 6 and 12, "Inefficiencies").

With an intercept (X and Y centred on the training fold, as sklearn's ``Ridge(fit_intercept=True)``):
``W(alpha) = V diag(1 / (s + alpha)) V^T Xc^T Yc`` from ``Xc^T Xc = V diag(s) V^T`` (D x D), or through the dual
``Xc Xc^T = U diag(s) U^T`` (n x n) when the fold has fewer samples than features. The per-fold Gram matrices come
from one pass over the data: the training Gram of a fold is the total minus that fold's validation Gram.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from ._checks import (
    check_features,
    check_grid,
    check_regression_test_set,
    check_targets,
    default_dtype,
    r2_per_output,
)
from .folds import resolve_folds
from .grid import ridge_alphas
from .result import ProbeResult

OP = "fit_ridge_cv"


def _ridge_predict_all(
    G_tr: torch.Tensor,
    XtY_tr: torch.Tensor,
    Xc_tr: torch.Tensor | None,
    Yc_tr: torch.Tensor | None,
    Xv_c: torch.Tensor,
    alphas: torch.Tensor,
    dual: bool,
) -> torch.Tensor:
    """Centred predictions of the validation rows for every alpha.

    Args:
        G_tr: (D, D) centred training Gram Xc^T Xc (primal only).
        XtY_tr: (D, T) Xc^T Yc (primal only).
        Xc_tr, Yc_tr: (n, D), (n, T) centred training data (dual only).
        Xv_c: (nv, D) validation features centred with the training mean.
        alphas: (G,).
        dual: use the n x n eigendecomposition.

    Returns:
        (G, nv, T) predictions minus the training target mean.
    """
    if not dual:
        s, V = torch.linalg.eigh(G_tr)  # (D,), (D, D)
        s = s.clamp_min(0)
        B = V.T @ XtY_tr  # (D, T)
        W = V @ (B[None] / (s[None, :, None] + alphas[:, None, None]))  # (G, D, T)
        return Xv_c @ W  # (G, nv, T)
    s, U = torch.linalg.eigh(Xc_tr @ Xc_tr.T)  # (n,), (n, n)
    s = s.clamp_min(0)
    B = U.T @ Yc_tr  # (n, T)
    P = (Xv_c @ Xc_tr.T) @ U  # (nv, n)
    return P @ (B[None] / (s[None, :, None] + alphas[:, None, None]))


def _partition_grams(X: torch.Tensor, pairs) -> list[torch.Tensor] | None:
    """The validation Grams Xv^T Xv (D, D) of every fold when the validation sets partition the N rows (k-fold CV):
    their sum is the full Gram, so the data is multiplied once instead of twice. None for other fold layouts."""
    n = X.shape[0]
    if sum(len(va) for _, va in pairs) != n or any(len(tr) + len(va) != n for tr, va in pairs):
        return None
    covered = np.zeros(n, dtype=bool)
    for _, va in pairs:
        covered[np.asarray(va)] = True
    if not covered.all():
        return None
    grams = []
    for _, va in pairs:
        Xv = X[torch.as_tensor(va, device=X.device)]  # (nv, D)
        grams.append(Xv.T @ Xv)
    return grams


def fit_ridge_cv(
    X: torch.Tensor | np.ndarray,
    Y: torch.Tensor | np.ndarray,
    grid: Sequence[float] | np.ndarray | None = None,
    folds: int | Sequence[tuple[Sequence[int], Sequence[int]]] = 5,
    *,
    X_test: torch.Tensor | np.ndarray | None = None,
    Y_test: torch.Tensor | np.ndarray | None = None,
    mode: str = "paper",
    seed: int = 0,
    dtype: torch.dtype | None = None,
    source: str | None = None,
) -> ProbeResult:
    """Cross-validated multi-output ridge regression (with intercept) over a grid of alpha, then a refit on all of X.

    Args:
        X: (N, D) float features (trainval); its device is used.
        Y: (N,) or (N, T) float targets.
        grid: (G,) alpha values; default ``ridge_alphas(mode=mode)`` (paper: ``1 / logspace(-6, 5, 45)``).
        folds: number of seeded shuffled folds, or explicit ``(train_idx, val_idx)`` pairs.
        X_test: (M, D) test features (optional).
        Y_test: (M,) or (M, T) test targets (needed with X_test).
        mode: ``"paper"`` or ``"corrected"``, only for the default grid (see ``grid.ridge_alphas``).
        seed: fold seed (when ``folds`` is an int).
        dtype: compute dtype; default float64 on the CPU, float32 on a GPU.
        source: where the data came from (a file name), quoted in error messages.

    Returns:
        ProbeResult: metric ``"r2"`` (sklearn's r2_score, uniform average over outputs); cv_scores (G,) in the order of
        ``grid``; the chosen alpha (first maximum); test metrics ``r2`` and ``mse`` (mean over all entries) when a test
        set is given; ``extra``: ``coef`` (D, T), ``intercept`` (T,), ``cv_mse`` (G,).

    Raises:
        TypeError: non-float features or targets, non-tensor input.
        ValueError: wrong ranks, targets that do not match the features, NaN/Inf (naming the row), bad grid or folds.
    """
    start = time.perf_counter()
    X = check_features(OP, "X", X, source=source)
    Y2 = check_targets(OP, "Y", Y, X.shape[0], "X", source=source)
    alphas_np = check_grid(OP, "grid", ridge_alphas(mode=mode) if grid is None else grid)
    pairs = resolve_folds(OP, folds, X.shape[0], seed=seed)
    X_test, Y_test = check_regression_test_set(OP, X, Y2, X_test, Y_test, source=source)
    device = X.device
    dt = default_dtype(device, dtype)
    X, Y2 = X.to(dt), Y2.to(device=device, dtype=dt)
    N, D = X.shape
    alphas = torch.as_tensor(alphas_np, dtype=dt, device=device)

    val_grams = _partition_grams(X, pairs)  # per-fold validation Grams when the folds partition the rows
    G_all = X.T @ X if val_grams is None else sum(val_grams)  # (D, D) uncentred
    XtY_all = X.T @ Y2  # (D, T)
    sx_all, sy_all = X.sum(dim=0), Y2.sum(dim=0)
    fold_r2 = np.zeros((len(pairs), len(alphas_np)))
    fold_mse = np.zeros_like(fold_r2)
    for f, (tr, va) in enumerate(pairs):
        tr_t, va_t = torch.as_tensor(tr, device=device), torch.as_tensor(va, device=device)
        Xv, Yv = X[va_t], Y2[va_t]
        n = len(tr)
        dual = n < D
        complement = len(tr) + len(va) == N  # (folds are checked disjoint and in range) train = all but validation
        if complement:
            sx, sy = sx_all - Xv.sum(dim=0), sy_all - Yv.sum(dim=0)
        else:
            sx, sy = X[tr_t].sum(dim=0), Y2[tr_t].sum(dim=0)
        mx, my = sx / n, sy / n
        Xv_c = Xv - mx
        if dual:
            Xc, Yc = X[tr_t] - mx, Y2[tr_t] - my
            pred = _ridge_predict_all(None, None, Xc, Yc, Xv_c, alphas, dual=True)
        else:
            if complement:
                G_tr = G_all - (Xv.T @ Xv if val_grams is None else val_grams[f])
                XtY = XtY_all - Xv.T @ Yv
            else:
                Xt, Yt = X[tr_t], Y2[tr_t]
                G_tr, XtY = Xt.T @ Xt, Xt.T @ Yt
            G_tr = G_tr - n * torch.outer(mx, mx)  # centre: sum (x - m)(x - m)^T = sum x x^T - n m m^T
            XtY = XtY - n * torch.outer(mx, my)
            pred = _ridge_predict_all(G_tr, XtY, None, None, Xv_c, alphas, dual=False)
        pred = pred + my  # (G, nv, T)
        fold_r2[f] = r2_per_output(Yv[None], pred).mean(dim=-1).cpu().numpy()
        fold_mse[f] = ((pred - Yv[None]) ** 2).mean(dim=(1, 2)).cpu().numpy()
    cv_scores = fold_r2.mean(axis=0)
    best = int(np.argmax(cv_scores))

    # Refit on all of X at the chosen alpha: one Cholesky solve.
    mx, my = sx_all / N, sy_all / N
    A = G_all - N * torch.outer(mx, mx)
    A.diagonal().add_(float(alphas_np[best]))
    coef = torch.cholesky_solve(XtY_all - N * torch.outer(mx, my), torch.linalg.cholesky(A))  # (D, T)
    intercept = my - mx @ coef  # (T,)
    test_metrics: dict[str, float] = {}
    if X_test is not None:
        Yt = Y_test.to(device=device, dtype=dt)
        pred = X_test.to(device=device, dtype=dt) @ coef + intercept
        test_metrics = {
            "r2": float(r2_per_output(Yt, pred).mean()),
            "mse": float(((pred - Yt) ** 2).mean()),
        }
    return ProbeResult(
        probe="ridge",
        metric="r2",
        param_names=("alpha",),
        grid=alphas_np,
        cv_scores=cv_scores,
        cv_std=fold_r2.std(axis=0),
        fold_scores=fold_r2,
        best_index=best,
        best_params={"alpha": float(alphas_np[best])},
        test_metrics=test_metrics,
        fit_time_s=time.perf_counter() - start,
        extra={"coef": coef, "intercept": intercept, "cv_mse": fold_mse.mean(axis=0)},
    )
