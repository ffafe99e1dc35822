"""Multi-output ridge probe: per fold one eigendecomposition, then every alpha of the grid in closed form
(docs/METHOD.md sections 6 and 12, "Inefficiencies").

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
    check_mask,
    check_regression_test_set,
    check_targets,
    default_dtype,
)
from .cv import cross_validate, select_best
from .folds import resolve_folds
from .grid import ridge_alphas
from .metrics import r2_per_output
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


def ridge_path(X_tr: torch.Tensor, Y_tr: torch.Tensor, X_va: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """Predictions of ridge with an intercept (sklearn's ``Ridge(alpha, fit_intercept=True)``) for every alpha, from
    one eigendecomposition (of the D x D Gram, or of the n x n one when n < D).

    Args:
        X_tr: (n, D) training features. Y_tr: (n, T) training targets. X_va: (m, D) features to predict.
        alphas: (G,) penalties, in the dtype and on the device of the data.

    Returns:
        (G, m, T) predictions.
    """
    mx, my = X_tr.mean(dim=0), Y_tr.mean(dim=0)  # (D,), (T,)
    Xc, Yc, Xv_c = X_tr - mx, Y_tr - my, X_va - mx  # (n, D), (n, T), (m, D)
    if Xc.shape[0] < Xc.shape[1]:
        return _ridge_predict_all(None, None, Xc, Yc, Xv_c, alphas, dual=True) + my
    return _ridge_predict_all(Xc.T @ Xc, Xc.T @ Yc, None, None, Xv_c, alphas, dual=False) + my


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


def _cv_per_output(X: torch.Tensor, Y2: torch.Tensor, pairs, alphas: torch.Tensor):
    """Validation R^2 and MSE of every fold, alpha and output, and the data's totals for the refit.

    Args:
        X: (N, D), Y2: (N, T) in the compute dtype. pairs: (train_idx, val_idx) per fold. alphas: (G,).

    Returns:
        (r2 (F, G, T), mse (F, G, T) as float64 numpy, totals (X^T X (D, D), X^T Y (D, T), sum x (D,), sum y (T,))).
    """
    device = X.device
    N, D = X.shape
    val_grams = _partition_grams(X, pairs)  # per-fold validation Grams when the folds partition the rows
    G_all = X.T @ X if val_grams is None else sum(val_grams)  # (D, D) uncentred
    XtY_all = X.T @ Y2  # (D, T)
    sx_all, sy_all = X.sum(dim=0), Y2.sum(dim=0)

    def score_fold(f: int, tr: np.ndarray, va: np.ndarray) -> np.ndarray:
        """(2, G, T): the fold's validation R^2 and MSE."""
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
        return torch.stack([r2_per_output(Yv[None], pred), ((pred - Yv[None]) ** 2).mean(dim=1)]).cpu().numpy()

    scores = cross_validate(pairs, score_fold)  # (F, 2, G, T)
    return scores[:, 0], scores[:, 1], (G_all, XtY_all, sx_all, sy_all)


def _refit(totals, N: int, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Ridge on all N rows at one alpha from their totals (``_cv_per_output``): (coef (D, T), intercept (T,))."""
    G_all, XtY_all, sx_all, sy_all = totals
    mx, my = sx_all / N, sy_all / N
    A = G_all - N * torch.outer(mx, mx)
    A.diagonal().add_(float(alpha))
    coef = torch.cholesky_solve(XtY_all - N * torch.outer(mx, my), torch.linalg.cholesky(A))  # (D, T)
    return coef, my - mx @ coef


def _mask_groups(mask: np.ndarray | None, n_outputs: int) -> list[tuple[np.ndarray | None, list[int]]]:
    """The outputs grouped by their column of the mask: [(visible rows or None for all, output indices)]."""
    if mask is None:
        return [(None, list(range(n_outputs)))]
    groups: dict[bytes, tuple[np.ndarray, list[int]]] = {}
    for t in range(n_outputs):
        column = mask[:, t]
        groups.setdefault(column.tobytes(), (np.flatnonzero(column), []))[1].append(t)
    return list(groups.values())


def _visible_pairs(pairs, rows: np.ndarray, N: int, outputs: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The folds restricted to ``rows`` and renumbered as positions in it; every part keeps at least 2 rows."""
    where = np.full(N, -1)
    where[rows] = np.arange(len(rows))
    restricted = []
    for f, (tr, va) in enumerate(pairs):
        parts = [where[np.asarray(idx)] for idx in (tr, va)]
        parts = [p[p >= 0] for p in parts]
        for part, name in zip(parts, ("training", "validation")):
            if len(part) < 2:
                raise ValueError(
                    f"{OP}: output {outputs[0]} of Y is visible in only {len(part)} "
                    f"row{'s' if len(part) != 1 else ''} of fold {f}'s {name} set (at least 2 needed); "
                    f"use fewer folds or check the mask"
                )
        restricted.append((parts[0], parts[1]))
    return restricted


def fit_ridge_cv(
    X: torch.Tensor | np.ndarray,
    Y: torch.Tensor | np.ndarray,
    grid: Sequence[float] | np.ndarray | None = None,
    folds: int | Sequence[tuple[Sequence[int], Sequence[int]]] = 5,
    *,
    X_test: torch.Tensor | np.ndarray | None = None,
    Y_test: torch.Tensor | np.ndarray | None = None,
    mask: torch.Tensor | np.ndarray | None = None,
    mask_test: torch.Tensor | np.ndarray | None = None,
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
        mask: (N,) or (N, T) bool, like Y: which targets are visible (annotated). Each output is then fitted and
            scored on the rows where it is visible only, so the values of hidden targets (placeholders) never enter
            the fit, the CV scores or the R^2; the folds are the same rows for every output. Default: all visible.
        mask_test: (M,) or (M, T) bool, the same for the test set (needed with a mask and a test set).
        mode: ``"paper"`` or ``"corrected"``, only for the default grid (see ``grid.ridge_alphas``).
        seed: fold seed (when ``folds`` is an int).
        dtype: compute dtype; default float64 on the CPU, float32 on a GPU.
        source: where the data came from (a file name), quoted in error messages.

    Returns:
        ProbeResult: metric ``"r2"`` (sklearn's r2_score, uniform average over outputs); cv_scores (G,) in the order of
        ``grid``; the chosen alpha (first maximum); test metrics ``r2`` and ``mse`` (mean over all entries; with a mask,
        the mean over outputs of each output's mean over its visible rows) when a test set is given; ``extra``:
        ``coef`` (D, T), ``intercept`` (T,), ``cv_mse`` (G,).

    Raises:
        TypeError: non-float features or targets, non-tensor input, a mask that is not boolean.
        ValueError: wrong ranks, targets that do not match the features, NaN/Inf (naming the row), bad grid or folds;
            a mask of another shape than its targets, an output visible in fewer than 2 rows of a fold's training or
            validation set or of the test set (named).
    """
    start = time.perf_counter()
    X = check_features(OP, "X", X, source=source)
    Y2 = check_targets(OP, "Y", Y, X.shape[0], "X", source=source)
    alphas_np = check_grid(OP, "grid", ridge_alphas(mode=mode) if grid is None else grid)
    pairs = resolve_folds(OP, folds, X.shape[0], seed=seed)
    X_test, Y_test = check_regression_test_set(OP, X, Y2, X_test, Y_test, source=source)
    mask_np = None if mask is None else check_mask(OP, "mask", mask, tuple(Y2.shape), "Y")
    mask_test_np = _test_mask(mask_np, mask_test, Y_test)
    device = X.device
    dt = default_dtype(device, dtype)
    X, Y2 = X.to(dt), Y2.to(device=device, dtype=dt)
    N, D = X.shape
    T = Y2.shape[1]
    alphas = torch.as_tensor(alphas_np, dtype=dt, device=device)

    fold_r2 = np.zeros((len(pairs), len(alphas_np), T))
    fold_mse = np.zeros_like(fold_r2)
    fits = []  # per group of outputs: (visible rows, outputs, totals of those rows)
    for rows, outputs in _mask_groups(mask_np, T):
        cols = torch.as_tensor(outputs, device=device)
        if rows is None or len(rows) == N:
            Xg, Yg, pairs_g = X, Y2[:, cols], pairs
        else:
            pairs_g = _visible_pairs(pairs, rows, N, outputs)
            rows_t = torch.as_tensor(rows, device=device)
            Xg, Yg = X[rows_t], Y2[rows_t][:, cols]
        r2_g, mse_g, totals = _cv_per_output(Xg, Yg, pairs_g, alphas)
        fold_r2[:, :, outputs], fold_mse[:, :, outputs] = r2_g, mse_g
        fits.append((rows, outputs, totals, Xg.shape[0]))
    fold_scores = fold_r2.mean(axis=2)  # (F, G): uniform average over outputs
    cv_scores, cv_std, best = select_best(fold_scores)

    # Refit every group at the chosen alpha: one Cholesky solve each.
    coef = torch.empty(D, T, dtype=dt, device=device)
    intercept = torch.empty(T, dtype=dt, device=device)
    for _, outputs, totals, n_rows in fits:
        coef[:, outputs], intercept[outputs] = _refit(totals, n_rows, alphas_np[best])
    test_metrics: dict[str, float] = {}
    if X_test is not None:
        Yt = Y_test.to(device=device, dtype=dt)
        pred = X_test.to(device=device, dtype=dt) @ coef + intercept
        test_metrics = _test_scores(Yt, pred, mask_test_np)
    return ProbeResult(
        probe="ridge",
        metric="r2",
        param_names=("alpha",),
        grid=alphas_np,
        cv_scores=cv_scores,
        cv_std=cv_std,
        fold_scores=fold_scores,
        best_index=best,
        best_params={"alpha": float(alphas_np[best])},
        test_metrics=test_metrics,
        fit_time_s=time.perf_counter() - start,
        extra={"coef": coef, "intercept": intercept, "cv_mse": fold_mse.mean(axis=(0, 2))},
    )


def _test_mask(mask: np.ndarray | None, mask_test, Y_test: torch.Tensor | None) -> np.ndarray | None:
    if mask_test is not None and Y_test is None:
        raise ValueError(f"{OP}: mask_test needs X_test and Y_test")
    if mask is not None and Y_test is not None and mask_test is None:
        raise ValueError(f"{OP}: with a mask, the test set needs mask_test (which test targets are visible)")
    return None if mask_test is None else check_mask(OP, "mask_test", mask_test, tuple(Y_test.shape), "Y_test")


def _test_scores(Yt: torch.Tensor, pred: torch.Tensor, mask: np.ndarray | None) -> dict[str, float]:
    """Test R^2 and MSE, each the mean over outputs of the output's score over its visible rows (all rows without a
    mask, where the MSE is then the mean over every entry)."""
    if mask is None:
        return {"r2": float(r2_per_output(Yt, pred).mean()), "mse": float(((pred - Yt) ** 2).mean())}
    r2, mse = [], []
    for t in range(Yt.shape[1]):
        rows = torch.as_tensor(np.flatnonzero(mask[:, t]), device=Yt.device)
        if len(rows) < 2:
            raise ValueError(
                f"{OP}: output {t} of Y_test is visible in only {len(rows)} row"
                f"{'s' if len(rows) != 1 else ''} (at least 2 needed for its R^2)"
            )
        yt, pt = Yt[rows, t : t + 1], pred[rows, t : t + 1]
        r2.append(float(r2_per_output(yt, pt)[0]))
        mse.append(float(((pt - yt) ** 2).mean()))
    return {"r2": float(np.mean(r2)), "mse": float(np.mean(mse))}
