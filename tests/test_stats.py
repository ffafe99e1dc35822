"""Feature statistics: streaming and merged moments against numpy's mean/cov, exact distributed reduction over two
gloo processes, whitening (identity covariance, equivalence with the reference code's inv + Cholesky recipe and
with scipy's Mahalanobis distance), shrinkage (automatic ridge, explicit ridge, Ledoit-Wolf against an independent
numpy transcription of sklearn's formula), condition numbers, save/load and every error path."""

import math
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.spatial.distance
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from inv_kernels.stats import FeatureStats, RunningMoments, SingularCovarianceWarning
from inv_kernels.testing import assert_close, to_float64

ROOT = Path(__file__).resolve().parents[1]
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


# ----------------------------------------------------------------------------------------------------------------
# helpers and independent float64 oracles
# ----------------------------------------------------------------------------------------------------------------
def _features(n: int, d: int, *, dtype=torch.float64, device="cpu", offset: float = 3.0) -> torch.Tensor:
    """Correlated features with a non-zero mean and uneven scales (fresh random values)."""
    mix = torch.randn(d, d, dtype=torch.float64) / math.sqrt(d) + torch.eye(d, dtype=torch.float64)
    scale = torch.rand(d, dtype=torch.float64) * 2 + 0.1
    x = (torch.randn(n, d, dtype=torch.float64) @ mix) * scale + offset * torch.randn(d, dtype=torch.float64)
    return x.to(device=device, dtype=dtype)


def _random_splits(n: int, parts: int) -> list[int]:
    """Sizes of `parts` uneven consecutive chunks of n rows (each >= 1)."""
    cuts = np.sort(np.random.choice(np.arange(1, n), size=parts - 1, replace=False))
    return np.diff(np.concatenate([[0], cuts, [n]])).tolist()


def _assert_moments(moments: RunningMoments, x: np.ndarray, rel: float = 1e-10, name: str = "moments") -> None:
    """mean, covariance and the fourth/third-order sums against numpy on the concatenation x (N, D)."""
    mean, cov = x.mean(0), np.cov(x, rowvar=False)
    assert moments.count == x.shape[0]
    assert_close(moments.mean, mean, rtol=rel, atol=rel * np.abs(mean).max(), name=f"{name}.mean")
    assert_close(moments.covariance(), cov, rtol=rel, atol=rel * np.abs(cov).max(), name=f"{name}.cov")
    xc = x - mean
    sq = (xc * xc).sum(1)
    state = moments.state_dict()
    q, r = (sq * sq).sum(), sq @ xc
    assert_close(state["q"], np.array(q), rtol=rel, atol=0.0, name=f"{name}.q")
    assert_close(state["r"], r, rtol=rel, atol=rel * np.abs(sq).sum() * np.abs(xc).max(), name=f"{name}.r")


def _moments_of(x: torch.Tensor, sizes: list[int]) -> RunningMoments:
    m = RunningMoments()
    for chunk in torch.split(x, sizes):
        m.update(chunk)
    return m


def sklearn_ledoit_wolf(x: np.ndarray) -> tuple[float, np.ndarray]:
    """Independent transcription of sklearn.covariance.ledoit_wolf_shrinkage / ledoit_wolf (assume_centered=False).

    Returns (shrinkage, shrunk covariance) with the maximum-likelihood covariance (divides by n)."""
    x = x - x.mean(0)
    n, p = x.shape
    x2 = x**2
    emp_cov_trace = x2.sum(0) / n
    mu = emp_cov_trace.sum() / p
    beta_ = (x2.T @ x2).sum()
    delta_ = ((x.T @ x) ** 2).sum() / n**2
    beta = 1.0 / (p * n) * (beta_ / n - delta_)
    delta = (delta_ - 2.0 * mu * emp_cov_trace.sum() + p * mu**2) / p
    beta = min(beta, delta)
    shrinkage = 0.0 if beta == 0 else beta / delta
    emp_cov = x.T @ x / n
    shrunk = (1.0 - shrinkage) * emp_cov + shrinkage * mu * np.eye(p)
    return shrinkage, shrunk


# ----------------------------------------------------------------------------------------------------------------
# streaming and merging
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_streaming_uneven_batches_matches_numpy(dtype):
    x = _features(301, 19, dtype=dtype, device=DEVICE)
    moments = _moments_of(x, _random_splits(301, 7))
    assert moments.device.type == torch.device(DEVICE).type
    _assert_moments(moments, to_float64(x), name=str(dtype))  # oracle on the same (rounded) values


def test_streaming_single_rows_and_one_batch_agree():
    x = _features(40, 5)
    one_by_one = _moments_of(x, [1] * 40)
    _assert_moments(one_by_one, x.numpy(), name="rows")
    _assert_moments(RunningMoments(dim=5).update(x), x.numpy(), name="whole")


def test_large_offset_is_stable():
    """Centring each batch about its own mean keeps the covariance accurate under a large common offset."""
    x = _features(500, 8, offset=0.0) + 1e6
    _assert_moments(_moments_of(x, _random_splits(500, 9)), x.numpy(), rel=1e-8, name="offset")


@pytest.mark.parametrize("parts", [2, 3, 6])
def test_merge_any_split_equals_whole(parts):
    x = _features(203, 11)
    sizes = _random_splits(203, parts)
    chunks = torch.split(x, sizes)
    shards = [_moments_of(c, _random_splits(c.shape[0], 2) if c.shape[0] > 1 else [1]) for c in chunks]
    before = [s.state_dict() for s in shards]
    merged = RunningMoments()
    for i in np.random.permutation(parts):
        merged.merge(shards[i])
        merged.merge(RunningMoments())  # merging an empty shard changes nothing
    _assert_moments(merged, x.numpy(), name="merged")
    for shard, state in zip(shards, before):  # merge leaves the other untouched
        assert torch.equal(shard.state_dict()["mean"], state["mean"]) and shard.count == state["count"]


def test_merge_into_empty_copies_and_is_independent():
    x = _features(30, 4)
    a = RunningMoments().update(x)
    b = RunningMoments().merge(a)
    a.update(_features(5, 4))
    _assert_moments(b, x.numpy(), name="copy")


def test_state_dict_roundtrip_and_clone():
    x = _features(50, 6)
    m = _moments_of(x, [20, 30])
    restored = RunningMoments.from_state_dict(m.state_dict())
    for key in ("mean", "m2", "q", "r"):
        assert torch.equal(restored.state_dict()[key], m.state_dict()[key])
    assert restored.count == 50 and restored.dim == 6
    empty = RunningMoments.from_state_dict(RunningMoments(dim=3).state_dict())
    assert empty.count == 0 and empty.dim == 3
    c = m.clone()
    m.update(x)
    assert c.count == 50


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 40), d=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_property_row_permutation_and_batching_invariant(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * 2 + 1
    perm = torch.randperm(n, generator=g)
    whole = RunningMoments().update(x)
    permuted = _moments_of(x[perm], [1, n - 1])
    assert_close(permuted.mean, whole.mean, rtol=1e-10, atol=1e-10)
    assert_close(permuted.covariance(), whole.covariance(), rtol=1e-10, atol=1e-10)
    assert_close(permuted.state_dict()["q"], whole.state_dict()["q"], rtol=1e-10, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(sizes=st.tuples(st.integers(1, 12), st.integers(1, 12), st.integers(1, 12)), seed=st.integers(0, 2**31 - 1))
def test_property_merge_is_associative(sizes, seed):
    g = torch.Generator().manual_seed(seed)
    a, b, c = (RunningMoments().update(torch.randn(s, 3, generator=g, dtype=torch.float64) + 5) for s in sizes)
    left = a.clone().merge(b).merge(c)
    right = a.clone().merge(b.clone().merge(c))
    for key in ("mean", "m2", "q", "r"):
        assert_close(left.state_dict()[key], right.state_dict()[key], rtol=1e-10, atol=1e-10, name=key)


@pytest.mark.gpu
def test_gpu_accumulation_matches_cpu():
    x = _features(257, 33)
    gpu = _moments_of(x.cuda(), [100, 157])
    assert gpu.device.type == "cuda"
    _assert_moments(gpu, x.numpy(), name="cuda")
    cpu = RunningMoments().update(x)
    cpu.merge(gpu)  # a shard from another device is moved to this one
    assert cpu.device.type == "cpu" and cpu.count == 514


# ----------------------------------------------------------------------------------------------------------------
# distributed: two gloo processes
# ----------------------------------------------------------------------------------------------------------------
_WORKER = textwrap.dedent(
    """
    import sys, torch, torch.distributed as dist
    rank, init_file, data_file, out_file = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    dist.init_process_group("gloo", init_method="file://" + init_file, rank=rank, world_size=2)
    from inv_kernels.stats import RunningMoments
    data = torch.load(data_file)
    out = {}
    m = RunningMoments()                          # both ranks hold uneven batches
    for batch in data["shards"][rank]:
        m.update(batch)
    out["full"] = m.all_reduce().state_dict()
    m = RunningMoments(dim=data["d"])             # rank 1 saw nothing
    if rank == 0:
        m.update(data["rank0_only"])
    out["one_empty"] = m.all_reduce().state_dict()
    m = RunningMoments().update(torch.randn(3, data["d"] + rank, dtype=torch.float64))
    try:
        m.all_reduce()
        out["mismatch"] = "no error"
    except ValueError as err:
        out["mismatch"] = str(err)
    torch.save(out, out_file)
    dist.barrier()  # no rank tears gloo down while the other still has the last collective in flight
    dist.destroy_process_group()
    """
)


def test_all_reduce_two_gloo_processes(tmp_path):
    d = 7
    x = _features(150, d)
    shards = [torch.split(x[:60], [25, 35]), torch.split(x[60:], [1, 50, 39])]
    rank0_only = _features(20, d)
    torch.save({"shards": [list(s) for s in shards], "d": d, "rank0_only": rank0_only}, tmp_path / "data.pt")
    (tmp_path / "worker.py").write_text(_WORKER)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(tmp_path / "worker.py"),
                str(r),
                str(tmp_path / "init"),
                str(tmp_path / "data.pt"),
                str(tmp_path / f"out{r}.pt"),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for r in range(2)
    ]
    for p in procs:
        output, _ = p.communicate(timeout=120)
        assert p.returncode == 0, output.decode(errors="replace")[-3000:]
    outs = [torch.load(tmp_path / f"out{r}.pt") for r in range(2)]
    for case in ("full", "one_empty"):
        for key in ("mean", "m2", "q", "r"):  # bitwise identical on every rank
            assert torch.equal(outs[0][case][key], outs[1][case][key]), (case, key)
    _assert_moments(RunningMoments.from_state_dict(outs[0]["full"]), x.numpy(), name="all_reduce")
    _assert_moments(RunningMoments.from_state_dict(outs[1]["one_empty"]), rank0_only.numpy(), name="one_empty")
    for out in outs:
        assert "different feature dimensions" in out["mismatch"] and "[7, 8]" in out["mismatch"]


def test_all_reduce_without_process_group_raises():
    with pytest.raises(RuntimeError, match="not initialised"):
        RunningMoments().update(_features(3, 2)).all_reduce()


# ----------------------------------------------------------------------------------------------------------------
# whitening
# ----------------------------------------------------------------------------------------------------------------
def test_whitened_statistics_set_has_identity_covariance():
    x = _features(400, 24, device=DEVICE)
    stats = FeatureStats.from_features(x)
    assert stats.shrinkage_method == "none" and stats.shrinkage == 0.0
    z = to_float64(stats.whiten(x))
    assert_close(np.cov(z, rowvar=False), np.eye(24), atol=1e-8, rtol=0, name="cov(z)")
    assert_close(z.mean(0), np.zeros(24), atol=1e-8, rtol=0, name="mean(z)")
    a = stats.whitening_matrix()
    zc = to_float64((x - stats.mean) @ a)
    assert_close(np.cov(zc, rowvar=False), np.eye(24), atol=1e-8, rtol=0, name="cov((f - mu) A)")
    assert_close(torch.triu(a), a, atol=0, rtol=0, name="A upper triangular")


def test_whitening_matches_reference_recipe_and_scipy():
    n, d = 300, 16
    ref_set = _features(n, d)
    stats = FeatureStats.from_features(ref_set)
    f = ref_set.numpy()
    # the reference code's recipe (float64 here): P = inv(np.cov), L = chol(P), w = (mu - f) L
    mu = f.mean(0)
    p = np.linalg.inv(np.cov(f, rowvar=False))
    chol_p = np.linalg.cholesky(p)
    a = stats.whitening_matrix().numpy()
    assert_close(a @ a.T, p, rtol=1e-8, atol=1e-8 * np.abs(p).max(), name="A A^T = P")

    fa, fb = _features(6, d).numpy(), _features(6, d).numpy()  # new images, offset like the set
    wa, wb = (mu - fa) @ chol_p, (mu - fb) @ chol_p
    ref_cos = (wa * wb).sum(1) / (np.linalg.norm(wa, axis=1) * np.linalg.norm(wb, axis=1))
    ref_dist = np.linalg.norm(wa - wb, axis=1)
    scipy_dist = np.array([scipy.spatial.distance.mahalanobis(u, v, p) for u, v in zip(fa, fb)])

    for name, za, zb in [
        ("A", (fa - mu) @ a, (fb - mu) @ a),
        ("whiten", stats.whiten(torch.from_numpy(fa)).numpy(), stats.whiten(torch.from_numpy(fb)).numpy()),
    ]:
        cos = (za * zb).sum(1) / (np.linalg.norm(za, axis=1) * np.linalg.norm(zb, axis=1))
        assert_close(cos, ref_cos, atol=1e-8, rtol=1e-8, name=f"cosine via {name}")
        assert_close(np.linalg.norm(za - zb, axis=1), ref_dist, atol=1e-8, rtol=1e-8, name=f"distance via {name}")
    maha = stats.mahalanobis(torch.from_numpy(fa), torch.from_numpy(fb))
    assert maha.shape == (6,)
    assert_close(maha, scipy_dist, atol=1e-8, rtol=1e-8, name="mahalanobis vs scipy")
    assert_close(maha, ref_dist, atol=1e-8, rtol=1e-8, name="mahalanobis vs reference")


def test_whiten_float32_and_devices():
    x = _features(200, 12)
    stats = FeatureStats.from_features(x)
    z64 = stats.whiten(x.float().double())  # exact result for the float32 inputs
    z32 = stats.whiten(x.float(), dtype=torch.float32)
    assert z32.dtype == torch.float32 and z64.dtype == torch.float64
    # forward substitution in float32: error ~ cond(C) eps32 = sqrt(cond(Sigma)) eps32 (measured <= 2.1x that)
    atol = 20 * math.sqrt(stats.condition_number) * float(torch.finfo(torch.float32).eps)
    assert_close(z32, z64, atol=atol, rtol=0, name="float32 whitening")
    a32 = stats.whitening_matrix(torch.float32, DEVICE)
    assert a32.dtype == torch.float32 and a32.device.type == torch.device(DEVICE).type
    if DEVICE == "cuda":
        zg = stats.whiten(x.cuda())
        assert zg.device.type == "cuda"
        assert_close(zg, stats.whiten(x), atol=1e-9, rtol=1e-9, name="cuda whitening")
        moved = stats.to("cuda")
        assert moved.chol.device.type == "cuda" and moved.summary() == stats.summary()


# ----------------------------------------------------------------------------------------------------------------
# shrinkage and condition numbers
# ----------------------------------------------------------------------------------------------------------------
def test_condition_number_matches_numpy():
    x = _features(120, 10)
    stats = FeatureStats.from_features(x, model_id="m")
    assert math.isclose(stats.condition_number, np.linalg.cond(np.cov(x.numpy(), rowvar=False)), rel_tol=1e-8)
    summary = stats.summary()
    assert summary == {
        "count": 120,
        "dim": 10,
        "condition_number": stats.condition_number,
        "shrinkage": 0.0,
        "shrinkage_method": "none",
        "model_id": "m",
    }
    assert "condition_number" in repr(stats)


@pytest.mark.parametrize("n, d", [(10, 30), (30, 30)])
def test_rank_deficient_warns_and_adds_ridge(n, d):
    x = _features(n, d)
    with pytest.warns(SingularCovarianceWarning, match=rf"count={n} rows give rank at most {n - 1} < D={d}"):
        stats = FeatureStats.from_features(x)
    assert stats.shrinkage_method == "auto_ridge" and stats.shrinkage > 0
    s = np.cov(x.numpy(), rowvar=False)
    used = s + stats.shrinkage * np.eye(d)
    assert_close(stats.covariance_used(), used, rtol=1e-10, atol=1e-12 * np.abs(s).max(), name="S + lambda I")
    assert_close(stats.cov, s, rtol=1e-10, atol=1e-10 * np.abs(s).max(), name="cov stays the sample covariance")
    c = stats.chol.numpy()
    assert_close(c @ c.T, used, rtol=1e-8, atol=1e-8 * np.abs(used).max(), name="C C^T")
    assert stats.condition_number <= 1e12
    # a condition number near 1e12 is itself only known to about cond * eps (the smallest eigenvalue's error)
    cond_tol = 1e-8 + 10 * stats.condition_number * np.finfo(np.float64).eps
    assert math.isclose(stats.condition_number, np.linalg.cond(used), rel_tol=cond_tol)
    # the ridge is on the documented ladder: (tr S / D) 10^k
    k = math.log10(stats.shrinkage / (np.trace(s) / d))
    assert abs(k - round(k)) < 1e-9 and -12 <= round(k) <= 0
    z = stats.whiten(_features(4, d))
    assert torch.isfinite(z).all()
    with pytest.warns(SingularCovarianceWarning):  # no condition limit: the smallest ridge that factorises
        lenient = FeatureStats.from_features(x, max_condition=math.inf)
    assert 0 < lenient.shrinkage <= stats.shrinkage
    with pytest.raises(ValueError, match="singular.*rank at most"):
        FeatureStats.from_features(x, strict=True)


def test_collinear_features_warn_even_with_many_rows():
    x = _features(200, 6)
    x = torch.cat([x, x[:, :1] * 2.0], dim=1)  # an exactly dependent column: Sigma is singular
    with pytest.warns(SingularCovarianceWarning, match="singular"):
        stats = FeatureStats.from_features(x)
    assert stats.shrinkage_method == "auto_ridge" and stats.shrinkage > 0
    with pytest.raises(ValueError, match="Cholesky failed at pivot|condition number"):
        FeatureStats.from_features(x, strict=True)
    # a lenient max_condition still needs a factorisable matrix
    stats = FeatureStats.from_features(_features(200, 6), max_condition=math.inf)
    assert stats.shrinkage_method == "none"


def test_explicit_ridge_is_used_exactly_without_warning():
    x = _features(8, 20)  # rank-deficient, but the caller chose a ridge
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stats = FeatureStats.from_features(x, shrinkage=0.05)
    assert stats.shrinkage_method == "ridge" and stats.shrinkage == 0.05
    used = np.cov(x.numpy(), rowvar=False) + 0.05 * np.eye(20)
    assert_close(stats.covariance_used(), used, rtol=1e-10, atol=1e-12)
    assert math.isclose(stats.condition_number, np.linalg.cond(used), rel_tol=1e-8)


@pytest.mark.parametrize("n, d", [(15, 40), (200, 12)])
def test_ledoit_wolf_matches_sklearn_formula(n, d):
    x = _features(n, d)
    expected_shrinkage, expected_cov = sklearn_ledoit_wolf(x.numpy())
    streamed = _moments_of(x, _random_splits(n, 3))
    stats = FeatureStats.from_moments(streamed, "ledoit_wolf")
    assert stats.shrinkage_method == "ledoit_wolf"
    assert 0 < stats.shrinkage <= 1
    assert math.isclose(stats.shrinkage, expected_shrinkage, rel_tol=1e-9), (stats.shrinkage, expected_shrinkage)
    # applied to the unbiased covariance: N / (N - 1) times sklearn's shrunk (maximum-likelihood) covariance
    used = expected_cov * n / (n - 1)
    assert_close(stats.covariance_used(), used, rtol=1e-9, atol=1e-9 * np.abs(used).max(), name="LW covariance")
    assert math.isclose(stats.condition_number, np.linalg.cond(used), rel_tol=1e-8)
    c = stats.chol.numpy()
    assert_close(c @ c.T, used, rtol=1e-9, atol=1e-9 * np.abs(used).max(), name="C C^T")


def test_constant_features_raise():
    x = torch.ones(10, 3, dtype=torch.float64) * 4.0
    with pytest.raises(ValueError, match="constant"):
        FeatureStats.from_features(x)


# ----------------------------------------------------------------------------------------------------------------
# save / load
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shrinkage", ["none", "ledoit_wolf", 1e-3])
def test_save_load_roundtrip(tmp_path, shrinkage):
    stats = FeatureStats.from_features(_features(60, 9, device=DEVICE), shrinkage, model_id="resnet50@abc:avgpool")
    path = tmp_path / "sub" / "stats.pt"
    stats.save(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["stats.pt"]  # no temporary left behind
    loaded = FeatureStats.load(path, expected_model_id="resnet50@abc:avgpool", expected_dim=9)
    for name in ("mean", "cov", "chol"):
        assert torch.equal(getattr(loaded, name), getattr(stats, name).cpu()), name
    assert loaded.summary() == stats.summary()
    stats.save(path)  # overwriting works too
    assert FeatureStats.load(path).count == 60


def test_load_rejects_other_model_and_dim(tmp_path):
    path = tmp_path / "stats.pt"
    FeatureStats.from_features(_features(30, 5), model_id="moco-default").save(path)
    with pytest.raises(ValueError, match=r"model_id='moco-default', expected model_id='moco-ventral'"):
        FeatureStats.load(path, expected_model_id="moco-ventral")
    with pytest.raises(ValueError, match=r"D=5 features, expected D=2048"):
        FeatureStats.load(path, expected_dim=2048)
    unnamed = tmp_path / "unnamed.pt"
    FeatureStats.from_features(_features(30, 5)).save(unnamed)
    with pytest.raises(ValueError, match=r"model_id=None, expected model_id='x'"):
        FeatureStats.load(unnamed, expected_model_id="x")


def test_load_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no statistics file"):
        FeatureStats.load(tmp_path / "absent.pt")
    good = tmp_path / "good.pt"
    FeatureStats.from_features(_features(30, 5)).save(good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(np.random.bytes(256))
    for path in (truncated, garbage):
        with pytest.raises(ValueError, match="corrupt or not a statistics file"):
            FeatureStats.load(path)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="not a FeatureStats file"):
        FeatureStats.load(foreign)
    state = torch.load(good)
    state["chol"] = state["chol"][:, :4]
    bad_shape = tmp_path / "bad_shape.pt"
    torch.save(state, bad_shape)
    with pytest.raises(ValueError, match=r"corrupt .*chol must have shape"):
        FeatureStats.load(bad_shape)


# ----------------------------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_inf_features_raise(bad):
    x = _features(10, 4)
    x[3, 2] = bad
    with pytest.raises(ValueError, match=r"features contains NaN or Inf \(1 of 40 elements; first at index \(3, 2\)\)"):
        RunningMoments().update(x)
    stats = FeatureStats.from_features(_features(30, 4))
    with pytest.raises(ValueError, match="NaN or Inf"):
        stats.whiten(x)
    with pytest.raises(ValueError, match="NaN or Inf"):
        stats.mahalanobis(x, _features(10, 4))


def test_shape_dtype_and_empty_errors():
    m = RunningMoments()
    with pytest.raises(ValueError, match=r"features must be 2-D \(n, D\), got a 1-D tensor of shape \(5,\)"):
        m.update(torch.randn(5))
    with pytest.raises(ValueError, match="must be 2-D"):
        m.update(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"must not be empty, got shape \(0, 4\)"):
        m.update(torch.randn(0, 4))
    with pytest.raises(TypeError, match="dtype in"):
        m.update(torch.ones(3, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        m.update([[1.0] * 4] * 3)  # NumPy arrays are taken (tests/ops/test_numpy_inputs.py)
    m.update(torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"must have D=4 columns .* got shape \(3, 5\) \(D=5\)"):
        m.update(torch.randn(3, 5))
    with pytest.raises(ValueError, match="must have D=3"):
        RunningMoments(dim=3).update(torch.randn(2, 4))
    with pytest.raises(ValueError, match="expected D=4, got other with D=6"):
        m.merge(RunningMoments().update(torch.randn(2, 6)))
    with pytest.raises(TypeError, match="must be a RunningMoments"):
        m.merge("moments")
    with pytest.raises(ValueError, match="dim must be a positive int"):
        RunningMoments(dim=0)


def test_too_few_rows_errors():
    one = RunningMoments().update(torch.randn(1, 3))
    with pytest.raises(ValueError, match="needs at least 2 feature rows, got 1"):
        one.covariance()
    with pytest.raises(ValueError, match="at least 2 feature rows, got count=1"):
        FeatureStats.from_moments(one)
    with pytest.raises(ValueError, match="needs at least 1 feature rows, got 0"):
        _ = RunningMoments().mean


def test_bad_shrinkage_and_whitening_arguments():
    x = _features(30, 4)
    with pytest.raises(ValueError, match="shrinkage must be 'none', 'ledoit_wolf' or a ridge > 0, got 'oas'"):
        FeatureStats.from_features(x, "oas")
    with pytest.raises(ValueError, match="ridge shrinkage must be a finite number > 0, got -1"):
        FeatureStats.from_features(x, -1.0)
    with pytest.raises(TypeError, match="shrinkage must be a string or a number"):
        FeatureStats.from_features(x, True)
    with pytest.raises(ValueError, match="max_condition must be a number > 1"):
        FeatureStats.from_features(x, max_condition=0.5)
    with pytest.raises(TypeError, match="moments must be a RunningMoments"):
        FeatureStats.from_moments(x)
    stats = FeatureStats.from_features(x)
    with pytest.raises(ValueError, match=r"features must have D=4 columns like the statistics, got shape \(2, 5\)"):
        stats.whiten(torch.randn(2, 5))
    with pytest.raises(TypeError, match="dtype must be torch.float32 or torch.float64"):
        stats.whiten(x, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"b must have the shape of a \(3, 4\), got \(2, 4\)"):
        stats.mahalanobis(torch.randn(3, 4), torch.randn(2, 4))
    with pytest.raises(TypeError, match="cov must be float64"):
        FeatureStats(mean=stats.mean, cov=stats.cov.float(), chol=stats.chol, count=3)
    with pytest.raises(ValueError, match="shrinkage_method must be one of"):
        FeatureStats(mean=stats.mean, cov=stats.cov, chol=stats.chol, count=3, shrinkage_method="magic")
    with pytest.raises(ValueError, match="state must be a dict"):
        RunningMoments.from_state_dict({"count": 1})


def test_a_dimension_too_large_for_memory_is_named_before_allocating():
    """D = 2,000,000 features need D x D float64 accumulators (tens of TiB): the first update said nothing and failed
    in the allocator; now a ValueError names D, the matrices and their size before anything is allocated."""
    with pytest.raises(
        ValueError,
        match=r"RunningMoments.update: D = 2000000 features need 3 x 2000000 x 2000000 "
        r"float64 matrices \(.*\) \(8.94e\+04 GiB\), more than the .* reduce the "
        r"feature dimension",
    ):
        RunningMoments().update(torch.zeros(2, 2_000_000))
    with pytest.raises(ValueError, match=r"D = 2000000 features need"):
        FeatureStats.from_features(torch.zeros(2, 2_000_000))


def test_memory_limit_applies_to_every_d_by_d_step(monkeypatch):
    x = _features(80, 48)
    moments = RunningMoments().update(x)
    stats = FeatureStats.from_moments(moments)
    monkeypatch.setenv("INV_KERNELS_MAX_MATRIX_GIB", "1e-5")  # 10.5 KiB: one 48 x 48 float64 matrix is 18 KiB
    with pytest.raises(
        ValueError,
        match=r"RunningMoments.update: D = 48 features need 3 x 48 x 48 float64 .* "
        r"INV_KERNELS_MAX_MATRIX_GIB=1e-5",
    ):
        RunningMoments().update(x)
    moments.update(x)  # the accumulators exist already: no new D x D allocation to check
    with pytest.raises(ValueError, match=r"FeatureStats.from_moments: D = 48 features need 3 x 48 x 48 float64"):
        FeatureStats.from_moments(moments)
    with pytest.raises(ValueError, match=r"FeatureStats.whitening_matrix: D = 48 features need 2 x 48 x 48 float64"):
        stats.whitening_matrix()
    monkeypatch.setenv("INV_KERNELS_MAX_MATRIX_GIB", "5e-6")  # 5.2 KiB: a 48 x 48 float32 matrix is 9 KiB
    with pytest.raises(
        ValueError,
        match=r"FeatureStats.whiten: D = 48 features need a 48 x 48 float32 matrix "
        r"\(a copy of the Cholesky factor\)",
    ):
        stats.whiten(x, dtype=torch.float32)
    stats.whiten(x)  # float64 on the statistics' device: the factor itself, no copy
    monkeypatch.setenv("INV_KERNELS_MAX_MATRIX_GIB", "0")
    with pytest.raises(ValueError, match=r"INV_KERNELS_MAX_MATRIX_GIB must be a number of GiB > 0, got '0'"):
        RunningMoments().update(x)


def test_sparse_meta_and_corrupt_inputs_are_rejected():
    x = _features(20, 4)
    with pytest.raises(
        TypeError,
        match=r"RunningMoments.update: features must be a dense \(strided\) tensor, got "
        r"layout torch.sparse_coo",
    ):
        RunningMoments().update(x.to_sparse())
    with pytest.raises(ValueError, match=r"RunningMoments.update: features is on the meta device, which holds no"):
        RunningMoments().update(x.to("meta"))
    stats = FeatureStats.from_features(x)
    with pytest.raises(TypeError, match=r"FeatureStats.whiten: features must be a dense"):
        stats.whiten(x.to_sparse())
    with pytest.raises(ValueError, match=r"FeatureStats.mahalanobis: b is on the meta device"):
        stats.mahalanobis(x, x.to("meta"))
    with pytest.raises(TypeError, match=r"FeatureStats: cov must be a dense \(strided\) tensor"):
        FeatureStats(mean=stats.mean, cov=stats.cov.to_sparse(), chol=stats.chol, count=20)
    nan_mean = stats.mean.clone()
    nan_mean[1] = math.nan
    with pytest.raises(ValueError, match=r"FeatureStats: mean contains NaN or Inf \(1 of 4 elements"):
        FeatureStats(mean=nan_mean, cov=stats.cov, chol=stats.chol, count=20)
    with pytest.raises(ValueError, match=r"FeatureStats: chol must be a Cholesky factor with a positive diagonal"):
        FeatureStats(mean=stats.mean, cov=stats.cov, chol=stats.chol * torch.tensor([1.0, 1, 0, 1]), count=20)
