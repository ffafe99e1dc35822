"""RBF kernel-ridge probe against sklearn's StandardScaler + KernelRidge on the same folds."""

import numpy as np
import pytest
import torch
from sklearn.kernel_ridge import KernelRidge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from inv_kernels.probes import KRR_ALPHAS, KRR_GAMMAS, fit_kernel_ridge_cv, kfold_indices


def _latents(rng, n, d=8):
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, size=d) + rng.normal(size=d)  # unequal scales: scaler matters
    Y = np.stack([np.sin(X[:, 0]), 0.3 * X[:, 1] ** 2 / 3, X[:, 2] * X[:, 3] / 5], axis=1)
    return X, Y + 0.1 * rng.normal(size=Y.shape)


def _pipe(alpha, gamma):
    return make_pipeline(StandardScaler(), KernelRidge(alpha=alpha, kernel="rbf", gamma=gamma))


def test_kernel_ridge_parity_with_sklearn():
    rng = np.random.default_rng(np.random.randint(2**31))
    X, Y = _latents(rng, 200)
    Xt, Yt = _latents(rng, 100)
    folds = kfold_indices(200, 5, seed=2)
    res = fit_kernel_ridge_cv(torch.as_tensor(X), torch.as_tensor(Y), folds=folds, X_test=Xt, Y_test=Yt)
    sk = np.array(
        [
            np.mean([_pipe(a, g).fit(X[tr], Y[tr]).score(X[va], Y[va]) for tr, va in folds])
            for a in KRR_ALPHAS
            for g in KRR_GAMMAS
        ]
    )
    np.testing.assert_allclose(res.cv_scores, sk, atol=1e-7)
    best = int(np.argmax(sk))
    assert res.best_index == best
    assert res.grid.shape == (40, 2)
    a, g = res.grid[best]
    assert res.best_params == {"alpha": a, "gamma": g}
    ref = _pipe(a, g).fit(X, Y)
    assert abs(res.test_metrics["r2"] - ref.score(Xt, Yt)) < 1e-6
    assert np.isfinite(res.test_metrics["r2"])


def test_kernel_ridge_single_output_custom_grid():
    rng = np.random.default_rng(np.random.randint(2**31))
    X, Y = _latents(rng, 60, d=4)
    res = fit_kernel_ridge_cv(X, Y[:, 0], alphas=[0.1], gammas=[0.5, 1.0], folds=3)
    assert res.cv_scores.shape == (2,) and res.fold_scores.shape == (3, 2)


def test_kernel_ridge_errors():
    X = torch.randn(30, 4, dtype=torch.float64)
    Y = torch.randn(30, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="Y has 29 rows but X has 30"):
        fit_kernel_ridge_cv(X, Y[:29])
    X[3, 0] = float("inf")
    with pytest.raises(ValueError, match="row 3"):
        fit_kernel_ridge_cv(X, Y)
    with pytest.raises(ValueError, match="gammas"):
        fit_kernel_ridge_cv(torch.randn(30, 4), torch.randn(30), gammas=[])
