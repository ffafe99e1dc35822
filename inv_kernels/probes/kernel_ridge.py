"""RBF kernel-ridge probe for latent regression (docs/METHOD.md section 5): StandardScaler fit on the training fold, then
``KernelRidge(kernel='rbf')`` (no intercept, targets as given) over the alpha x gamma grid. Per (fold, gamma) one
eigendecomposition ``K = Q diag(l) Q^T`` serves every alpha: ``(K + alpha I)^-1 Y = Q diag(1 / (l + alpha)) Q^T Y``.
All targets (latents) are regressed at once as a multi-output problem.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from ._checks import check_features, check_grid, check_regression_test_set, check_targets, default_dtype
from .cv import cross_validate, select_best
from .folds import resolve_folds
from .grid import KRR_ALPHAS, KRR_GAMMAS
from .metrics import r2_per_output
from .result import ProbeResult

OP = "fit_kernel_ridge_cv"


def _standardise(X_fit: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """sklearn's StandardScaler: mean and population std of ``X_fit``; constant columns keep scale 1."""
    mean = X_fit.mean(dim=0)
    std = X_fit.std(dim=0, correction=0)
    std = torch.where(std > 10 * torch.finfo(std.dtype).eps * mean.abs().clamp_min(1), std, torch.ones_like(std))
    return [(Z - mean) / std for Z in (X_fit, *others)]


def _sq_dists(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """(n, m) squared Euclidean distances between rows of A (n, D) and B (m, D), clamped at zero."""
    d = (A * A).sum(dim=1)[:, None] + (B * B).sum(dim=1)[None, :] - 2.0 * (A @ B.T)
    return d.clamp_min(0)


def fit_kernel_ridge_cv(
    X: torch.Tensor | np.ndarray,
    Y: torch.Tensor | np.ndarray,
    alphas: Sequence[float] | np.ndarray | None = None,
    gammas: Sequence[float] | np.ndarray | None = None,
    folds: int | Sequence[tuple[Sequence[int], Sequence[int]]] = 5,
    *,
    X_test: torch.Tensor | np.ndarray | None = None,
    Y_test: torch.Tensor | np.ndarray | None = None,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    source: str | None = None,
) -> ProbeResult:
    """Cross-validated RBF kernel ridge with per-fold standardisation over alpha x gamma, then a refit on all of X.

    Args:
        X: (N, D) float features (trainval); its device is used.
        Y: (N,) or (N, T) float targets (T latents regressed together).
        alphas: (A,) ridge penalties; default the paper's logspace(0, -4, 5).
        gammas: (B,) RBF widths, ``K = exp(-gamma ||x - x'||^2)``; default logspace(-5, 2, 8).
        folds: number of seeded shuffled folds, or explicit ``(train_idx, val_idx)`` pairs.
        X_test: (M, D) test features (optional).
        Y_test: (M,) or (M, T) test targets (needed with X_test).
        seed: fold seed (when ``folds`` is an int).
        dtype: compute dtype; default float64 on the CPU, float32 on a GPU.
        source: where the data came from (a file name), quoted in error messages.

    Returns:
        ProbeResult: metric ``"r2"`` (uniform average over outputs, as ``pipe.score``); ``grid`` (A * B, 2) with columns
        (alpha, gamma), alpha-major; cv_scores (A * B,); the chosen pair (first maximum); test metrics ``r2`` and
        ``r2_per_output`` entries ``r2_<t>``; ``extra``: ``dual_coef`` (N, T).

    Raises:
        TypeError: non-float features or targets, non-tensor input.
        ValueError: wrong ranks, targets that do not match the features, NaN/Inf (naming the row), bad grids or folds.
    """
    start = time.perf_counter()
    X = check_features(OP, "X", X, source=source)
    Y2 = check_targets(OP, "Y", Y, X.shape[0], "X", source=source)
    a_np = check_grid(OP, "alphas", KRR_ALPHAS if alphas is None else alphas)
    g_np = check_grid(OP, "gammas", KRR_GAMMAS if gammas is None else gammas)
    pairs = resolve_folds(OP, folds, X.shape[0], seed=seed)
    X_test, Y_test = check_regression_test_set(OP, X, Y2, X_test, Y_test, source=source)
    device = X.device
    dt = default_dtype(device, dtype)
    X, Y2 = X.to(dt), Y2.to(device=device, dtype=dt)
    alphas_t = torch.as_tensor(a_np, dtype=dt, device=device)
    A, B = len(a_np), len(g_np)

    def score_fold(f: int, tr: np.ndarray, va: np.ndarray) -> np.ndarray:
        """(A, B): the fold's validation R^2 over alpha x gamma."""
        tr_t, va_t = torch.as_tensor(tr, device=device), torch.as_tensor(va, device=device)
        Xtr, Xv = _standardise(X[tr_t], X[va_t])
        Ytr, Yv = Y2[tr_t], Y2[va_t]
        D2, D2v = _sq_dists(Xtr, Xtr), _sq_dists(Xv, Xtr)  # (n, n), (nv, n)
        r2 = np.zeros((A, B))
        for j, gamma in enumerate(g_np):
            lam, Q = torch.linalg.eigh(torch.exp(-gamma * D2))
            lam = lam.clamp_min(0)
            QtY = Q.T @ Ytr  # (n, T)
            dual = Q @ (QtY[None] / (lam[None, :, None] + alphas_t[:, None, None]))  # (A, n, T)
            pred = torch.exp(-gamma * D2v) @ dual  # (A, nv, T)
            r2[:, j] = r2_per_output(Yv[None], pred).mean(dim=-1).cpu().numpy()
        return r2

    fold_scores = cross_validate(pairs, score_fold).reshape(len(pairs), A * B)
    cv_scores, cv_std, best = select_best(fold_scores)
    alpha, gamma = float(a_np[best // B]), float(g_np[best % B])

    # Refit on all of X: one Cholesky solve at the chosen pair.
    if X_test is not None:
        Xs, Xts = _standardise(X, X_test.to(device=device, dtype=dt))
    else:
        (Xs,) = _standardise(X)
    Kmat = torch.exp(-gamma * _sq_dists(Xs, Xs))
    Kmat.diagonal().add_(alpha)
    dual_coef = torch.cholesky_solve(Y2, torch.linalg.cholesky(Kmat))  # (N, T)
    test_metrics: dict[str, float] = {}
    if X_test is not None:
        Yt = Y_test.to(device=device, dtype=dt)
        pred = torch.exp(-gamma * _sq_dists(Xts, Xs)) @ dual_coef
        per = r2_per_output(Yt, pred)
        test_metrics = {"r2": float(per.mean())}
        test_metrics.update({f"r2_{t}": float(v) for t, v in enumerate(per.tolist())})
    grid = np.stack(np.meshgrid(a_np, g_np, indexing="ij"), axis=-1).reshape(A * B, 2)
    return ProbeResult(
        probe="kernel_ridge",
        metric="r2",
        param_names=("alpha", "gamma"),
        grid=grid,
        cv_scores=cv_scores,
        cv_std=cv_std,
        fold_scores=fold_scores,
        best_index=best,
        best_params={"alpha": alpha, "gamma": gamma},
        test_metrics=test_metrics,
        fit_time_s=time.perf_counter() - start,
        extra={"dual_coef": dual_coef},
    )
