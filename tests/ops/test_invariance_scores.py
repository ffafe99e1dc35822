"""invariance_scores on every available backend against an independent float64 computation that follows the reference
code exactly (np.cov, np.linalg.inv, np.linalg.cholesky of the inverse, w = (mu - f) @ L, the cosine formula and
scipy's mahalanobis per pair); identity and binary-transform cases; chunking and strides; properties; registration;
bad input."""

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
from inv_kernels.ops.invariance_scores import FWD_OPS, InvarianceScores, invariance_scores, invariance_scores_ref
from inv_kernels.stats import FeatureStats
from inv_kernels.testing import assert_close, assert_within_torch_error, to_float64

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
# (n, k, D): ones, primes, D below / above / not a multiple of every block size
SHAPES = [(1, 1, 1), (1, 3, 7), (3, 1, 64), (4, 3, 130), (2, 5, 33)]


def numpy_scores(clean: np.ndarray, views: np.ndarray, mu, p, l, eps: float = EPS):
    """Per-pair cosine and distance, per-value nanmeans and summaries, exactly as the reference code."""
    n, k, _ = views.shape
    cos = np.empty((n, k))
    dist = np.empty((n, k))
    w_clean = (mu - clean) @ l  # (n, D)
    for i in range(n):
        for j in range(k):
            w_view = (mu - views[i, j]) @ l
            cos[i, j] = w_clean[i] @ w_view / (max(np.linalg.norm(w_clean[i]), eps) * max(np.linalg.norm(w_view), eps))
            dist[i, j] = scipy.spatial.distance.mahalanobis(clean[i], views[i, j], p)
    cos_v, dist_v = np.nanmean(cos, axis=0), np.nanmean(dist, axis=0)
    return cos, dist, cos_v, dist_v, float(np.mean(cos_v)), float(np.mean(dist_v))


def _features(n: int, k: int, d: int, dtype: torch.dtype, noise: float = 0.5):
    """Clean rows like the statistics' rows, and views = clean + noise (cosines spread over (0, 1))."""
    f, mu, _, _ = reference_statistics(d)
    scale = f.std(axis=0)
    rng = np.random.default_rng(int(torch.randint(0, 2**31, ())))
    clean = mu + rng.standard_normal((n, d)) * scale
    views = clean[:, None, :] + noise * rng.standard_normal((n, k, d)) * scale
    clean_t = torch.from_numpy(clean).to(DEVICE, dtype)
    views_t = torch.from_numpy(views).to(DEVICE, dtype)
    return clean_t, views_t


def _torch_same_precision(clean: torch.Tensor, views: torch.Tensor, mu, l):
    """Plain PyTorch in the features' (half) precision: centred features and L rounded, z rounded, the rest float32."""
    dt = clean.dtype
    mu_t = torch.from_numpy(mu).to(clean.device)
    l_t = torch.from_numpy(l).to(clean.device, dt)
    zc = ((clean.double() - mu_t).to(dt) @ l_t).float()  # (n, D)
    zv = ((views.double() - mu_t).to(dt) @ l_t).float()  # (n, k, D)
    cos = torch.nn.functional.cosine_similarity(zc[:, None, :], zv, dim=2, eps=EPS)
    dist = torch.linalg.vector_norm(zc[:, None, :] - zv, dim=2)
    return cos, dist


def _check(backend: str, clean: torch.Tensor, views: torch.Tensor, **kwargs) -> InvarianceScores:
    """The backend's scores against the float64 oracle (on the features as given, i.e. already rounded)."""
    d = clean.shape[1]
    _, mu, p, l = reference_statistics(d)
    mean = torch.from_numpy(mu).to(DEVICE)
    whitening = torch.from_numpy(l).to(DEVICE)
    out = invariance_scores(clean, views, mean=mean, whitening=whitening, backend=backend, **kwargs)
    acc = torch.float64 if clean.dtype == torch.float64 else torch.float32
    n, k = views.shape[:2]
    assert out.cosine.shape == (n, k) and out.distance.shape == (n, k) and out.cosine.dtype == acc
    assert out.cosine_per_value.shape == (k,) and out.distance_per_value.shape == (k,)
    cos64, dist64, cos_v, dist_v, cos_m, dist_m = numpy_scores(to_float64(clean), to_float64(views), mu, p, l)
    if clean.dtype in (torch.float32, torch.float64):
        tol = {} if clean.dtype == torch.float64 else {"reduction_size": d}
        # the whitened features have norm ~ sqrt(D): distances carry the relative tolerance
        assert_close(out.cosine, cos64, dtype=clean.dtype, name=f"{backend} cosine", **tol)
        assert_close(out.distance, dist64, dtype=clean.dtype, name=f"{backend} distance", **tol)
        assert_close(out.cosine_per_value, cos_v, dtype=clean.dtype, name="cosine per value", **tol)
        assert_close(out.distance_per_value, dist_v, dtype=clean.dtype, name="distance per value", **tol)
        assert_close(np.array(out.cosine_mean), np.array(cos_m), dtype=clean.dtype, name="cosine mean", **tol)
        assert_close(np.array(out.distance_mean), np.array(dist_m), dtype=clean.dtype, name="distance mean", **tol)
    else:
        # Half features: within 2x plain PyTorch's error in the same precision (flash-attention's rule).
        torch_cos, torch_dist = _torch_same_precision(clean, views, mu, l)
        atol = 1e-2 if clean.dtype == torch.float16 else 5e-2
        assert_within_torch_error(out.cosine, torch_cos, cos64, atol=atol, name=f"{backend} cosine {clean.dtype}")
        scale = float(np.abs(dist64).max())
        assert_within_torch_error(
            out.distance, torch_dist, dist64, atol=atol * scale, name=f"{backend} distance {clean.dtype}"
        )
    return out


# ----------------------------------------------------------------------------------------------------------------
# values
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_float64_reference_code(backend, dtype, shape):
    _skip_unavailable(backend)
    clean, views = _features(*shape, dtype)
    _check(backend, clean, views)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize(
    "d, dtype",
    [(2048, torch.float32), (1024, torch.bfloat16)],
    ids=["2048-float32", "1024-bfloat16"],
)
def test_large_feature_dimension(backend, d, dtype):
    _skip_unavailable(backend)
    clean, views = _features(2, 3, d, dtype)
    _check(backend, clean, views)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_compiled_backends_match_the_reference_closely(backend):
    """Half features: every backend follows the reference's recipe, so they agree to float32 accuracy."""
    _skip_unavailable(backend)
    d = 96
    _, mu, _, l = reference_statistics(d)
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        clean, views = _features(3, 4, d, dtype)
        kwargs = {"mean": torch.from_numpy(mu).to(DEVICE), "whitening": torch.from_numpy(l).to(DEVICE)}
        out = invariance_scores(clean, views, backend=backend, **kwargs)
        ref = invariance_scores_ref(clean, views, **kwargs)
        assert_close(out.cosine, ref.cosine, atol=2e-5, rtol=1e-5, name=f"{backend} {dtype} cosine vs ref")
        assert_close(out.distance, ref.distance, atol=1e-4, rtol=2e-5, name=f"{backend} {dtype} distance vs ref")


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).removeprefix("torch."))
def test_identity_views_give_cosine_one_and_distance_zero(backend, dtype):
    _skip_unavailable(backend)
    n, k, d = 3, 4, 130
    clean, _ = _features(n, k, d, dtype)
    _, mu, _, l = reference_statistics(d)
    kwargs = {"mean": torch.from_numpy(mu).to(DEVICE), "whitening": torch.from_numpy(l).to(DEVICE)}
    zc_norm = np.linalg.norm((mu - to_float64(clean)) @ l, axis=1)  # (n,)
    for views in (clean[:, None, :].expand(n, k, d), clean[:, None, :].repeat(1, k, 1)):  # stride 0, and a copy
        out = invariance_scores(clean, views, backend=backend, **kwargs)
        tol = 1e-12 if dtype == torch.float64 else 2e-6
        assert_close(out.cosine, np.ones((n, k)), atol=tol, rtol=0, name=f"{backend} identity cosine")
        # the same arithmetic up to summation order: the distance is rounding noise relative to |z|
        bound = (1e-12 if dtype == torch.float64 else 1e-5) * zc_norm[:, None]
        assert bool((to_float64(out.distance) <= bound).all()), f"{backend}: identity distances {out.distance}"
        assert out.cosine_mean == pytest.approx(1.0, abs=tol)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_binary_transform_summary_is_one_plus_s_over_two(backend):
    """k = 2 with the identity in the grid (h_flip, grayscale, ...): the summary is (1 + s) / 2, the distance d / 2."""
    _skip_unavailable(backend)
    n, d = 6, 40
    clean, views = _features(n, 2, d, torch.float64)
    views[:, 0] = clean  # parameter value 0: the identity
    _, mu, _, l = reference_statistics(d)
    out = invariance_scores(
        clean, views, mean=torch.from_numpy(mu).to(DEVICE), whitening=torch.from_numpy(l).to(DEVICE), backend=backend
    )
    s = float(out.cosine_per_value[1])
    assert float(out.cosine_per_value[0]) == pytest.approx(1.0, abs=1e-12)
    assert out.cosine_mean == pytest.approx((1 + s) / 2, abs=1e-12)
    assert out.distance_mean == pytest.approx(float(out.distance_per_value[1]) / 2, abs=1e-9)
    assert s < 0.99


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_chunks_and_strides_do_not_change_results(backend):
    _skip_unavailable(backend)
    n, k, d = 5, 3, 50
    _, mu, _, l = reference_statistics(d)
    kwargs = {"mean": torch.from_numpy(mu).to(DEVICE), "whitening": torch.from_numpy(l).to(DEVICE)}
    clean, views = _features(n, k, d, torch.float32)
    base = invariance_scores(clean, views, backend=backend, **kwargs)
    for chunk_rows in (1, 2, 7):
        out = invariance_scores(clean, views, backend=backend, chunk_rows=chunk_rows, **kwargs)
        assert_close(out.cosine, base.cosine, name=f"chunk_rows={chunk_rows} cosine")
        assert_close(out.distance, base.distance, name=f"chunk_rows={chunk_rows} distance")
    layouts = {
        "view-major": views.transpose(0, 1).contiguous().transpose(0, 1),  # strides (D, n D, 1)
        "column-slice": views.repeat(1, 1, 2)[..., :d],  # row stride 2 D
        "column-stride-2": torch.stack([views, views], dim=3).flatten(2)[:, :, ::2],
    }
    for name, layout in layouts.items():
        assert torch.equal(layout, views)
        out = invariance_scores(clean, layout, backend=backend, **kwargs)
        assert_close(out.cosine, base.cosine, name=f"{name} cosine")
        assert_close(out.distance, base.distance, name=f"{name} distance")


def test_stats_object_and_feature_stats():
    d = 24
    f, mu, _, l = reference_statistics(d)
    clean, views = _features(3, 2, d, torch.float64)

    class Stats:
        mean = torch.from_numpy(mu)

        @staticmethod
        def whitening_matrix(dtype=torch.float64, device=None):
            return torch.from_numpy(l).to(device, dtype)

    direct = invariance_scores(clean, views, mean=Stats.mean.to(DEVICE), whitening=torch.from_numpy(l).to(DEVICE))
    via_stats = invariance_scores(clean, views, Stats())
    assert_close(via_stats.cosine, direct.cosine, name="stats= object")
    feature_stats = pytest.importorskip("inv_kernels.stats").FeatureStats
    fs = feature_stats.from_features(torch.from_numpy(f))
    out = invariance_scores(clean, views, fs)  # a different A (C^-T): the same scores
    assert_close(out.cosine, direct.cosine, atol=1e-9, rtol=1e-9, name="FeatureStats cosine")
    assert_close(out.distance, direct.distance, atol=1e-9, rtol=1e-9, name="FeatureStats distance")


def test_to_dict_is_json_ready():
    d = 8
    _, mu, _, l = reference_statistics(d)
    clean, views = _features(2, 3, d, torch.float32)
    kwargs = {"mean": torch.from_numpy(mu).to(DEVICE), "whitening": torch.from_numpy(l).to(DEVICE)}
    out = invariance_scores(clean, views, **kwargs)
    summary = json.loads(json.dumps(out.to_dict(include_pairs=True)))
    assert summary["k"] == 3 and len(summary["cosine_per_value"]) == 3 and len(summary["cosine"]) == 2
    assert summary["cosine_mean"] == pytest.approx(out.cosine_mean)


def test_outputs_carry_no_gradient():
    d = 8
    _, mu, _, l = reference_statistics(d)
    clean, views = _features(2, 3, d, torch.float32)
    clean.requires_grad_(True)
    for backend in BACKENDS:
        kwargs = {"mean": torch.from_numpy(mu).to(DEVICE), "whitening": torch.from_numpy(l).to(DEVICE)}
        out = invariance_scores(clean, views, backend=backend, **kwargs)
        assert not out.cosine.requires_grad and not out.distance.requires_grad


@pytest.mark.gpu
def test_streaming_cpu_features_to_the_gpu():
    d = 64
    _, mu, _, l = reference_statistics(d)
    clean, views = _features(9, 4, d, torch.float32)
    clean_cpu, views_cpu = clean.cpu(), views.cpu().pin_memory()
    kwargs = {"mean": torch.from_numpy(mu), "whitening": torch.from_numpy(l)}
    on_gpu = invariance_scores(clean, views, **{k: v.cuda() for k, v in kwargs.items()})
    streamed = invariance_scores(clean_cpu, views_cpu, device="cuda", chunk_rows=2, **kwargs)
    assert streamed.cosine.is_cuda
    assert_close(streamed.cosine, on_gpu.cosine, name="streamed cosine")
    assert_close(streamed.distance, on_gpu.distance, name="streamed distance")


@pytest.mark.parametrize("backend", [pytest.param(b, id=b) for b in COMPILED])
def test_opcheck(backend):
    d = 19
    _, mu, _, l = reference_statistics(d)
    for dtype in (torch.float32, torch.bfloat16, torch.float64):
        clean, views = _features(3, 2, d, dtype)
        acc = torch.float64 if dtype == torch.float64 else torch.float32
        mean = torch.from_numpy(mu).to(DEVICE, acc)
        whitening = torch.from_numpy(l).to(DEVICE, acc)
        zc = (clean.to(acc) - mean) @ whitening.to(dtype).to(acc)
        torch.library.opcheck(
            FWD_OPS[backend],
            (views, zc, mean, whitening.to(dtype), EPS),
            test_utils=("test_schema", "test_faketensor"),
        )


def test_fake_kernels_give_shapes_on_meta():
    views = torch.empty(4, 3, 16, device="meta", dtype=torch.bfloat16)
    zc = torch.empty(4, 16, device="meta")
    cos, dist = FWD_OPS["cpu"](views, zc, torch.empty(16, device="meta"), torch.empty(16, 16, device="meta"), EPS)
    assert cos.shape == (4, 3) and dist.shape == (4, 3) and cos.dtype == torch.float32


# ----------------------------------------------------------------------------------------------------------------
# properties
# ----------------------------------------------------------------------------------------------------------------
@settings(max_examples=12, deadline=None)
@given(
    n=st.integers(1, 4),
    k=st.integers(1, 5),
    d=st.integers(1, 24),
    seed=st.integers(0, 2**31 - 1),
)
def test_view_permutation_and_rotated_whitening(n, k, d, seed):
    """Permuting the views permutes the scores; any A' = A Q with orthogonal Q gives the same scores."""
    gen = torch.Generator().manual_seed(seed)
    mean = torch.randn(d, generator=gen, dtype=torch.float64)
    a = torch.randn(d, d, generator=gen, dtype=torch.float64) + 3 * torch.eye(d, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    clean = torch.randn(n, d, generator=gen, dtype=torch.float64)
    views = clean[:, None, :] + torch.randn(n, k, d, generator=gen, dtype=torch.float64)
    perm = torch.randperm(k, generator=gen)
    for backend in BACKENDS:
        dev = torch.device(DEVICE)
        args = {"mean": mean.to(dev), "backend": backend}
        base = invariance_scores(clean.to(dev), views.to(dev), whitening=a.to(dev), **args)
        permuted = invariance_scores(clean.to(dev), views[:, perm].to(dev), whitening=a.to(dev), **args)
        assert_close(permuted.cosine, base.cosine[:, perm.to(dev)], atol=1e-12, rtol=1e-12, name="permuted cosine")
        assert_close(permuted.distance, base.distance[:, perm.to(dev)], atol=1e-12, rtol=1e-12, name="permuted dist")
        rotated = invariance_scores(clean.to(dev), views.to(dev), whitening=(a @ q).to(dev), **args)
        assert_close(rotated.cosine, base.cosine, atol=1e-10, rtol=1e-10, name="A Q cosine")
        assert_close(rotated.distance, base.distance, atol=1e-10, rtol=1e-10, name="A Q distance")
        assert bool((base.cosine.abs() <= 1 + 1e-12).all()) and bool((base.distance >= 0).all())


# ----------------------------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------------------------
def _good(n=3, k=2, d=5):
    return torch.randn(n, d), torch.randn(n, k, d), {"mean": torch.randn(d), "whitening": torch.eye(d)}


def _with(tensor: torch.Tensor, index, value) -> torch.Tensor:
    tensor = tensor.clone()
    tensor[index] = value
    return tensor


_c, _v, _s = _good()
BAD_INPUTS = [
    ("clean-1d", (torch.randn(5), _v, _s), ValueError, r"clean must be 2-D \(n, D\), got a 1-D tensor"),
    ("views-2d", (_c, torch.randn(3, 5), _s), ValueError, r"views must be 3-D \(n, k, D\), got a 2-D tensor"),
    ("D-mismatch", (_c, torch.randn(3, 2, 6), _s), ValueError, r"views must have shape \(n, k, D\) with n=3 and D=5"),
    ("n-mismatch", (_c, torch.randn(4, 2, 5), _s), ValueError, r"with n=3 and D=5 .* got \(4, 2, 5\)"),
    ("k-zero", (_c, torch.randn(3, 0, 5), _s), ValueError, r"views has k=0 views per image"),
    ("n-zero", (torch.randn(0, 5), torch.randn(0, 2, 5), _s), ValueError, r"clean must not be empty"),
    ("D-zero", (torch.randn(3, 0), torch.randn(3, 2, 0), _s), ValueError, r"clean must not be empty"),
    ("int", (_c.long(), _v.long(), _s), TypeError, r"clean must have a dtype in .* got torch.int64"),
    ("mixed-dtype", (_c, _v.double(), _s), TypeError, r"views must have the dtype of clean \(torch.float32\)"),
    ("list", ([[1.0]], _v, _s), TypeError, r"clean must be a torch.Tensor, got list"),
    (
        "nan-clean",
        (_with(_c, (1, 2), float("nan")), _v, _s),
        ValueError,
        r"clean contains NaN or Inf \(1 of 15 elements; first at index \(1, 2\)\)",
    ),
    (
        "inf-views",
        (_c, _with(_v, (2, 1, 4), float("inf")), _s),
        ValueError,
        r"views contains NaN or Inf \(1 of 30 elements; first at index \(2, 1, 4\)\)",
    ),
    ("mean-D", (_c, _v, {**_s, "mean": torch.randn(6)}), ValueError, r"mean must have D=5 entries .* got shape \(6,\)"),
    (
        "whitening-shape",
        (_c, _v, {**_s, "whitening": torch.eye(5)[:4]}),
        ValueError,
        r"whitening must have shape \(D, D\) = \(5, 5\) .* got \(4, 5\)",
    ),
    ("whitening-1d", (_c, _v, {**_s, "whitening": torch.randn(5)}), ValueError, r"whitening must be 2-D \(D, D\)"),
    (
        "mean-nan",
        (_c, _v, {**_s, "mean": _with(torch.randn(5), 3, float("nan"))}),
        ValueError,
        r"mean contains NaN or Inf",
    ),
    (
        "whitening-inf",
        (_c, _v, {**_s, "whitening": _with(torch.eye(5), (0, 0), float("inf"))}),
        ValueError,
        r"whitening contains NaN or Inf",
    ),
    ("no-stats", (_c, _v, {}), ValueError, r"no whitening statistics \(mean and whitening missing\)"),
    ("half-stats", (_c, _v, {"mean": torch.randn(5)}), ValueError, r"whitening missing"),
    ("both", (_c, _v, {**_s, "stats": object()}), ValueError, r"pass either stats= or mean= and whitening="),
    ("bad-stats", (_c, _v, {"stats": object()}), TypeError, r"stats must have a .mean tensor"),
    ("eps", (_c, _v, {**_s, "eps": 0.0}), ValueError, r"eps must be a finite number > 0"),
    ("chunk", (_c, _v, {**_s, "chunk_rows": 0}), ValueError, r"chunk_rows must be a positive int"),
    ("backend", (_c, _v, {**_s, "backend": "magic"}), ValueError, r"unknown backend backend='magic'"),
    (
        "sparse-whitening",
        (_c, _v, {**_s, "whitening": torch.eye(5).to_sparse()}),
        TypeError,
        r"whitening must be a dense \(strided\) tensor, got layout torch.sparse_coo",
    ),
    ("sparse-views", (_c, _v.to_sparse(), _s), TypeError, r"views must be a dense \(strided\) tensor"),
    ("meta", (_c.to("meta"), _v.to("meta"), _s), ValueError, r"clean is on the meta device, which holds no values"),
    ("meta-views", (_c, _v.to("meta"), _s), ValueError, r"views must be on the device of clean \(cpu\), got meta"),
    (
        "overflow",
        (_c * 1e30, _v * 1e30, _s),
        ValueError,
        r"the cosine came out NaN/Inf: the whitened features .* overflow torch.float32",
    ),
]


@pytest.mark.parametrize("args, error, message", [pytest.param(a, e, m, id=i) for i, a, e, m in BAD_INPUTS])
def test_bad_input(args, error, message):
    clean, views, kwargs = args
    with pytest.raises(error, match=message):
        invariance_scores(clean, views, **kwargs)


def test_huge_dimension_is_named_before_allocating():
    """A whitening matrix that must be copied densely (here a stride-0 expansion, cast to float32) is checked against
    the memory available before the copy: the message names D and the size instead of an allocator error."""
    d = 200_000
    clean, views = torch.zeros(1, d), torch.zeros(1, 1, d)
    whitening = torch.ones(1, 1, dtype=torch.float64).expand(d, d)  # (D, D) without memory
    with pytest.raises(
        ValueError,
        match=r"D = 200000 features need a 200000 x 200000 float32 whitening matrix "
        r"\(149 GiB\), more than the .* reduce the feature dimension",
    ):
        invariance_scores(clean, views, mean=torch.zeros(d), whitening=whitening)


def test_memory_limit_can_be_set(monkeypatch):
    clean, views, stats = _good(d=64)
    monkeypatch.setenv("INV_KERNELS_MAX_MATRIX_GIB", "1e-6")
    with pytest.raises(ValueError, match=r"64 x 64 float32 whitening matrix .* INV_KERNELS_MAX_MATRIX_GIB=1e-6"):
        invariance_scores(clean, views, mean=stats["mean"], whitening=stats["whitening"].double())
    invariance_scores(clean, views, **stats)  # the float32 matrix as given: no copy, no check
    monkeypatch.setenv("INV_KERNELS_MAX_MATRIX_GIB", "lots")
    with pytest.raises(ValueError, match=r"INV_KERNELS_MAX_MATRIX_GIB must be a number of GiB > 0, got 'lots'"):
        invariance_scores(clean, views, mean=stats["mean"], whitening=stats["whitening"].double())


def _ill_conditioned_case(n: int = 7, k: int = 2, d: int = 200):
    """FeatureStats of condition number ~1e11, clean rows (n, D) and views (n, k, D): view 0 a copy of its clean
    row, the others the clean row plus noise of the features' own scale."""
    features = ill_conditioned_features(1000, d)  # (N, D) float32
    stats = FeatureStats.from_features(features)
    assert 1e10 < stats.condition_number <= 1e12
    clean = features[:n]
    noise = (features[n : n + n * k] - features[n + n * k : n + 2 * n * k]).view(n, k, d)  # (n, k, D)
    views = (clean[:, None, :] + 0.5 * noise).contiguous()
    views[:, 0] = clean
    return stats, clean, views


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_ill_conditioned_statistics_score_float32_exactly(backend):
    """Condition number ~1e11: float32 products gave an identical view distance ~0.05 (cpu, reference) to 0.3
    (triton) and cosines 1e-4 off. With float64 products (and a warning saying so) identical views score cosine 1
    and distance 0 within 1e-4, and every pair matches the float64 features' scores; results stay float32."""
    _skip_unavailable(backend)
    stats, clean, views = _ill_conditioned_case()
    with pytest.warns(
        IllConditionedWarning,
        match=r"ill-conditioned \(condition number [\d.]+e\+1[012] > 1e\+06.*\); "
        r"whitening products computed in float64",
    ):
        got = invariance_scores(clean, views, stats, backend=backend)
    assert got.cosine.dtype == torch.float32 and got.distance.dtype == torch.float32
    assert float((got.cosine[:, 0] - 1).abs().max()) <= 1e-4
    assert float(got.distance[:, 0].abs().max()) <= 1e-4
    exact = invariance_scores(clean.double(), views.double(), stats, backend="reference")
    assert_close(got.cosine, exact.cosine, atol=1e-5, rtol=1e-5, name="cosine")
    assert_close(got.distance, exact.distance, atol=1e-5, rtol=1e-5, name="distance")


def test_ill_conditioned_reference_function_matches():
    stats, clean, views = _ill_conditioned_case()
    with pytest.warns(IllConditionedWarning):
        ref = invariance_scores_ref(clean, views, stats)
    assert ref.cosine.dtype == torch.float32 and float(ref.distance[:, 0].abs().max()) <= 1e-4


def test_well_conditioned_statistics_keep_float32_products(recwarn):
    features = ill_conditioned_features(400, 16, condition=1e3)
    stats = FeatureStats.from_features(features)
    invariance_scores(features[:3], features[:3, None], stats)
    assert not [w for w in recwarn if issubclass(w.category, IllConditionedWarning)]


def test_stats_with_wrong_dimension():
    class Stats:
        mean = torch.zeros(4, dtype=torch.float64)

        def whitening_matrix(self, dtype=torch.float64, device=None):
            return torch.eye(4, dtype=dtype, device=device)

    clean, views, _ = _good(d=5)
    with pytest.raises(ValueError, match=r"stats.mean has D=4 entries but the features have D=5"):
        invariance_scores(clean, views, Stats())


@pytest.mark.gpu
def test_mixed_devices():
    clean, views, stats = _good()
    with pytest.raises(ValueError, match=r"views must be on the device of clean \(cpu\), got cuda:0"):
        invariance_scores(clean, views.cuda(), **stats)
