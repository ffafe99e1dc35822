"""Ridge probe against sklearn's Ridge on the same folds, plus error paths."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error

from inv_kernels.probes import fit_ridge_cv, kfold_indices, ridge_alphas


def _regression(rng, n, d, t=3, noise=3.0):
    W = rng.normal(size=(d, t))
    X = rng.normal(size=(n, d)) + 0.5
    return X, X @ W + noise * rng.normal(size=(n, t)) + 1.0, W


def _sklearn_cv(X, Y, alphas, folds):
    return np.array([[Ridge(alpha=a).fit(X[tr], Y[tr]).score(X[va], Y[va]) for a in alphas] for tr, va in folds])


@pytest.mark.parametrize("n, d", [(400, 30), (120, 200)])  # primal (n > D) and dual (n < D) paths
def test_ridge_parity_with_sklearn(n, d):
    rng = np.random.default_rng(np.random.randint(2**31))
    X, Y, W = _regression(rng, n, d)
    Xt = rng.normal(size=(150, d)) + 0.5
    Yt = Xt @ W + 3.0 * rng.normal(size=(150, 3)) + 1.0
    folds = kfold_indices(n, 5, seed=7)
    alphas = ridge_alphas()
    res = fit_ridge_cv(torch.as_tensor(X), torch.as_tensor(Y), alphas, folds, X_test=Xt, Y_test=Yt)
    sk = _sklearn_cv(X, Y, alphas, folds)
    np.testing.assert_allclose(res.cv_scores, sk.mean(0), atol=1e-8)
    best = int(np.argmax(sk.mean(0)))
    assert res.best_index == best
    ref = Ridge(alpha=alphas[best]).fit(X, Y)
    assert abs(res.test_metrics["r2"] - ref.score(Xt, Yt)) < 1e-8
    assert res.test_metrics["mse"] == pytest.approx(mean_squared_error(Yt, ref.predict(Xt)), rel=1e-8)
    np.testing.assert_allclose(res.extra["coef"].numpy(), ref.coef_.T, atol=1e-7)
    mse_sk = np.array(
        [[mean_squared_error(Y[va], Ridge(alpha=a).fit(X[tr], Y[tr]).predict(X[va])) for a in alphas[::11]]
         for tr, va in folds]
    ).mean(0)
    np.testing.assert_allclose(res.extra["cv_mse"][::11], mse_sk, rtol=1e-8)
    assert res.to_dict()["best_params"]["alpha"] == pytest.approx(alphas[best])


def test_ridge_single_output_and_explicit_non_partition_folds():
    rng = np.random.default_rng(np.random.randint(2**31))
    X, Y, _ = _regression(rng, 90, 8, t=1)
    folds = [(np.arange(0, 40), np.arange(40, 60)), (np.arange(30, 70), np.arange(70, 90))]  # not a partition
    alphas = np.logspace(-3, 3, 7)
    res = fit_ridge_cv(X, Y[:, 0], alphas, folds)
    np.testing.assert_allclose(res.cv_scores, _sklearn_cv(X, Y[:, 0], alphas, folds).mean(0), atol=1e-10)


def test_ridge_float32():
    rng = np.random.default_rng(np.random.randint(2**31))
    X, Y, _ = _regression(rng, 200, 16)
    a = fit_ridge_cv(torch.as_tensor(X, dtype=torch.float32), Y.astype(np.float32), dtype=torch.float32)
    b = fit_ridge_cv(X, Y)
    np.testing.assert_allclose(a.cv_scores, b.cv_scores, atol=1e-3)


def test_ridge_errors():
    X = torch.randn(50, 4, dtype=torch.float64)
    Y = torch.randn(50, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"Y \(from feats\.npz\) has 49 rows but X has 50"):
        fit_ridge_cv(X, Y[:49], source="feats.npz")
    bad = X.clone()
    bad[17, 2] = float("nan")
    with pytest.raises(ValueError, match=r"X contains NaN or Inf in row 17 \(column 2"):
        fit_ridge_cv(bad, Y)
    with pytest.raises(ValueError, match=r"X must be 2-D"):
        fit_ridge_cv(X[0], Y)
    with pytest.raises(ValueError, match=r"Y must be 1-D \(N,\) or 2-D"):
        fit_ridge_cv(X, Y[:, :, None])
    with pytest.raises(TypeError, match=r"X must have a dtype"):
        fit_ridge_cv(X.long(), Y)
    with pytest.raises(ValueError, match=r"grid values must be finite and > 0"):
        fit_ridge_cv(X, Y, grid=[1.0, -1.0])
    with pytest.raises(ValueError, match=r"X_test must have 4 columns"):
        fit_ridge_cv(X, Y, X_test=torch.randn(5, 3, dtype=torch.float64), Y_test=torch.randn(5, 2, dtype=torch.float64))
