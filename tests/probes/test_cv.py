"""The probes' shared pieces: the CV driver and selection, the metrics, and the ridge path that fusion also uses."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score

from inv_kernels.probes import class_scores, cross_validate, kfold_indices, r2_per_output, ridge_path, select_best


def test_cross_validate_scores_every_fold_in_order():
    pairs = kfold_indices(10, 5, seed=0)
    seen = []

    def score(fold, train_idx, val_idx):
        seen.append((fold, len(train_idx), len(val_idx)))
        return np.array([fold, 10.0 * fold])

    scores = cross_validate(pairs, score)
    assert scores.shape == (5, 2) and seen == [(f, 8, 2) for f in range(5)]
    np.testing.assert_array_equal(scores[:, 1], 10.0 * np.arange(5))


def test_select_best_takes_the_first_maximum_of_the_mean():
    fold_scores = np.array([[0.5, 0.7, 0.7, 0.1], [0.7, 0.5, 0.5, 0.9]])  # means 0.6, 0.6, 0.6, 0.5
    cv_scores, cv_std, best = select_best(fold_scores)
    np.testing.assert_allclose(cv_scores, [0.6, 0.6, 0.6, 0.5])
    np.testing.assert_allclose(cv_std, [0.1, 0.1, 0.1, 0.4])  # ddof 0
    assert best == 0


def test_class_scores_count_hits_per_class_and_skip_padding():
    y = torch.tensor([[0, 0, 0, 0, 1, 2, -1]])  # (F=1, n); the last row is padding
    pred = torch.tensor([[0, 0, 0, 0, 0, 2, 1], [1, 0, 0, 0, 1, 2, 1]]).T[None]  # (1, n, g=2)
    acc, mpca = class_scores(pred, y, y >= 0, 3)
    torch.testing.assert_close(acc, torch.tensor([[5 / 6, 5 / 6]], dtype=torch.float64))
    torch.testing.assert_close(mpca, torch.tensor([[(1 + 0 + 1) / 3, (0.75 + 1 + 1) / 3]], dtype=torch.float64))


def test_r2_per_output_is_sklearns():
    yt, yp = torch.randn(20, 3, dtype=torch.float64), torch.randn(20, 3, dtype=torch.float64)
    np.testing.assert_allclose(r2_per_output(yt, yp).numpy(), r2_score(yt, yp, multioutput="raw_values"))
    yt[:, 1] = 2.0  # a constant output scores 1 when predicted exactly, else 0 (as sklearn)
    exact = yp.clone()
    exact[:, 1] = 2.0
    assert float(r2_per_output(yt, yp)[1]) == 0.0 and float(r2_per_output(yt, exact)[1]) == 1.0


@pytest.mark.parametrize("n, d", [(60, 8), (20, 40)])  # primal (n >= D) and dual (n < D)
def test_ridge_path_is_ridge_with_an_intercept_for_every_alpha(n, d):
    g = torch.Generator().manual_seed(n)
    X = torch.randn(n + 15, d, generator=g, dtype=torch.float64) + 0.5
    Y = X @ torch.randn(d, 2, generator=g, dtype=torch.float64) + 0.3 * torch.randn(
        n + 15, 2, generator=g, dtype=torch.float64
    )
    alphas = torch.tensor([1e-3, 1.0, 100.0], dtype=torch.float64)
    pred = ridge_path(X[:n], Y[:n], X[n:], alphas)  # (3, 15, 2)
    assert pred.shape == (3, 15, 2)
    for a, p in zip(alphas.tolist(), pred):
        np.testing.assert_allclose(p.numpy(), Ridge(alpha=a).fit(X[:n], Y[:n]).predict(X[n:]), atol=1e-8)
