"""Seeded folds, the class-count check and the paper's grids."""

import numpy as np
import pytest
import torch

from inv_kernels.probes import (
    check_class_counts,
    grid_shift,
    kfold_indices,
    logistic_Cs,
    regularisation_grid,
    ridge_alphas,
)


@pytest.mark.parametrize("n, k", [(10, 5), (23, 5), (7, 2), (100, 3)])
def test_folds_partition_and_sizes(n, k):
    folds = kfold_indices(n, k, seed=4)
    vals = np.concatenate([va for _, va in folds])
    assert np.array_equal(np.sort(vals), np.arange(n))
    sizes = [len(va) for _, va in folds]
    # sklearn KFold layout: the first n % k folds have one more sample
    assert sizes == [n // k + (1 if f < n % k else 0) for f in range(k)]
    for tr, va in folds:
        assert np.intersect1d(tr, va).size == 0 and len(tr) + len(va) == n


def test_folds_seeded():
    a = kfold_indices(50, 5, seed=1)
    b = kfold_indices(50, 5, seed=1)
    c = kfold_indices(50, 5, seed=2)
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    assert not all(np.array_equal(x[1], y[1]) for x, y in zip(a, c))


def test_stratified_folds_hold_every_class():
    y = np.repeat(np.arange(4), [5, 7, 11, 30])
    folds = kfold_indices(len(y), 5, seed=0, y=torch.as_tensor(y), stratify=True)
    for _, va in folds:
        assert set(y[va]) == {0, 1, 2, 3}
    assert max(len(va) for _, va in folds) - min(len(va) for _, va in folds) <= 1


def test_class_count_error_names_class():
    y = np.array([0] * 10 + [1] * 10 + [7] * 3)
    with pytest.raises(ValueError, match=r"n_folds=5.*class 7 has 3"):
        check_class_counts(y, 5)
    with pytest.raises(ValueError, match=r"from labels\.npy"):
        check_class_counts(y, 5, source="labels.npy")
    check_class_counts(y, 3)


def test_fold_argument_errors():
    with pytest.raises(ValueError, match="n_folds"):
        kfold_indices(10, 1)
    with pytest.raises(ValueError, match="larger than the number of samples"):
        kfold_indices(3, 5)
    with pytest.raises(ValueError, match="needs the labels"):
        kfold_indices(10, 2, stratify=True)


def test_paper_grid():
    wd = regularisation_grid()
    assert wd.shape == (45,) and wd.dtype == np.float64
    np.testing.assert_allclose(wd, np.logspace(-6, 5, 45))
    np.testing.assert_allclose(np.diff(np.log10(wd)), 0.25)
    assert grid_shift(3) == 2 and grid_shift(2) == 1 and grid_shift(1, wide=True) == 2
    np.testing.assert_allclose(regularisation_grid(3), np.logspace(-2, 9, 45))
    np.testing.assert_allclose(logistic_Cs(), 1 / np.logspace(-6, 5, 45))
    np.testing.assert_allclose(logistic_Cs(mode="corrected"), logistic_Cs())


def test_ridge_grid_modes():
    # paper: 1 / wd on the shifted grid, so fusion moves alpha toward weaker regularisation (docs/METHOD.md section 12)
    paper3 = ridge_alphas(3, mode="paper")
    assert paper3.max() == pytest.approx(1e2) and paper3.min() == pytest.approx(1e-9)
    single = ridge_alphas(1, mode="paper")
    assert single.max() == pytest.approx(1e6) and single.min() == pytest.approx(1e-5)
    np.testing.assert_allclose(ridge_alphas(1, mode="corrected"), single)
    corr3 = ridge_alphas(3, mode="corrected")
    assert corr3.min() == pytest.approx(1e-1) and corr3.max() == pytest.approx(1e10)  # stronger for more features
    with pytest.raises(ValueError, match="mode"):
        ridge_alphas(mode="fast")
    with pytest.raises(ValueError, match="num_models_fused"):
        regularisation_grid(0)
