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
        [
            [mean_squared_error(Y[va], Ridge(alpha=a).fit(X[tr], Y[tr]).predict(X[va])) for a in alphas[::11]]
            for tr, va in folds
        ]
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


# ---------------------------------------------------------------- targets that are not visible (a mask)


def _masked_problem(rng, n=160, d=6, t=4, placeholder=0.0):
    X, Y, W = _regression(rng, n, d, t=t, noise=0.5)
    Xt = rng.normal(size=(60, d)) + 0.5
    Yt = Xt @ W + 0.5 * rng.normal(size=(60, t)) + 1.0
    mask = np.ones((n, t), dtype=bool)
    mask[rng.random(n) < 0.3, 1] = False  # output 1 hidden in about 30 % of the rows
    mask[::4, 3] = False
    mask_t = np.ones((60, t), dtype=bool)
    mask_t[::3, 1] = False
    return X, np.where(mask, Y, placeholder), Xt, np.where(mask_t, Yt, placeholder), mask, mask_t


def test_ridge_mask_ignores_the_values_of_hidden_targets():
    """Placeholder coordinates of hidden targets (LSP's invisible joints) change nothing: fit, CV and score."""
    seed = np.random.randint(2**31)
    X, Y0, Xt, Yt0, mask, mask_t = _masked_problem(np.random.default_rng(seed), placeholder=0.0)
    _, Y1, _, Yt1, _, _ = _masked_problem(np.random.default_rng(seed), placeholder=-500.0)
    folds = kfold_indices(len(X), 5, seed=3)
    a = fit_ridge_cv(X, Y0, None, folds, X_test=Xt, Y_test=Yt0, mask=mask, mask_test=mask_t)
    b = fit_ridge_cv(X, Y1, None, folds, X_test=Xt, Y_test=Yt1, mask=mask, mask_test=mask_t)
    np.testing.assert_allclose(a.cv_scores, b.cv_scores, atol=1e-12)
    np.testing.assert_allclose(a.extra["coef"].numpy(), b.extra["coef"].numpy(), atol=1e-10)
    assert a.test_metrics["r2"] == pytest.approx(b.test_metrics["r2"], abs=1e-12)
    unmasked = fit_ridge_cv(X, Y1, None, folds, X_test=Xt, Y_test=Yt1)  # the placeholders enter fit and score
    assert unmasked.test_metrics["r2"] < a.test_metrics["r2"] - 0.1


def test_ridge_mask_equals_each_output_fitted_on_its_visible_rows():
    rng = np.random.default_rng(np.random.randint(2**31))
    X, Y, Xt, Yt, mask, mask_t = _masked_problem(rng)
    folds = kfold_indices(len(X), 5, seed=11)
    alphas = np.logspace(-2, 3, 6)
    res = fit_ridge_cv(X, Y, alphas, folds, X_test=Xt, Y_test=Yt, mask=mask, mask_test=mask_t)
    fold_r2, test_r2 = np.zeros((len(folds), len(alphas))), []
    for out in range(Y.shape[1]):
        rows = np.flatnonzero(mask[:, out])
        for f, (tr, va) in enumerate(folds):
            tr, va = np.intersect1d(tr, rows), np.intersect1d(va, rows)
            fold_r2[f] += [Ridge(alpha=a).fit(X[tr], Y[tr, out]).score(X[va], Y[va, out]) for a in alphas]
    np.testing.assert_allclose(res.cv_scores, fold_r2.mean(0) / Y.shape[1], atol=1e-8)
    alpha = alphas[res.best_index]
    for out in range(Y.shape[1]):
        rows, test_rows = np.flatnonzero(mask[:, out]), np.flatnonzero(mask_t[:, out])
        ref = Ridge(alpha=alpha).fit(X[rows], Y[rows, out])
        np.testing.assert_allclose(res.extra["coef"][:, out].numpy(), ref.coef_, atol=1e-7)
        test_r2.append(ref.score(Xt[test_rows], Yt[test_rows, out]))
    assert res.test_metrics["r2"] == pytest.approx(np.mean(test_r2), abs=1e-8)


def test_ridge_all_visible_mask_is_no_mask():
    rng = np.random.default_rng(np.random.randint(2**31))
    X, Y, W = _regression(rng, 120, 10)
    Xt = rng.normal(size=(30, 10))
    Yt = Xt @ W
    full = np.ones_like(Y, dtype=bool)
    a = fit_ridge_cv(X, Y, X_test=Xt, Y_test=Yt, mask=full, mask_test=np.ones_like(Yt, dtype=bool))
    b = fit_ridge_cv(X, Y, X_test=Xt, Y_test=Yt)
    np.testing.assert_allclose(a.cv_scores, b.cv_scores, atol=1e-12)
    assert a.test_metrics == pytest.approx(b.test_metrics, abs=1e-12)


def test_ridge_mask_errors():
    X = torch.randn(40, 3, dtype=torch.float64)
    Y = torch.randn(40, 2, dtype=torch.float64)
    mask = np.ones((40, 2), dtype=bool)
    with pytest.raises(ValueError, match=r"mask must have shape \(40, 2\) like Y, got \(40, 3\)"):
        fit_ridge_cv(X, Y, mask=np.ones((40, 3), dtype=bool))
    with pytest.raises(TypeError, match=r"mask must hold booleans"):
        fit_ridge_cv(X, Y, mask=np.ones((40, 2)))
    hidden = mask.copy()
    hidden[:, 1] = False
    hidden[:1, 1] = True
    with pytest.raises(ValueError, match=r"output 1 of Y is visible in only \d rows? of fold \d's"):
        fit_ridge_cv(X, Y, folds=kfold_indices(40, 5, seed=0), mask=hidden)
    with pytest.raises(ValueError, match=r"mask_test needs X_test"):
        fit_ridge_cv(X, Y, mask=mask, mask_test=mask)
    with pytest.raises(ValueError, match=r"with a mask, the test set needs mask_test"):
        fit_ridge_cv(X, Y, X_test=X, Y_test=Y, mask=mask)
