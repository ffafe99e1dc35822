"""Multinomial logistic-regression probe: every (fold, C) pair solved as one batched problem by a batched L-BFGS,
warm-started along the C path (docs/METHOD.md sections 6 and 12, "Inefficiencies").

Objective per problem (fold f, value C), the one sklearn's ``LogisticRegression(solver='lbfgs')`` minimises, scaled
like sklearn (by the number of training samples n_f, which does not move the minimiser):

    J(W, b) = (1 / n_f) * sum_i CE(x_i W + b, y_i) + 1 / (2 C n_f) * ||W||^2         (bias b unpenalised)

i.e. ``C * sum CE + 0.5 * ||W||^2`` divided by ``C n_f``. Convergence as scipy's L-BFGS-B under sklearn: max |grad J|
<= tol (1e-4) or a relative decrease of J below 64 * machine epsilon; ``max_iter`` is per path step and is set high
enough not to bind on well-posed problems. Features are not standardised (as the paper).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from ._checks import check_features, check_grid, check_labels, check_test_features, default_dtype
from .cv import select_best
from .folds import check_class_counts, resolve_folds
from .grid import logistic_Cs
from .metrics import class_scores
from .result import ProbeResult

OP = "fit_logistic_cv"
METRICS = ("accuracy", "mean_per_class_accuracy")


def _pad_rows(parts: list[torch.Tensor], fill: float = 0.0) -> torch.Tensor:
    """Stacks (n_f, ...) tensors into (F, max n_f, ...) with ``fill`` in the padding."""
    n = max(p.shape[0] for p in parts)
    out = parts[0].new_full((len(parts), n, *parts[0].shape[1:]), fill)
    for f, p in enumerate(parts):
        out[f, : p.shape[0]] = p
    return out


class _BatchedSoftmaxLoss:
    """J and its gradient for a batch of problems theta (F, D+1, g, K): fold f's data against g values of C.

    The last row of theta is the bias (the features carry a trailing column of ones; padded rows are all zero).
    """

    def __init__(self, Xa: torch.Tensor, Y: torch.Tensor, mask: torch.Tensor):
        self.Xa = Xa  # (F, n, D+1)
        self.XaT = Xa.transpose(1, 2)  # (F, D+1, n)
        self.Y = Y  # (F, n, K) one-hot, zero on padded rows
        self.w = mask / mask.sum(dim=1, keepdim=True)  # (F, n) 1/n_f on real rows, 0 on padding
        self.n = mask.sum(dim=1)  # (F,)
        self.F, self.N, self.Dp1 = Xa.shape
        self.K = Y.shape[2]

    def __call__(self, theta: torch.Tensor, inv_C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns J (F, g) and grad J (F, D+1, g, K); ``inv_C`` is (g,)."""
        F, Dp1, g, K = theta.shape
        Z = torch.bmm(self.Xa, theta.reshape(F, Dp1, g * K)).view(F, self.N, g, K)  # logits
        lse = torch.logsumexp(Z, dim=3)  # (F, n, g)
        ce = lse - torch.einsum("fngk,fnk->fng", Z, self.Y)
        loss = torch.einsum("fng,fn->fg", ce, self.w)
        reg = inv_C[None, :] / self.n[:, None]  # (F, g): 1 / (C n_f)
        W = theta[:, :-1]
        loss = loss + 0.5 * reg * (W * W).sum(dim=(1, 3))
        R = (torch.exp(Z - lse[..., None]) - self.Y[:, :, None, :]) * self.w[:, :, None, None]  # dJ/dZ
        grad = torch.bmm(self.XaT, R.reshape(F, self.N, g * K)).view(F, Dp1, g, K)
        grad[:, :-1] += reg[:, None, :, None] * W
        return loss, grad


class _BohningPreconditioner:
    """Inverse of Bohning's curvature bound of the multinomial loss, 0.5 * Sigma_f + reg * I on the weights and 0.5 on
    the bias, where Sigma_f is the fold's (centred) feature covariance: ``M^-1 q = V diag(1 / (s/2 + 1/(C n_f))) V^T q``.

    The features are centred per fold, so Sigma_f has no bias block and one eigendecomposition per fold serves every C.
    """

    def __init__(self, Xa: torch.Tensor, mask: torch.Tensor):
        w = mask / mask.sum(dim=1, keepdim=True)  # (F, n)
        Xc = Xa[:, :, :-1]  # (F, n, D), centred on each fold's training rows
        cov = torch.bmm(Xc.transpose(1, 2), Xc * w[:, :, None])  # (F, D, D)
        s, V = torch.linalg.eigh(cov)
        self.half_s = 0.5 * s.clamp_min(0)  # (F, D)
        self.V = V
        self.n = mask.sum(dim=1)  # (F,)

    def __call__(self, q: torch.Tensor, inv_C: torch.Tensor) -> torch.Tensor:
        F, Dp1, g, K = q.shape
        reg = inv_C[None, :] / self.n[:, None]  # (F, g)
        qw = torch.bmm(self.V.transpose(1, 2), q[:, :-1].reshape(F, Dp1 - 1, g * K)).view(F, Dp1 - 1, g, K)
        qw = qw / (self.half_s[:, :, None, None] + reg[:, None, :, None])
        out = torch.empty_like(q)
        out[:, :-1] = torch.bmm(self.V, qw.reshape(F, Dp1 - 1, g * K)).view(F, Dp1 - 1, g, K)
        out[:, -1] = 2.0 * q[:, -1]
        return out


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-problem inner product of (F, D+1, g, K) tensors: (F, g)."""
    return (a * b).sum(dim=(1, 3))


def _b(s: torch.Tensor) -> torch.Tensor:
    """(F, g) scalars broadcast against (F, D+1, g, K)."""
    return s[:, None, :, None]


def batched_lbfgs(
    fun: _BatchedSoftmaxLoss,
    theta: torch.Tensor,
    inv_C: torch.Tensor,
    *,
    tol: float = 1e-4,
    max_iter: int = 1000,
    history: int = 10,
    max_backtracks: int = 30,
    precond=None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Minimises every problem of the batch with L-BFGS (two-loop recursion, per-problem Armijo backtracking).

    Problems stop independently (their step is frozen at zero once converged), so the batch runs until all have
    converged or ``max_iter`` iterations.

    Args:
        fun: the batched objective.
        theta: (F, D+1, g, K) starting point.
        inv_C: (g,) values 1 / C.
        tol: max |grad| at which a problem has converged (sklearn's ``tol``).
        max_iter: iteration cap.
        history: L-BFGS memory (scipy's default maxcor = 10).
        max_backtracks: halvings of the step before a problem is declared stuck (and stopped).
        precond: optional ``(q, inv_C) -> M^-1 q``, the initial inverse Hessian (scaled per problem by
            s^T y / y^T M^-1 y once curvature pairs exist); plain scaled identity when None.

    Returns:
        (theta (F, D+1, g, K), converged (F, g) bool, iterations run).
    """
    ftol = 64 * torch.finfo(theta.dtype).eps
    f, grad = fun(theta, inv_C)
    active = grad.abs().amax(dim=(1, 3)) > tol  # (F, g)
    converged = ~active
    S: list[torch.Tensor] = []
    Yh: list[torch.Tensor] = []
    rhos: list[torch.Tensor] = []
    gamma = torch.ones_like(f)
    it = 0
    while it < max_iter and bool(active.any()):
        it += 1
        # Two-loop recursion: d = -H grad.
        q = -grad
        alphas = []
        for s, y, rho in zip(reversed(S), reversed(Yh), reversed(rhos)):
            a = rho * _dot(s, q)
            q = q - _b(a) * y
            alphas.append(a)
        d = _b(gamma) * (q if precond is None else precond(q, inv_C))
        for s, y, rho, a in zip(S, Yh, rhos, reversed(alphas)):
            beta = rho * _dot(y, d)
            d = d + _b(a - beta) * s
        gtd = _dot(grad, d)
        not_descent = gtd >= 0
        if bool(not_descent.any()):  # fall back to steepest descent there
            d = torch.where(_b(not_descent), -grad, d)
            gtd = torch.where(not_descent, -_dot(grad, grad), gtd)
        d = d * _b(active.to(d.dtype))
        if S or precond is not None:  # a preconditioned first step is already well scaled
            t = torch.ones_like(f)
        else:  # first step: unit length, as scipy
            t = torch.clamp(1.0 / torch.sqrt(_dot(d, d)).clamp_min(1e-300), max=1.0)
        pending = active.clone()
        for _ in range(max_backtracks):
            theta_new = theta + _b(t) * d
            f_new, grad_new = fun(theta_new, inv_C)
            ok = (f_new <= f + 1e-4 * t * gtd) & torch.isfinite(f_new)
            pending = pending & ~ok
            if not bool(pending.any()):
                break
            t = torch.where(pending, 0.5 * t, t)
        stuck = pending  # no acceptable step: stop these problems where they are
        if bool(stuck.any()):
            t = torch.where(stuck, torch.zeros_like(t), t)
            theta_new = theta + _b(t) * d
            f_new, grad_new = fun(theta_new, inv_C)
            active = active & ~stuck
        s = theta_new - theta
        y = grad_new - grad
        sy = _dot(s, y)
        good = sy > 1e-10 * torch.sqrt(_dot(s, s) * _dot(y, y)).clamp_min(1e-300)
        rho = torch.where(good, 1.0 / torch.where(good, sy, torch.ones_like(sy)), torch.zeros_like(sy))
        yHy = _dot(y, y) if precond is None else _dot(y, precond(y, inv_C))
        gamma = torch.where(good, sy / yHy.clamp_min(1e-300), gamma)
        S.append(s)
        Yh.append(y)
        rhos.append(rho)
        if len(S) > history:
            S.pop(0), Yh.pop(0), rhos.pop(0)
        small_grad = grad_new.abs().amax(dim=(1, 3)) <= tol
        small_dec = (f - f_new) <= ftol * torch.maximum(torch.maximum(f.abs(), f_new.abs()), torch.ones_like(f))
        done = active & (small_grad | small_dec)
        converged = converged | (active & small_grad)
        active = active & ~done
        theta, f, grad = theta_new, f_new, grad_new
    return theta, converged, it


def fit_logistic_cv(
    X: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    grid: Sequence[float] | np.ndarray | None = None,
    folds: int | Sequence[tuple[Sequence[int], Sequence[int]]] = 5,
    *,
    X_test: torch.Tensor | np.ndarray | None = None,
    y_test: torch.Tensor | np.ndarray | None = None,
    metric: str = "accuracy",
    seed: int = 0,
    stratify: bool = False,
    tol: float = 1e-4,
    max_iter: int = 1000,
    path_chunk: int = 1,
    dtype: torch.dtype | None = None,
    source: str | None = None,
) -> ProbeResult:
    """Cross-validated multinomial logistic regression over a grid of C, then a refit on all of X.

    Every (fold, C) problem of a path step is solved at once by a batched L-BFGS on the features' device; the C path is
    walked in ascending order, each step warm-started from the previous step's solutions. ``path_chunk`` values of C
    are solved jointly per step (1: the longest warm-started path, fewest iterations; ``len(grid)``: one batch, fewest
    sequential steps, better on a GPU).

    Args:
        X: (N, D) float features (trainval), torch tensor or numpy array; its device is used.
        y: (N,) integer labels (any integer values; mapped to 0..K-1 in sorted order).
        grid: (G,) values of C; default the paper's ``1 / logspace(-6, 5, 45)`` (``logistic_Cs()``).
        folds: number of seeded shuffled folds, or explicit ``(train_idx, val_idx)`` pairs.
        X_test: (M, D) test features (optional).
        y_test: (M,) test labels (needed with X_test).
        metric: CV selection metric, ``"accuracy"`` or ``"mean_per_class_accuracy"``.
        seed: fold seed (when ``folds`` is an int).
        stratify: stratified folds (when ``folds`` is an int).
        tol: gradient tolerance (sklearn's default 1e-4).
        max_iter: L-BFGS iteration cap per path step and for the refit.
        path_chunk: values of C solved jointly per path step.
        dtype: compute dtype; default float64 on the CPU, float32 on a GPU.
        source: where the data came from (a file name), quoted in error messages.

    Returns:
        ProbeResult with cv_scores (G,) in the order of ``grid``, the chosen C (first maximum of the mean CV score),
        test metrics ``accuracy`` and ``mean_per_class_accuracy`` (scores in [0, 1]) when a test set is given, and in
        ``extra``: ``coef`` (D, K), ``intercept`` (K,), ``classes`` (K,), ``iterations``, ``converged_fraction``.

    Raises:
        TypeError: non-float features, non-integer labels, non-tensor input.
        ValueError: wrong ranks, labels that do not match the features, NaN/Inf features (naming the row), a class
            with fewer samples than folds (naming the class), fewer than 2 classes, a bad grid, metric or fold spec.
    """
    start = time.perf_counter()
    X = check_features(OP, "X", X, source=source)
    y = check_labels(OP, "y", y, X.shape[0], "X", source=source)
    if metric not in METRICS:
        raise ValueError(f"{OP}: metric must be one of {METRICS}, got {metric!r}")
    if isinstance(path_chunk, bool) or not isinstance(path_chunk, int) or path_chunk < 1:
        raise ValueError(f"{OP}: path_chunk must be an int >= 1, got {path_chunk!r}")
    Cs = check_grid(OP, "grid", logistic_Cs() if grid is None else grid)
    device = X.device
    dt = default_dtype(device, dtype)
    classes, y_idx = torch.unique(y.to(device), return_inverse=True)
    K = classes.numel()
    if K < 2:
        raise ValueError(f"{OP}: y must contain at least 2 classes, got {K}")
    n_folds = folds if isinstance(folds, int) else len(folds)
    check_class_counts(y, n_folds, source=source)
    pairs = resolve_folds(OP, folds, X.shape[0], seed=seed, y=y, stratify=stratify)
    X_test = check_test_features(OP, X, X_test, y_test, "y_test", source=source)
    if X_test is not None:
        y_test = check_labels(OP, "y_test", y_test, X_test.shape[0], "X_test", source=source)

    Xa = torch.cat([X.to(dt), torch.ones(X.shape[0], 1, dtype=dt, device=device)], dim=1)  # (N, D+1)
    Yoh = torch.nn.functional.one_hot(y_idx, K).to(dt)  # (N, K)
    tr_idx = [torch.as_tensor(tr, device=device) for tr, _ in pairs]
    va_idx = [torch.as_tensor(va, device=device) for _, va in pairs]
    # Centre the features on each training fold: logits (x - mu) W + b' are an exact reparametrisation of x W + b
    # (b = b' - mu W; the penalty is on W only), and make the preconditioner's covariance free of a bias block.
    mus = [Xa[i, :-1].mean(dim=0) for i in tr_idx]
    centre = [torch.cat([mu, mu.new_zeros(1)]) for mu in mus]
    masks = _pad_rows([torch.ones(len(i), dtype=dt, device=device) for i in tr_idx])
    Xtr = _pad_rows([Xa[i] - c for i, c in zip(tr_idx, centre)])
    fun = _BatchedSoftmaxLoss(Xtr, _pad_rows([Yoh[i] for i in tr_idx]), masks)
    precond = _BohningPreconditioner(Xtr, masks)
    Xv = _pad_rows([Xa[i] - c for i, c in zip(va_idx, centre)])  # (F, nv, D+1)
    yv = _pad_rows([y_idx[i] for i in va_idx], fill=-1)  # (F, nv)
    valid = yv >= 0
    F, Dp1 = len(pairs), Xa.shape[1]

    # Walk the path in ascending C; solutions (F, D+1, G, K) kept for the refit's warm start.
    order = np.argsort(Cs, kind="stable")
    solutions = torch.zeros(F, Dp1, len(Cs), K, dtype=dt, device=device)
    fold_acc = torch.zeros(F, len(Cs), dtype=torch.float64, device=device)
    fold_mpca = torch.zeros_like(fold_acc)
    theta_prev = torch.zeros(F, Dp1, 1, K, dtype=dt, device=device)
    iterations, n_conv = 0, 0
    for lo in range(0, len(Cs), path_chunk):
        cols = order[lo : lo + path_chunk]
        inv_C = torch.as_tensor(1.0 / Cs[cols], dtype=dt, device=device)
        theta0 = theta_prev.expand(F, Dp1, len(cols), K).contiguous()
        theta, conv, it = batched_lbfgs(fun, theta0, inv_C, tol=tol, max_iter=max_iter, precond=precond)
        iterations += it
        n_conv += int(conv.sum())
        cols_t = torch.as_tensor(cols, device=device)
        solutions[:, :, cols_t] = theta
        pred = torch.bmm(Xv, theta.reshape(F, Dp1, -1)).view(F, Xv.shape[1], len(cols), K).argmax(dim=3)
        acc, mpca = class_scores(pred, yv, valid, K)
        fold_acc[:, cols_t], fold_mpca[:, cols_t] = acc, mpca
        theta_prev = theta[:, :, -1:]

    fold_scores = (fold_acc if metric == "accuracy" else fold_mpca).cpu().numpy()
    cv_scores, cv_std, best = select_best(fold_scores)

    # Refit on all of X at the chosen C, from the folds' mean solution.
    mu = Xa[:, :-1].mean(dim=0)
    Xfull = (Xa - torch.cat([mu, mu.new_zeros(1)]))[None]
    ones = torch.ones(1, X.shape[0], dtype=dt, device=device)
    full = _BatchedSoftmaxLoss(Xfull, Yoh[None], ones)
    theta0 = solutions[:, :, best : best + 1].mean(dim=0, keepdim=True)
    inv_C = torch.as_tensor([1.0 / Cs[best]], dtype=dt, device=device)
    theta, conv, it = batched_lbfgs(
        full, theta0, inv_C, tol=tol, max_iter=max_iter, precond=_BohningPreconditioner(Xfull, ones)
    )
    iterations += it
    coef = theta[0, :-1, 0]  # (D, K)
    intercept = theta[0, -1, 0] - mu @ coef  # (K,) back from the centred parametrisation

    test_metrics: dict[str, float] = {}
    if X_test is not None:
        logits = X_test.to(device=device, dtype=dt) @ coef + intercept  # (M, K)
        predicted = classes[logits.argmax(dim=1)]  # (M,) labels
        # One index space for the test labels and the predictions: test classes unseen in y count as misses, and the
        # mean per-class accuracy averages over the classes present in y_test.
        labels, idx = torch.unique(torch.cat([y_test.to(device), predicted]), return_inverse=True)
        y_idx_test, pred_idx = idx[: len(y_test)], idx[len(y_test) :]  # (M,), (M,)
        everything = torch.ones(1, len(y_test), dtype=torch.bool, device=device)
        acc, mpca = class_scores(pred_idx[None, :, None], y_idx_test[None], everything, labels.numel())  # (1, 1) each
        test_metrics = {"accuracy": float(acc), "mean_per_class_accuracy": float(mpca)}
    return ProbeResult(
        probe="logistic",
        metric=metric,
        param_names=("C",),
        grid=Cs,
        cv_scores=cv_scores,
        cv_std=cv_std,
        fold_scores=fold_scores,
        best_index=best,
        best_params={"C": float(Cs[best])},
        test_metrics=test_metrics,
        fit_time_s=time.perf_counter() - start,
        extra={
            "coef": coef,
            "intercept": intercept,
            "classes": classes,
            "iterations": iterations,
            "converged_fraction": n_conv / (F * len(Cs)),
            "refit_converged": bool(conv.all()),
            "fold_accuracy": fold_acc.cpu().numpy(),
            "fold_mean_per_class_accuracy": fold_mpca.cpu().numpy(),
        },
    )
