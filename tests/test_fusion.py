"""Fusion: the paper's cat / add / mean, block standardisation, and CV-chosen block weights."""

import math

import pytest
import torch

from inv_kernels.fusion import (
    DEFAULT_LAMBDAS,
    choose_block_weights,
    fuse,
    simplex_grid,
    standardise_blocks,
    weighted_fusion,
)
from inv_kernels.probes import class_scores, kfold_indices, r2_per_output, ridge_path


def test_cat_add_mean_match_reference():
    a, b = torch.randn(6, 4), torch.randn(6, 4)
    torch.testing.assert_close(fuse([a, b], "cat"), torch.cat([a, b], 1))
    torch.testing.assert_close(fuse([a, b], "add"), a + b)
    torch.testing.assert_close(fuse([a, b], "mean"), (a + b) / 2)
    c = torch.randn(6, 3)
    assert fuse([a, c]).shape == (6, 7)


def test_weighted_drops_zero_blocks_and_scales():
    a, b = torch.randn(5, 2), torch.randn(5, 3)
    out = fuse([a, b], "weighted", weights=[0.0, 0.5])
    torch.testing.assert_close(out, 0.5 * b)
    out = fuse([a, b], "weighted", weights=[0.25, 0.75])
    torch.testing.assert_close(out, torch.cat([0.25 * a, 0.75 * b], 1))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: fuse([torch.randn(4, 3), torch.randn(4, 2)], "add"), r"equal width.*\[3, 2\]"),
        (
            lambda: fuse([torch.randn(4, 3), torch.randn(5, 3)], "cat"),
            r"features\[1\] has 5 rows but features\[0\] has 4",
        ),
        (lambda: fuse([torch.randn(4, 3)], "max"), "mode must be one of"),
        (lambda: fuse([], "cat"), "non-empty list"),
        (lambda: fuse([torch.randn(4, 3)], "weighted"), "needs weights"),
        (lambda: fuse([torch.randn(4, 3)], "weighted", [-1.0]), "must be finite, >= 0"),
        (lambda: fuse([torch.randn(4, 3), torch.randn(4, 3)], "weighted", [1.0]), "1 weights for 2 blocks"),
        (lambda: fuse([torch.randn(4, 3)], "cat", [1.0]), "only used by mode='weighted'"),
        (lambda: fuse([torch.randn(4)], "cat"), r"must be 2-D \(n, D_i\)"),
    ],
)
def test_fuse_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_nan_features_named():
    a = torch.randn(4, 3)
    a[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"features\[0\] contains NaN or Inf.*\(2, 1\)"):
        fuse([a], "cat")
    with pytest.raises(ValueError, match=r"blocks\[1\] contains NaN"):
        choose_block_weights([torch.randn(4, 3), a], torch.zeros(4, dtype=torch.long), "classification", folds=2)
    with pytest.raises(TypeError, match="dtype"):
        fuse([torch.ones(4, 3, dtype=torch.long)])


def test_standardise_blocks_equal_total_variance():
    a = 100 * torch.randn(200, 8) + 5
    b = 0.01 * torch.randn(200, 32)
    b[:, 0] = 3.0  # a constant feature becomes 0
    (za, zb), (ta, tb) = standardise_blocks([a, b], [a[:10], b[:10]])
    for z in (za, zb):
        assert abs(float(z.var(dim=0, unbiased=False).sum()) - (1.0 if z is za else 31 / 32)) < 1e-4
        assert float(z.mean(dim=0).abs().max()) < 1e-5
    torch.testing.assert_close(ta, za[:10])
    assert float(zb[:, 0].abs().max()) == 0.0
    with pytest.raises(ValueError, match=r"other_blocks\[1\] has width 4"):
        standardise_blocks([a, b], [a, torch.randn(200, 4)])


def test_simplex_grid():
    g = simplex_grid(3, 4)
    assert len(g) == 15 and g[:3] == [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]
    assert all(math.isclose(sum(w), 1.0) for w in g)


def _probe_cv(x, y, task_kind, metric, folds=5, seed=0):
    """(folds, L) CV scores of a ridge probe on x computed from the probes' own folds, ridge path and metrics."""
    classification = task_kind == "classification"
    pairs = kfold_indices(len(y), folds, seed=seed, y=y if classification else None, stratify=classification)
    classes, y_idx = torch.unique(y, return_inverse=True)
    targets = 2.0 * torch.nn.functional.one_hot(y_idx).double() - 1.0 if classification else y.double()
    scores = []
    for tr, va in pairs:
        alphas = torch.tensor(DEFAULT_LAMBDAS, dtype=torch.float64) * len(tr)
        pred = ridge_path(x[tr], targets[tr], x[va], alphas)  # (L, nv, T)
        if classification:
            acc, mpca = class_scores(
                pred.argmax(dim=2).T[None], y_idx[va][None], torch.ones(1, len(va), dtype=bool), len(classes)
            )
            scores.append((acc if metric == "accuracy" else mpca)[0].tolist())
        else:
            scores.append(r2_per_output(targets[va][None], pred).mean(dim=-1).tolist())
    return torch.tensor(scores, dtype=torch.float64)


@pytest.mark.parametrize(
    "task_kind, metric",
    [("classification", "accuracy"), ("classification", "mean_per_class_accuracy"), ("regression", "r2")],
)
def test_each_candidate_is_scored_by_the_probes_folds_ridge_path_and_metrics(task_kind, metric):
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(83, 4, generator=g), torch.randn(83, 30, generator=g)
    if task_kind == "classification":
        y = (a[:, 0] + b[:, 0] > 0).long() + 2 * (a[:, 1] > 1).long()
    else:
        y = torch.stack([a[:, 0] + 0.5 * torch.randn(83, generator=g), b[:, 2]], 1)
    (za, zb), _ = standardise_blocks([a, b])
    _, table = choose_block_weights([za, zb], y, task_kind, metric=metric, seed=4)
    for row in table:
        w = row["weights"]
        x = torch.cat([wi * z.double() for wi, z in zip(w, (za, zb)) if wi > 0], dim=1)
        scores = _probe_cv(x, y, task_kind, metric, seed=4)
        best = int(scores.mean(dim=0).argmax())
        assert row["lambda"] == DEFAULT_LAMBDAS[best], w
        assert row["score"] == pytest.approx(float(scores[:, best].mean()), abs=1e-12), w
        assert row["std"] == pytest.approx(float(scores[:, best].std()), abs=1e-12), w


def test_labels_must_match_features_and_folds():
    x = [torch.randn(10, 3)]
    with pytest.raises(ValueError, match="y has 9 labels but the features have 10 rows"):
        choose_block_weights(x, torch.zeros(9, dtype=torch.long), "classification")
    y = torch.tensor([0] * 8 + [1] * 2)
    with pytest.raises(ValueError, match="every class needs at least n_folds=5 samples .*class 1 has 2"):
        choose_block_weights(x, y, "classification", folds=5)
    with pytest.raises(TypeError, match="integer"):
        choose_block_weights(x, y.float(), "classification")
    with pytest.raises(ValueError, match=r"n_folds=11 is larger than the number of samples \(10\)"):
        choose_block_weights(x, torch.randn(10), "regression", folds=11)


def _two_blocks(n, complementary, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    z = torch.randint(0, 2, (n,), generator=g)
    sign = 2.0 * y - 1
    if complementary:
        # block A sees y + 2.5 z, block B sees y - 2.5 z (z a nuisance): each alone is poor, their sum cancels z
        nuisance = 2.5 * (2.0 * z - 1)
        a = torch.stack([sign + nuisance, torch.randn(n, generator=g)], 1) + 0.3 * torch.randn(n, 2, generator=g)
        b = torch.stack([sign - nuisance, torch.randn(n, generator=g)], 1) + 0.3 * torch.randn(n, 2, generator=g)
    else:
        a = torch.cat([sign[:, None] + 0.3 * torch.randn(n, 1, generator=g), torch.randn(n, 3, generator=g)], 1)
        b = torch.randn(n, 64, generator=g)  # pure noise
    return a, b, y


def test_weighted_picks_signal_block_over_noise():
    a, b, y = _two_blocks(300, complementary=False)
    (za, zb), _ = standardise_blocks([a, b])
    weights, table = choose_block_weights([za, zb], y, "classification", folds=5, steps=4)
    assert weights == (1.0, 0.0), table[:3]
    assert table[0]["score"] >= max(r["score"] for r in table)
    # and never worse than the best member by more than noise: equal to it here
    single = {r["weights"]: r["score"] for r in table}
    assert table[0]["score"] >= max(single[(1.0, 0.0)], single[(0.0, 1.0)])


def test_weighted_uses_both_complementary_blocks():
    a, b, y = _two_blocks(300, complementary=True)
    xa, xb, weights, table = weighted_fusion([a, b], [a[:7], b[:7]], y, "classification", folds=5, steps=4)
    assert 0.0 < weights[0] < 1.0 and 0.0 < weights[1] < 1.0, table[:3]
    single = {r["weights"]: r["score"] for r in table}
    assert table[0]["score"] > max(single[(1.0, 0.0)], single[(0.0, 1.0)]) + 0.1
    assert xa.shape == (300, 4) and xb.shape == (7, 4)


def test_weighted_regression():
    g = torch.Generator().manual_seed(1)
    n = 200
    a = torch.randn(n, 5, generator=g)
    b = torch.randn(n, 5, generator=g)
    y = torch.stack([a[:, 0] + 0.1 * torch.randn(n, generator=g), b[:, 1] + 0.1 * torch.randn(n, generator=g)], 1)
    weights, table = choose_block_weights(standardise_blocks([a, b])[0], y, "regression", folds=4)
    assert 0 < weights[0] < 1, table[:3]
    assert table[0]["score"] > 0.9
    with pytest.raises(ValueError, match="does not score a regression"):
        choose_block_weights([a], y, "regression", metric="accuracy")
