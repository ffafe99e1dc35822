"""The scoring ops and the statistics take NumPy arrays as well as tensors, and return tensors."""

import numpy as np
import pytest
import torch

import inv_kernels
from inv_kernels import FeatureStats, RunningMoments

DTYPES = [(np.float32, torch.float32), (np.float64, torch.float64)]


def _features(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("np_dtype, torch_dtype", DTYPES)
def test_row_cosine_takes_arrays(np_dtype, torch_dtype):
    rng = np.random.default_rng(0)
    x, y = _features(rng, (5, 7), np_dtype), _features(rng, (5, 7), np_dtype)
    got = inv_kernels.row_cosine(x, y)
    assert isinstance(got, torch.Tensor) and got.dtype == torch_dtype
    expected = (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)
    mixed = inv_kernels.row_cosine(x, torch.from_numpy(y))
    torch.testing.assert_close(mixed, got)


@pytest.mark.parametrize("np_dtype, torch_dtype", DTYPES)
def test_statistics_and_scores_take_arrays(np_dtype, torch_dtype):
    rng = np.random.default_rng(1)
    reference = _features(rng, (40, 6), np_dtype)
    stats = FeatureStats.from_features(reference)
    torch.testing.assert_close(stats.mean, torch.from_numpy(reference.astype(np.float64)).mean(0))
    moments = RunningMoments().update(reference[:20]).update(reference[20:])
    assert moments.count == 40
    clean, views = _features(rng, (3, 6), np_dtype), _features(rng, (3, 4, 6), np_dtype)
    scores = inv_kernels.invariance_scores(clean, views, stats)
    expected = inv_kernels.invariance_scores(torch.from_numpy(clean), torch.from_numpy(views), stats)
    assert isinstance(scores.cosine, torch.Tensor) and scores.cosine.dtype == torch_dtype
    torch.testing.assert_close(scores.cosine, expected.cosine)
    explicit = inv_kernels.invariance_scores(
        clean, views, mean=stats.mean.numpy(), whitening=stats.whitening_matrix().numpy()
    )
    torch.testing.assert_close(explicit.distance, expected.distance)


@pytest.mark.parametrize("np_dtype, torch_dtype", DTYPES)
def test_group_invariance_takes_arrays(np_dtype, torch_dtype):
    rng = np.random.default_rng(2)
    stats = FeatureStats.from_features(_features(rng, (30, 5), np_dtype))
    features, ids = _features(rng, (8, 5), np_dtype), np.array([0, 0, 1, 1, 1, 2, 2, 2])
    got = inv_kernels.group_invariance(features, ids, stats)
    expected = inv_kernels.group_invariance(torch.from_numpy(features), torch.from_numpy(ids), stats)
    assert isinstance(got.cosine_with_diagonal, torch.Tensor) and got.cosine_with_diagonal.dtype == torch_dtype
    torch.testing.assert_close(got.cosine_with_diagonal, expected.cosine_with_diagonal)


def test_other_types_are_named():
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        inv_kernels.row_cosine([[1.0, 2.0]], np.ones((1, 2), np.float32))
    with pytest.raises(TypeError, match="x must have a dtype in .*got torch.int64"):
        inv_kernels.row_cosine(np.ones((2, 2), np.int64), np.ones((2, 2), np.int64))


def test_feature_stats_fields_take_arrays():
    rng = np.random.default_rng(3)
    built = FeatureStats.from_features(_features(rng, (20, 4), np.float64))
    again = FeatureStats(built.mean.numpy(), built.cov.numpy(), built.chol.numpy(), count=built.count)
    assert isinstance(again.mean, torch.Tensor)
    torch.testing.assert_close(again.whitening_matrix(), built.whitening_matrix())
