"""Hypothesis-driven bad input for every public op: row_cosine, invariance_scores, group_invariance, infonce_loss and
ntxent_loss (with their loss modules and the key queue), fused_augment, and the statistics (RunningMoments.update,
FeatureStats.from_features, whiten, mahalanobis, whitening_matrix).

Each example draws valid inputs and spoils at most one argument: a wrong type or dtype, a rank too low or too high,
a zero size, a NaN or Inf, a non-positive or non-finite scalar, a tensor on the meta device (no values; beside CPU
tensors, a device mismatch) or in a sparse layout. Every call must either compute a finite result or raise TypeError /
ValueError whose message names the spoilt argument: never another exception, never a silent NaN. Valid inputs in
another memory layout (transposed, strided, stride-0 expanded) must give the result of their contiguous copies.
Validation runs before the backend is chosen, so the reference and cpu backends stand for all of them.
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings

import pytest
import torch
from _op_backends import BACKENDS
from hypothesis import given, settings
from hypothesis import strategies as st

from inv_kernels.augment import sample_augment_params
from inv_kernels.ops.contrastive_modules import InfoNCELoss, KeyQueue, NTXentLoss
from inv_kernels.ops.fused_augment import fused_augment
from inv_kernels.ops.group_invariance import group_invariance
from inv_kernels.ops.infonce import infonce_loss, ntxent_loss
from inv_kernels.ops.invariance_scores import invariance_scores
from inv_kernels.ops.row_cosine import row_cosine
from inv_kernels.stats import FeatureStats, RunningMoments
from inv_kernels.testing import assert_close

HERE = [pytest.param(b, id=b) for b in ("reference", "cpu") if b in BACKENDS]
FAST = settings(max_examples=50, deadline=None)
FLOATS = (torch.float32, torch.float64, torch.float16, torch.bfloat16)

# Valid inputs in another memory layout, and the ways to spoil a tensor argument.
LAYOUTS = ("transposed", "strided", "expanded")
SPOILS = (
    "wrong-dtype",
    "other-float",
    "rank-down",
    "rank-up",
    "rows-0",
    "cols-0",
    "nan",
    "inf",
    "meta",
    "sparse",
    "list",
    "none",
)
NOT_NUMBERS = ("a string", None, True, [0.2], complex(0.2, 0.0))
TEMPERATURE_BAD = (0.0, -0.2, math.nan, math.inf, 1e-40)  # 1 / 1e-40 overflows float32, not float64


# ----------------------------------------------------------------------------------------------------------------
# drawing, spoiling and judging
# ----------------------------------------------------------------------------------------------------------------
def _rearranged(t: torch.Tensor, how: str) -> torch.Tensor:
    """The same values in another layout: transposed storage, every other element of a wider tensor, or a stride-0
    expansion (where every row is the first; otherwise strided)."""
    if how == "transposed" and t.dim() >= 2:
        return t.transpose(-1, -2).contiguous().transpose(-1, -2)
    if how == "expanded" and t.dim() >= 2 and t.shape[0] >= 1 and bool((t == t[:1]).all()):
        return t[:1].expand(t.shape)
    wide = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype)
    wide[..., ::2] = t
    return wide[..., ::2]


def _spoilt(t: torch.Tensor, how: str, accepted: tuple[torch.dtype, ...]) -> object:
    """``t`` spoilt as ``how`` (one of SPOILS) says."""
    if how == "wrong-dtype":
        return t.to(torch.complex64 if accepted == FLOATS else torch.float32)
    if how == "other-float":
        return t.to(torch.float32 if t.dtype == torch.float64 else torch.float64)
    if how == "rank-down":
        return t.flatten(0, 1) if t.dim() >= 2 else t.sum()
    if how == "rank-up":
        return t[None]
    if how == "rows-0":
        return t[:0]
    if how == "cols-0":
        return t[..., :0]
    if how in ("nan", "inf"):
        t = t.clone()
        t.view(-1)[t.numel() // 2] = float(how)
        return t
    if how == "meta":
        return t.to("meta")
    if how == "sparse":
        return t.to_sparse()
    if how == "list":
        return t.tolist()
    return None


def _tensor_arg(data, name: str, t: torch.Tensor, *, accepted=FLOATS, valid=()) -> tuple[object, str | None]:
    """(value, bad): ``t`` as it is, in another layout, or spoilt; ``bad`` is ``name`` when the call must raise
    (spoils listed in ``valid`` are fine for this argument)."""
    spoils = [s for s in SPOILS if not (s in ("nan", "inf") and (not t.is_floating_point() or t.numel() == 0))]
    how = data.draw(st.sampled_from(("as-is", *LAYOUTS, *spoils)), label=f"{name} spoilt as")
    if how == "as-is":
        return t, None
    if how in LAYOUTS:
        return _rearranged(t, how), None
    return _spoilt(t, how, accepted), (None if how in valid else name)


def _scalar_arg(data, name: str, good, bad_values) -> tuple[object, str | None]:
    value = data.draw(st.sampled_from((good, *bad_values, *NOT_NUMBERS)), label=name)
    ok = value is good or (type(value) in (int, float) and value == good)
    return value, (None if ok else name)


def _judge(call, bad: str | tuple[str, ...] | None, check) -> None:
    """Runs ``call``. A TypeError / ValueError must come from spoilt input and name the spoilt argument (any of
    ``bad`` when several checks may speak first); success must come from valid input, judged by ``check``. Any other
    exception propagates and fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SingularCovarianceWarning and the like are not the subject here
        try:
            result = call()
        except (TypeError, ValueError) as err:
            assert bad is not None, f"valid input raised {type(err).__name__}: {err}"
            names = (bad,) if isinstance(bad, str) else bad
            named = [n for n in names if re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", str(err))]
            assert named, f"the message does not name {' or '.join(names)}: {type(err).__name__}: {err}"
            return
    assert bad is None, f"spoilt {bad} was accepted and gave {result!r}"
    check(result)


def _finite(*tensors: torch.Tensor) -> None:
    for t in tensors:
        assert bool(torch.isfinite(t).all()), f"non-finite result {t}"


def _floats(data, shape, dtype=None, scale=1.0) -> torch.Tensor:
    dtype = dtype or data.draw(st.sampled_from(FLOATS), label="dtype")
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1), label="seed"))
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)


def _which(data, names: list[str]) -> str | None:
    """The argument this example spoils (None: all valid, in any layout)."""
    return data.draw(st.sampled_from([None, *names]), label="spoilt argument")


# ----------------------------------------------------------------------------------------------------------------
# row_cosine
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", HERE)
@FAST
@given(data=st.data())
def test_row_cosine(backend, data):
    m, d = data.draw(st.integers(1, 6), label="M"), data.draw(st.integers(1, 9), label="D")
    scale = data.draw(st.sampled_from((1e-3, 1.0, 1e3)), label="scale")
    x = _floats(data, (m, d), scale=scale)
    y = _floats(data, (m, d), dtype=x.dtype, scale=scale)
    args, bad = {"x": x, "y": y, "eps": 1e-8}, None
    which = _which(data, ["x", "y", "eps"])
    if which in ("x", "y"):
        args[which], bad = _tensor_arg(data, which, args[which])
    elif which == "eps":
        args["eps"], bad = _scalar_arg(data, "eps", 1e-8, (0.0, -1.0, math.nan, math.inf))

    def check(out):
        _finite(out)
        assert_close(out, row_cosine(x, y, backend=backend), name="another layout")

    _judge(lambda: row_cosine(args["x"], args["y"], eps=args["eps"], backend=backend), bad, check)


# ----------------------------------------------------------------------------------------------------------------
# invariance_scores and group_invariance
# ----------------------------------------------------------------------------------------------------------------
def _statistics(data, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A mean (D,) and an upper-triangular whitening matrix (D, D) near the identity, float32. The mean is half a
    normal draw, so a feature row drawn from the same seed is never exactly the mean (a zero whitened row, whose
    cosine is undefined and flips with any rounding)."""
    mean = 0.5 * _floats(data, (d,), dtype=torch.float32)
    return mean, torch.eye(d) + 0.1 * _floats(data, (d, d), dtype=torch.float32).triu()


@pytest.mark.parametrize("backend", HERE)
@FAST
@given(data=st.data())
def test_invariance_scores(backend, data):
    n, k, d = (data.draw(st.integers(1, 4), label=name) for name in ("n", "k", "D"))
    clean = _floats(data, (n, d))
    views = (clean[:, None, :].float() + 0.3 * _floats(data, (n, k, d), dtype=torch.float32)).to(clean.dtype)
    mean, whitening = _statistics(data, d)
    args = {"clean": clean, "views": views, "mean": mean, "whitening": whitening, "eps": 1e-8, "chunk_rows": None}
    bad = None
    which = _which(data, ["clean", "views", "mean", "whitening", "eps", "chunk_rows"])
    if which in ("clean", "views"):
        args[which], bad = _tensor_arg(data, which, args[which])
    elif which in ("mean", "whitening"):  # statistics of another float dtype are converted
        args[which], bad = _tensor_arg(data, which, args[which], valid=("other-float",))
    elif which == "eps":
        args["eps"], bad = _scalar_arg(data, "eps", 1e-8, (0.0, -1e-8, math.nan, math.inf))
    elif which == "chunk_rows":
        args["chunk_rows"], bad = _scalar_arg(data, "chunk_rows", 2, (0, -1, 1.5))
        bad = None if args["chunk_rows"] is None else bad  # None: the default chunking

    def check(out):
        _finite(out.cosine, out.distance)
        want = invariance_scores(clean, views, mean=mean, whitening=whitening, backend=backend)
        assert_close(out.cosine, want.cosine, atol=2e-2, rtol=2e-2, name="cosine")
        assert_close(out.distance, want.distance, atol=2e-2, rtol=2e-2, name="distance")

    _judge(
        lambda: invariance_scores(
            args["clean"],
            args["views"],
            mean=args["mean"],
            whitening=args["whitening"],
            eps=args["eps"],
            chunk_rows=args["chunk_rows"],
            backend=backend,
        ),
        bad,
        check,
    )


@pytest.mark.parametrize("backend", HERE)
@FAST
@given(data=st.data())
def test_invariance_scores_with_feature_stats(backend, data):
    d = data.draw(st.integers(1, 5), label="D")
    stats = FeatureStats.from_features(_floats(data, (4 * d + 8, d), dtype=torch.float64))
    clean = _floats(data, (3, d))
    args, bad = {"clean": clean, "views": clean[:, None, :].expand(3, 2, d)}, None  # identical views, stride 0
    which = _which(data, ["clean", "views"])
    if which is not None:
        args[which], bad = _tensor_arg(data, which, args[which])

    def check(out):
        _finite(out.cosine, out.distance)
        assert float((out.cosine - 1).abs().max()) <= 1e-2 and float(out.distance.abs().max()) <= 1e-2

    _judge(lambda: invariance_scores(args["clean"], args["views"], stats, backend=backend), bad, check)


GROUP_IDS = {  # how group_ids is spoilt: (value for ids (N,), must raise)
    "float": (lambda ids: ids.float(), True),
    "2-D": (lambda ids: ids[None], True),
    "short": (lambda ids: ids[:-1], True),
    "one per group": (lambda ids: torch.arange(ids.shape[0]), True),
    "meta": (lambda ids: ids.to("meta"), True),
    "sparse": (lambda ids: ids.to_sparse(), True),
    "int32": (lambda ids: ids.to(torch.int32), False),
    "strided": (lambda ids: _rearranged(ids, "strided"), False),
}


@pytest.mark.parametrize("backend", HERE)
@FAST
@given(data=st.data())
def test_group_invariance(backend, data):
    groups, d = data.draw(st.integers(1, 3), label="groups"), data.draw(st.integers(1, 6), label="D")
    ids = torch.arange(groups).repeat_interleave(2)  # (N,) groups of two
    features = _floats(data, (2 * groups, d))
    mean, whitening = _statistics(data, d)
    args = {"features": features, "group_ids": ids, "mean": mean, "whitening": whitening, "eps": 1e-8}
    bad = None
    which = _which(data, ["features", "group_ids", "mean", "whitening", "eps"])
    if which in ("features", "mean", "whitening"):  # any float dtype is fine for each: all are converted
        args[which], bad = _tensor_arg(data, which, args[which], valid=("other-float",))
    elif which == "group_ids":
        spoil, raises = GROUP_IDS[data.draw(st.sampled_from(sorted(GROUP_IDS)), label="group_ids spoilt as")]
        args["group_ids"], bad = spoil(ids), ("group_ids" if raises else None)
    elif which == "eps":
        args["eps"], bad = _scalar_arg(data, "eps", 1e-8, (0.0, -1.0, math.nan))

    def check(out):
        _finite(out.cosine_with_diagonal, out.cosine_off_diagonal, out.distance)
        want = group_invariance(features, ids, mean=mean, whitening=whitening, backend=backend)
        assert_close(out.distance, want.distance, atol=2e-2, rtol=2e-2, name="distance")
        assert_close(out.cosine_off_diagonal, want.cosine_off_diagonal, atol=2e-2, rtol=2e-2, name="cosine")

    _judge(
        lambda: group_invariance(
            args["features"],
            args["group_ids"],
            mean=args["mean"],
            whitening=args["whitening"],
            eps=args["eps"],
            backend=backend,
        ),
        bad,
        check,
    )


# ----------------------------------------------------------------------------------------------------------------
# contrastive losses, their modules and the key queue
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", HERE)
@FAST
@given(data=st.data())
def test_infonce_loss(backend, data):
    n, kq, d = (data.draw(st.integers(low, 6), label=name) for name, low in (("N", 1), ("K", 0), ("D", 1)))
    q = _floats(data, (n, d))
    k, queue = _floats(data, (n, d), dtype=q.dtype), _floats(data, (kq, d), dtype=q.dtype)
    normalize = data.draw(st.booleans(), label="normalize")
    args, bad = {"q": q, "k": k, "queue": queue, "temperature": 0.2, "reduction": "none"}, None
    which = _which(data, ["q", "k", "queue", "temperature", "reduction"])
    if which in ("q", "k"):
        args[which], bad = _tensor_arg(data, which, args[which])
    elif which == "queue":  # no queue, no rows, or another float dtype (it is cast to q's) are all fine
        args["queue"], bad = _tensor_arg(data, "queue", queue, valid=("none", "rows-0", "other-float"))
    elif which == "temperature":
        args["temperature"], bad = _scalar_arg(data, "temperature", 0.2, TEMPERATURE_BAD)
        bad = None if args["temperature"] == 1e-40 and q.dtype == torch.float64 else bad
    elif which == "reduction":
        args["reduction"], bad = _scalar_arg(data, "reduction", "none", ("max", "MEAN", 3))

    def check(out):
        _finite(out)
        given_queue = args["queue"]
        want = infonce_loss(
            q,
            k,
            None if given_queue is None else given_queue.contiguous(),
            args["temperature"],
            normalize=normalize,
            reduction="none",
            backend=backend,
        )
        assert_close(out, want, atol=1e-2, rtol=1e-2, name="another layout")

    _judge(
        lambda: infonce_loss(
            args["q"],
            args["k"],
            args["queue"],
            args["temperature"],
            normalize=normalize,
            reduction=args["reduction"],
            backend=backend,
        ),
        bad,
        check,
    )


@pytest.mark.parametrize("backend", HERE)
@FAST
@given(data=st.data())
def test_ntxent_loss(backend, data):
    n, d = data.draw(st.integers(1, 5), label="N"), data.draw(st.integers(1, 8), label="D")
    z1 = _floats(data, (n, d))
    z2 = _floats(data, (n, d), dtype=z1.dtype)
    normalize = data.draw(st.booleans(), label="normalize")
    args, bad = {"z1": z1, "z2": z2, "temperature": 0.5}, None
    which = _which(data, ["z1", "z2", "temperature"])
    if which in ("z1", "z2"):
        args[which], bad = _tensor_arg(data, which, args[which])
    elif which == "temperature":
        args["temperature"], bad = _scalar_arg(data, "temperature", 0.5, TEMPERATURE_BAD)
        bad = None if args["temperature"] == 1e-40 and z1.dtype == torch.float64 else bad

    def check(out):
        _finite(out)
        want = ntxent_loss(z1, z2, args["temperature"], normalize=normalize, reduction="none", backend=backend)
        assert_close(out, want, atol=1e-2, rtol=1e-2, name="another layout")

    _judge(
        lambda: ntxent_loss(
            args["z1"], args["z2"], args["temperature"], normalize=normalize, reduction="none", backend=backend
        ),
        bad,
        check,
    )


@FAST
@given(data=st.data())
def test_loss_modules_and_key_queue(data):
    module = data.draw(st.sampled_from((InfoNCELoss, NTXentLoss)), label="module")
    temperature, bad = _scalar_arg(data, "temperature", 0.2, TEMPERATURE_BAD[:4])
    _judge(lambda: module(temperature), bad, lambda _: None)
    queue = KeyQueue(5, 4)
    keys, bad = _tensor_arg(data, "keys", _floats(data, (3, 4)), valid=("other-float", "rows-0"))
    _judge(lambda: queue.enqueue(keys), bad, lambda _: _finite(queue.tensor))


# ----------------------------------------------------------------------------------------------------------------
# fused_augment
# ----------------------------------------------------------------------------------------------------------------
VIEW_PARAM_SPOILS = {  # field: bad values where the op is applied
    "brightness": (math.nan, -0.5, math.inf),
    "contrast": (math.nan, -1.0),
    "saturation": (math.inf, -2.0),
    "hue": (0.75, -0.6, math.nan),
    "blur_sigma": (0.0, -1.0, math.nan, math.inf),
}
CHANNEL_SPOILS = ("nan", "inf", "zero", "tiny", "short", "string", "tensor")


def _spoilt_params(data, params, b: int, w: int):
    field = data.draw(st.sampled_from((*VIEW_PARAM_SPOILS, "jitter_order", "crop_left", "a dict")), label="params")
    if field == "a dict":
        return params.as_dict()
    if field == "jitter_order":
        return dataclasses.replace(params, jitter_order=torch.zeros(b, 4, dtype=torch.int64))
    if field == "crop_left":
        return dataclasses.replace(params, crop_left=params.crop_left + w)
    value = data.draw(st.sampled_from(VIEW_PARAM_SPOILS[field]), label=field)
    flag = "blur_applied" if field == "blur_sigma" else "jitter_applied"
    return dataclasses.replace(params, **{field: torch.full((b,), value), flag: torch.ones(b, dtype=torch.bool)})


def _spoilt_channels(data, name: str, good: tuple[float, float, float]) -> tuple[object, str | None]:
    how = data.draw(st.sampled_from(CHANNEL_SPOILS), label=name)
    values = list(good)
    values[data.draw(st.integers(0, 2), label="channel")] = {
        "nan": math.nan,
        "inf": math.inf,
        "zero": 0.0,
        "tiny": 1e-30,
    }.get(how, 0.5)
    value = {"short": good[:2], "string": "0.5", "tensor": torch.tensor(good)}.get(how, tuple(values))
    fine = how == "tensor" or (name == "mean" and how in ("zero", "tiny"))
    return value, (None if fine else name)


@pytest.mark.parametrize("backend", HERE)
@FAST
@given(data=st.data())
def test_fused_augment(backend, data):
    b, h, w = (
        data.draw(st.integers(low, high), label=name) for name, low, high in (("B", 1, 3), ("H", 1, 12), ("W", 1, 12))
    )
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1), label="seed"))
    images = torch.randint(0, 256, (b, 3, h, w), dtype=torch.uint8, generator=gen)
    params = sample_augment_params("default", torch.tensor([[h, w]] * b), generator=gen)
    args = {
        "images": images,
        "params": params,
        "out_size": 5,
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "out_dtype": torch.float32,
        "blur_kernel": "from_sigma",
        "sizes": None,
    }
    bad = None
    which = _which(data, ["images", "params", "out_size", "mean", "std", "out_dtype", "blur_kernel", "sizes"])
    if which == "images":
        args["images"], bad = _tensor_arg(data, "images", images, accepted=(torch.uint8,))
    elif which == "params":
        args["params"], bad = _spoilt_params(data, params, b, w), "params"
    elif which == "out_size":
        args["out_size"], bad = _scalar_arg(data, "out_size", 5, (0, -3, 2.5, 10**7))
    elif which in ("mean", "std"):
        args[which], bad = _spoilt_channels(data, which, args[which])
    elif which == "out_dtype":
        args["out_dtype"], bad = _scalar_arg(data, "out_dtype", torch.float16, (torch.float64, torch.int32, "f"))
    elif which == "blur_kernel":
        args["blur_kernel"], bad = _scalar_arg(data, "blur_kernel", 23, (4, 0, -1, 2.5, "wide"))
    elif which == "sizes":
        full = torch.tensor([[h, w]] * b)
        spoils = {"zero": full * 0, "too big": full + 1, "float": full.float(), "(B, 1)": full[:, :1]}
        how = data.draw(st.sampled_from(("int32", *spoils)), label="sizes spoilt as")
        args["sizes"], bad = (full.to(torch.int32), None) if how == "int32" else (spoils[how], "sizes")

    def check(out):
        _finite(out)
        assert out.shape == (b, 3, args["out_size"], args["out_size"]) and out.dtype == args["out_dtype"]
        want = fused_augment(
            images,
            params,
            args["out_size"],
            args["mean"],
            args["std"],
            args["out_dtype"],
            args["blur_kernel"],
            backend=backend,
        )
        assert torch.equal(out, want), "another layout of the images changed the views"

    _judge(
        lambda: fused_augment(
            args["images"],
            args["params"],
            args["out_size"],
            args["mean"],
            args["std"],
            args["out_dtype"],
            args["blur_kernel"],
            sizes=args["sizes"],
            backend=backend,
        ),
        bad,
        check,
    )


# ----------------------------------------------------------------------------------------------------------------
# statistics: RunningMoments, FeatureStats and the whitening entry points
# ----------------------------------------------------------------------------------------------------------------
SHRINKAGES = (
    ("none", None),
    ("ledoit_wolf", None),
    (0.1, None),
    (-1.0, "shrinkage"),
    (math.nan, "shrinkage"),
    ("oas", "shrinkage"),
    (True, "shrinkage"),
)


@FAST
@given(data=st.data())
def test_statistics(data):
    d = data.draw(st.integers(1, 6), label="D")
    features = _floats(data, (3 * d + 6, d))
    stats = FeatureStats.from_features(features.double())
    entry = data.draw(st.sampled_from(("update", "from_features", "whiten", "mahalanobis", "whitening_matrix")))
    if entry == "whitening_matrix":
        dtype, bad = _scalar_arg(data, "dtype", torch.float32, (torch.int32, torch.float16, "float32"))
        _judge(lambda: stats.whitening_matrix(dtype=dtype), bad, _finite)
        return
    name = data.draw(st.sampled_from(("a", "b")), label="spoilt") if entry == "mahalanobis" else "features"
    x, bad = _tensor_arg(data, name, features, valid=("other-float",))  # any float dtype is fine
    if entry == "update":
        _judge(lambda: RunningMoments().update(x), bad, lambda m: _finite(m.covariance()))
    elif entry == "from_features":
        shrinkage, bad_shrinkage = data.draw(st.sampled_from(SHRINKAGES), label="shrinkage")
        bad = (bad, bad_shrinkage) if bad and bad_shrinkage else (bad or bad_shrinkage)

        def check(got):
            _finite(got.mean, got.chol)
            assert_close(got.mean, stats.mean, atol=1e-2, rtol=1e-2, name="another layout")

        _judge(lambda: FeatureStats.from_features(x, shrinkage), bad, check)
    elif entry == "whiten":
        dtype = data.draw(st.sampled_from((torch.float64, torch.float32, torch.float16)), label="dtype")
        bad = ("dtype", bad) if bad and dtype == torch.float16 else ("dtype" if dtype == torch.float16 else bad)

        def check(z):
            _finite(z)
            assert_close(z, stats.whiten(features, dtype=dtype), atol=1e-2, rtol=1e-2, name="another layout")

        _judge(lambda: stats.whiten(x, dtype=dtype), bad, check)
    else:
        a, b = (x, features) if name == "a" else (features, x)

        def check(distance):
            _finite(distance)
            assert float(distance.abs().max()) <= 1e-2, "a row's distance to itself"

        _judge(lambda: stats.mahalanobis(a, b), bad, check)


def test_every_spoil_spoils_and_every_layout_keeps_the_values():
    t = torch.randn(3, 4)
    for how in SPOILS:
        value = _spoilt(t, how, FLOATS)
        changed = not isinstance(value, torch.Tensor) or value.shape != t.shape or value.dtype != t.dtype
        changed = changed or value.is_meta or value.layout != torch.strided or not bool(torch.isfinite(value).all())
        assert changed, how
    ones = torch.ones(3, 4)
    for how in LAYOUTS:
        moved = _rearranged(ones, how)
        assert torch.equal(moved, ones) and not moved.is_contiguous(), how
