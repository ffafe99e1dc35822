"""group_invariance on every available backend against the reference code's k^2 Python loop over pairs in float64
(np.cov, inverse, Cholesky, w = (mu - f) @ L, the cosine formula, scipy's pdist), both cosine conventions, k = 2,
duplicates, properties, registration and bad input."""

import json

import numpy as np
import pytest
import scipy.spatial.distance
import torch
from _op_backends import ALL_BACKENDS, BACKENDS, COMPILED, DEVICE, ill_conditioned_features, reference_statistics
from _op_backends import skip_unavailable as _skip_unavailable
from hypothesis import given, settings
from hypothesis import strategies as st

from inv_kernels.ops._whitening import EPS, IllConditionedWarning
from inv_kernels.ops.group_invariance import FWD_OPS, GroupInvariance, group_invariance, group_invariance_ref
from inv_kernels.stats import FeatureStats
from inv_kernels.testing import assert_close, to_float64


def numpy_groups(features: np.ndarray, ids: np.ndarray, mu, l, eps: float = EPS):
    """eval_realworld_invariance.py in float64: per group (ascending id) the k^2 loop of cosines (self-pairs included,
    the paper's S), the same without the diagonal, and the mean of pdist over unordered pairs."""
    w = (mu - features) @ l  # (N, D)
    with_diag, off_diag, dist = [], [], []
    for g in np.unique(ids):
        members = w[ids == g]
        k = len(members)
        total, off = 0.0, 0.0
        for a in range(k):
            for b in range(k):
                c = (
                    members[a]
                    @ members[b]
                    / (max(np.linalg.norm(members[a]), eps) * max(np.linalg.norm(members[b]), eps))
                )
                total += c
                if a != b:
                    off += c
        with_diag.append(total / k**2)
        off_diag.append(off / (k * (k - 1)))
        dist.append(scipy.spatial.distance.pdist(members).mean())
    return np.array(with_diag), np.array(off_diag), np.array(dist)


def _groups(sizes, d, dtype, shuffle=True, spread=0.7):
    """Features of groups of the given sizes (members = a group centre + noise) and their ids (not sorted, gappy)."""
    f, mu, _, _ = reference_statistics(d)
    scale = f.std(axis=0)
    rng = np.random.default_rng(int(torch.randint(0, 2**31, ())))
    rows, ids = [], []
    for g, k in enumerate(sizes):
        centre = mu + rng.standard_normal(d) * scale
        rows.append(centre + spread * rng.standard_normal((k, d)) * scale)
        ids += [3 * g - 4] * k  # negative and gappy ids
    features = np.concatenate(rows)
    ids = np.array(ids)
    if shuffle:
        perm = rng.permutation(len(ids))
        features, ids = features[perm], ids[perm]
    return torch.from_numpy(features).to(DEVICE, dtype), torch.from_numpy(ids).to(DEVICE)


def _kwargs(d):
    _, mu, _, l = reference_statistics(d)
    return {"mean": torch.from_numpy(mu).to(DEVICE), "whitening": torch.from_numpy(l).to(DEVICE)}


def _check(backend, features, ids) -> GroupInvariance:
    d = features.shape[1]
    _, mu, _, l = reference_statistics(d)
    out = group_invariance(features, ids, backend=backend, **_kwargs(d))
    with_diag, off_diag, dist = numpy_groups(to_float64(features), ids.cpu().numpy(), mu, l)
    dtype = torch.float64 if features.dtype == torch.float64 else torch.float32  # whitened in float32 otherwise
    tol = {"dtype": dtype, "reduction_size": d}
    assert out.group_ids.tolist() == sorted(set(ids.tolist()))
    assert out.sizes.tolist() == [int((ids == g).sum()) for g in out.group_ids.tolist()]
    assert_close(out.cosine_with_diagonal, with_diag, name=f"{backend} cosine with diagonal", **tol)
    assert_close(out.cosine_off_diagonal, off_diag, name=f"{backend} cosine off diagonal", **tol)
    assert_close(out.distance, dist, name=f"{backend} distance", **tol)
    assert out.cosine_with_diagonal_mean == pytest.approx(with_diag.mean(), abs=1e-5)
    assert out.cosine_off_diagonal_mean == pytest.approx(off_diag.mean(), abs=1e-5)
    assert out.distance_mean == pytest.approx(dist.mean(), rel=1e-5)
    return out


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16], ids=lambda d: str(d).removeprefix("torch.")
)
@pytest.mark.parametrize(
    "sizes, d",
    [((2,), 1), ((2, 3), 7), ((5, 2, 17, 3), 64), ((4, 4, 4, 33), 130)],
    ids=["one-pair-D1", "D7", "mixed-D64", "equal-and-large-D130"],
)
def test_matches_the_k_squared_pair_loop(backend, dtype, sizes, d):
    _skip_unavailable(backend)
    features, ids = _groups(sizes, d, dtype)
    _check(backend, features, ids)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_large_feature_dimension(backend):
    _skip_unavailable(backend)
    features, ids = _groups((3, 6), 2048, torch.float32)
    _check(backend, features, ids)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_pairs_give_one_plus_s_over_two(backend):
    """k = 2 (Flickr1024, RealBlur, ALOT-temperature): S = (1 + s) / 2 with s the pair's cosine; D = the distance."""
    _skip_unavailable(backend)
    d = 30
    features, ids = _groups((2, 2, 2), d, torch.float64)
    _, mu, p, l = reference_statistics(d)
    out = group_invariance(features, ids, backend=backend, **_kwargs(d))
    f = to_float64(features)
    idx = ids.cpu().numpy()
    for g, gid in enumerate(out.group_ids.tolist()):
        a, b = f[idx == gid]
        wa, wb = (mu - a) @ l, (mu - b) @ l
        s = wa @ wb / (np.linalg.norm(wa) * np.linalg.norm(wb))
        assert float(out.cosine_with_diagonal[g]) == pytest.approx((1 + s) / 2, abs=1e-12)
        assert float(out.cosine_off_diagonal[g]) == pytest.approx(s, abs=1e-12)
        assert float(out.distance[g]) == pytest.approx(scipy.spatial.distance.mahalanobis(a, b, p), rel=1e-10)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_duplicate_images_give_cosine_one_and_distance_zero(backend):
    _skip_unavailable(backend)
    d = 50
    features, _ = _groups((4,), d, torch.float32)
    features = torch.cat([features[:1].expand(3, d), features[1:3]])  # group 0: one image three times
    ids = torch.tensor([0, 0, 0, 1, 1], device=DEVICE)
    out = group_invariance(features, ids, backend=backend, **_kwargs(d))
    assert float(out.cosine_with_diagonal[0]) == pytest.approx(1.0, abs=1e-6)
    assert float(out.cosine_off_diagonal[0]) == pytest.approx(1.0, abs=1e-6)
    assert float(out.distance[0]) < 1e-5 * float(out.distance[1])


def test_reference_and_kernels_agree_on_many_groups():
    d = 40
    features, ids = _groups(tuple(range(2, 12)) * 2, d, torch.float32)
    ref = group_invariance_ref(features, ids, **_kwargs(d))
    for backend in COMPILED:
        out = group_invariance(features, ids, backend=backend, **_kwargs(d))
        for name in ("cosine_with_diagonal", "cosine_off_diagonal", "distance"):
            assert_close(getattr(out, name), getattr(ref, name), reduction_size=d, name=f"{backend} {name}")


def test_stats_object_and_to_dict():
    d = 16
    f, mu, _, l = reference_statistics(d)
    features, ids = _groups((3, 2), d, torch.float64)
    direct = group_invariance(features, ids, **_kwargs(d))
    feature_stats = pytest.importorskip("inv_kernels.stats").FeatureStats
    out = group_invariance(features, ids, feature_stats.from_features(torch.from_numpy(f)).to(DEVICE))
    assert_close(out.cosine_with_diagonal, direct.cosine_with_diagonal, atol=1e-9, rtol=1e-9, name="FeatureStats")
    assert_close(out.distance, direct.distance, atol=1e-9, rtol=1e-9, name="FeatureStats distance")
    summary = json.loads(json.dumps(out.to_dict()))
    assert summary["num_groups"] == 2 and summary["sizes"] == [3, 2]
    assert summary["cosine_off_diagonal_mean"] == pytest.approx(out.cosine_off_diagonal_mean)


@pytest.mark.parametrize("backend", [pytest.param(b, id=b) for b in COMPILED])
def test_opcheck(backend):
    for dtype in (torch.float32, torch.float64):
        z = torch.randn(9, 13, device=DEVICE, dtype=dtype)
        offsets = torch.tensor([0, 2, 6, 9], device=DEVICE)
        torch.library.opcheck(FWD_OPS[backend], (z, offsets, EPS), test_utils=("test_schema", "test_faketensor"))


def test_fake_kernel_gives_shape_on_meta():
    out = FWD_OPS["cpu"](torch.empty(9, 4, device="meta"), torch.empty(4, dtype=torch.int64, device="meta"), EPS)
    assert out.shape == (3, 3) and out.dtype == torch.float32


# ----------------------------------------------------------------------------------------------------------------
# properties
# ----------------------------------------------------------------------------------------------------------------
@settings(max_examples=12, deadline=None)
@given(
    sizes=st.lists(st.integers(2, 6), min_size=1, max_size=4),
    d=st.integers(1, 20),
    seed=st.integers(0, 2**31 - 1),
)
def test_row_order_relabelling_and_rotated_whitening(sizes, d, seed):
    """Shuffling the rows (with their ids), relabelling the groups in the same order, or A' = A Q with orthogonal Q
    changes nothing; with-diagonal = ((k - 1) off-diagonal + 1) / k; cosines in [-1, 1], distances >= 0."""
    gen = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    mean = torch.randn(d, generator=gen, dtype=torch.float64)
    a = torch.randn(d, d, generator=gen, dtype=torch.float64) + 3 * torch.eye(d, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    features = torch.randn(n, d, generator=gen, dtype=torch.float64)
    ids = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    perm = torch.randperm(n, generator=gen)
    dev = torch.device(DEVICE)
    for backend in BACKENDS:
        args = {"mean": mean.to(dev), "backend": backend}
        base = group_invariance(features.to(dev), ids.to(dev), whitening=a.to(dev), **args)
        shuffled = group_invariance(features[perm].to(dev), (10 * ids[perm] + 7).to(dev), whitening=a.to(dev), **args)
        rotated = group_invariance(features.to(dev), ids.to(dev), whitening=(a @ q).to(dev), **args)
        k = base.sizes.to(torch.float64)
        for name in ("cosine_with_diagonal", "cosine_off_diagonal", "distance"):
            assert_close(getattr(shuffled, name), getattr(base, name), atol=1e-12, rtol=1e-12, name=f"shuffled {name}")
            assert_close(getattr(rotated, name), getattr(base, name), atol=1e-10, rtol=1e-10, name=f"A Q {name}")
        assert_close(base.cosine_with_diagonal, ((k - 1) * base.cosine_off_diagonal + 1) / k, atol=1e-12, rtol=0)
        assert bool((base.cosine_off_diagonal.abs() <= 1 + 1e-12).all()) and bool((base.distance >= 0).all())


# ----------------------------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------------------------
_f = torch.randn(6, 4)
_ids = torch.tensor([0, 0, 1, 1, 2, 2])
_s = {"mean": torch.randn(4), "whitening": torch.eye(4)}
_nan = _f.clone()
_nan[3, 1] = float("nan")

BAD_INPUTS = [
    (
        "single",
        (_f, torch.tensor([0, 0, 1, 1, 5, 2]), _s),
        ValueError,
        r"group_ids: group 2 has a single image; pairwise measures need at least 2 images per group "
        r"\(2 such group\(s\): ids 2, 5\)",
    ),
    ("all-single", (_f[:2], torch.tensor([7, 8]), _s), ValueError, r"group 7 has a single image"),
    (
        "nan",
        (_nan, _ids, _s),
        ValueError,
        r"features contains NaN or Inf \(1 of 24 elements; first at index \(3, 1\)\)",
    ),
    ("inf", (_f * float("inf"), _ids, _s), ValueError, r"features contains NaN or Inf"),
    (
        "float-ids",
        (_f, _ids.float(), _s),
        TypeError,
        r"group_ids must have a dtype in \(int64, .*\), got torch.float32",
    ),
    (
        "ids-length",
        (_f, _ids[:5], _s),
        ValueError,
        r"group_ids must have one entry per feature row \(N=6\), got shape \(5,\)",
    ),
    ("ids-2d", (_f, _ids[None], _s), ValueError, r"group_ids must be 1-D \(N,\)"),
    ("features-1d", (_f[0], _ids, _s), ValueError, r"features must be 2-D \(N, D\)"),
    ("int-features", (_f.long(), _ids, _s), TypeError, r"features must have a dtype in"),
    ("empty", (torch.randn(0, 4), torch.zeros(0, dtype=torch.int64), _s), ValueError, r"features must not be empty"),
    ("mean-D", (_f, _ids, {**_s, "mean": torch.randn(5)}), ValueError, r"mean must have D=4 entries"),
    (
        "whitening-D",
        (_f, _ids, {**_s, "whitening": torch.eye(3)}),
        ValueError,
        r"whitening must have shape \(D, D\) = \(4, 4\)",
    ),
    ("no-stats", (_f, _ids, {}), ValueError, r"no whitening statistics"),
    ("eps", (_f, _ids, {**_s, "eps": -1.0}), ValueError, r"eps must be a finite number > 0"),
    ("backend", (_f, _ids, {**_s, "backend": "gpu"}), ValueError, r"unknown backend backend='gpu'"),
    ("sparse", (_f.to_sparse(), _ids, _s), TypeError, r"features must be a dense \(strided\) tensor"),
    (
        "sparse-whitening",
        (_f, _ids, {**_s, "whitening": torch.eye(4).to_sparse()}),
        TypeError,
        r"whitening must be a dense \(strided\) tensor, got layout torch.sparse_coo",
    ),
    ("meta", (_f.to("meta"), _ids.to("meta"), _s), ValueError, r"features is on the meta device"),
    (
        "overflow",
        (_f * 1e30, _ids, _s),
        ValueError,
        r"z = \(features - mean\) A holds values up to .* where pairwise distances \(4 terms\) overflow torch.float32",
    ),
]


@pytest.mark.parametrize("args, error, message", [pytest.param(a, e, m, id=i) for i, a, e, m in BAD_INPUTS])
def test_bad_input(args, error, message):
    features, ids, kwargs = args
    with pytest.raises(error, match=message):
        group_invariance(features, ids, **kwargs)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_ill_conditioned_statistics_score_float32_exactly(backend):
    """Condition number ~1e11: float32 whitening was off by ~1e-3 against the float64 features' measures. With
    float64 products (and a warning saying so) groups of identical images score cosine 1 and distance 0 within 1e-4
    and every group matches the float64 features' measures; results stay float32."""
    _skip_unavailable(backend)
    d, n = 160, 6
    features = ill_conditioned_features(900, d)  # (N, D) float32
    stats = FeatureStats.from_features(features)
    assert 1e10 < stats.condition_number <= 1e12
    rows = torch.cat([features[:n], features[:n], features[n : 4 * n]])  # n pairs of duplicates, n groups of 3
    ids = torch.cat([torch.arange(n), torch.arange(n), torch.arange(n, 2 * n).repeat_interleave(3)]).to(DEVICE)
    with pytest.warns(IllConditionedWarning, match=r"condition number [\d.]+e\+1[012] > 1e\+06.*float64"):
        got = group_invariance(rows, ids, stats, backend=backend)
    assert got.distance.dtype == torch.float32
    assert float((got.cosine_off_diagonal[:n] - 1).abs().max()) <= 1e-4
    assert float(got.distance[:n].abs().max()) <= 1e-4
    exact = group_invariance(rows.double(), ids, stats, backend="reference")
    for name in ("cosine_with_diagonal", "cosine_off_diagonal", "distance"):
        assert_close(getattr(got, name), getattr(exact, name), atol=1e-5, rtol=1e-5, name=name)


def test_memory_limit_for_the_whitening_copy(monkeypatch):
    monkeypatch.setenv("INV_KERNELS_MAX_MATRIX_GIB", "1e-6")
    with pytest.raises(ValueError, match=r"D = 64 features need a 64 x 64 float32 whitening matrix"):
        group_invariance(torch.randn(6, 64), _ids, mean=torch.zeros(64), whitening=torch.eye(64, dtype=torch.float64))


@pytest.mark.gpu
def test_mixed_devices():
    with pytest.raises(ValueError, match=r"group_ids must be on the device of features \(cpu\), got cuda:0"):
        group_invariance(_f, _ids.cuda(), **_s)
