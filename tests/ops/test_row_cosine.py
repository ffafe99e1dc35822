"""row_cosine on every available backend: values and gradients against the torch reference and an independent
float64 numpy computation, awkward shapes and strides, zero rows, properties, registration and error paths."""

import numpy as np
import pytest
import torch
from _op_backends import ALL_BACKENDS, BACKENDS, COMPILED, DEVICE
from _op_backends import skip_unavailable as _skip_unavailable
from hypothesis import given, settings
from hypothesis import strategies as st

from inv_kernels.ops.row_cosine import BWD_OPS, EPS, FWD_OPS, row_cosine, row_cosine_ref
from inv_kernels.testing import assert_close, assert_within_torch_error, to_float64

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
SHAPES = [(1, 1), (1, 7), (5, 1), (3, 2), (13, 257), (37, 64), (2, 1031)]


def numpy_row_cosine(x: np.ndarray, y: np.ndarray, eps: float = EPS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Independent float64 oracle: the cosine and both gradients of sum(cos) (upstream gradient of ones)."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    dot = np.einsum("md,md->m", x, y)
    nx_raw, ny_raw = np.sqrt((x * x).sum(1)), np.sqrt((y * y).sum(1))
    nx, ny = np.maximum(nx_raw, eps), np.maximum(ny_raw, eps)
    cos = dot / (nx * ny)
    gx = y / (nx * ny)[:, None] - np.where(nx_raw > eps, cos / nx**2, 0.0)[:, None] * x
    gy = x / (nx * ny)[:, None] - np.where(ny_raw > eps, cos / ny**2, 0.0)[:, None] * y
    return cos, gx, gy


def _pair(shape, dtype, requires_grad=False):
    x = torch.randn(shape, device=DEVICE, dtype=torch.float64).to(dtype)
    y = (torch.randn(shape, device=DEVICE, dtype=torch.float64) + 0.3 * x.double()).to(dtype)  # correlated rows
    return x.requires_grad_(requires_grad), y.requires_grad_(requires_grad)


def _gradient_scale(x, y, g64) -> float:
    """The largest |g| / |row| over both inputs: the size of a gradient's terms."""
    nx = np.maximum(np.linalg.norm(to_float64(x), axis=1), EPS)
    ny = np.maximum(np.linalg.norm(to_float64(y), axis=1), EPS)
    return float(np.max(np.abs(g64[:, 0]) / np.minimum(nx, ny)))


def _check_against_oracles(backend, x, y, dtype):
    """Forward and both gradients of the backend against the torch reference and the float64 oracle."""
    out = row_cosine(x, y, backend=backend)
    assert out.dtype == dtype and out.shape == (x.shape[0],)
    grad_out = torch.randn_like(out, dtype=torch.float64).to(dtype)
    gx, gy = torch.autograd.grad(out, (x, y), grad_out)
    cos64, gx64, gy64 = numpy_row_cosine(to_float64(x), to_float64(y))
    g64 = to_float64(grad_out)[:, None]
    d = x.shape[1]
    if dtype in (torch.float32, torch.float64):
        assert_close(out, cos64, reduction_size=d, name=f"{backend} cos vs float64")
        assert_close(out, row_cosine_ref(x.detach(), y.detach()), reduction_size=d, name=f"{backend} cos vs ref")
        # The terms of a gradient are O(|g| / |x|) even where they cancel; tolerate relative to that scale.
        scale = _gradient_scale(x, y, g64)
        atol = 1e-5 * scale if dtype == torch.float32 else 1e-10 * scale
        assert_close(gx, gx64 * g64, atol=atol, reduction_size=d, name=f"{backend} grad x")
        assert_close(gy, gy64 * g64, atol=atol, reduction_size=d, name=f"{backend} grad y")
    else:
        # Low precision: within 2x the error plain PyTorch makes in the same dtype (flash-attention's rule).
        xt, yt = x.detach().clone().requires_grad_(), y.detach().clone().requires_grad_()
        torch_out = torch.nn.functional.cosine_similarity(xt, yt, dim=1, eps=EPS)
        tgx, tgy = torch.autograd.grad(torch_out, (xt, yt), grad_out)
        atol = 1e-2 if dtype == torch.float16 else 5e-2
        assert_within_torch_error(out, torch_out, cos64, atol=atol, name=f"{backend} cos {dtype}")
        scale = _gradient_scale(x, y, g64)
        assert_within_torch_error(gx, tgx, gx64 * g64, atol=atol * scale, name=f"{backend} grad x {dtype}")
        assert_within_torch_error(gy, tgy, gy64 * g64, atol=atol * scale, name=f"{backend} grad y {dtype}")


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_values_and_gradients(backend, dtype, shape):
    _skip_unavailable(backend)
    x, y = _pair(shape, dtype, requires_grad=True)
    _check_against_oracles(backend, x, y, dtype)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize(
    "layout", ["transposed", "row_slice", "column_slice", "broadcast_row"], ids=lambda s: s.replace("_", "-")
)
def test_non_contiguous_inputs(backend, layout):
    _skip_unavailable(backend)
    m, d = 9, 70
    if layout == "transposed":
        x = torch.randn(d, m, device=DEVICE).t()
        y = torch.randn(d, m, device=DEVICE).t()
    elif layout == "row_slice":
        x = torch.randn(2 * m, d, device=DEVICE)[::2]
        y = torch.randn(3 * m, d, device=DEVICE)[1::3]
    elif layout == "column_slice":
        x = torch.randn(m, d + 5, device=DEVICE)[:, 3 : 3 + d]
        y = torch.randn(m, 2 * d, device=DEVICE)[:, ::2]
    else:
        x = torch.randn(1, d, device=DEVICE).expand(m, d)
        y = torch.randn(m, d, device=DEVICE)
    assert not (x.is_contiguous() and y.is_contiguous())
    x.requires_grad_(True)
    y.requires_grad_(True)
    _check_against_oracles(backend, x, y, torch.float32)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_zero_rows_give_zero_and_finite_gradients(backend):
    _skip_unavailable(backend)
    x = torch.randn(4, 33, device=DEVICE)
    y = torch.randn(4, 33, device=DEVICE)
    x[1] = 0.0
    y[2] = 0.0
    x[3] = 0.0
    y[3] = 0.0
    x.requires_grad_(True)
    y.requires_grad_(True)
    out = row_cosine(x, y, backend=backend)
    assert torch.equal(out[1:].detach().cpu(), torch.zeros(3))
    gx, gy = torch.autograd.grad(out.sum(), (x, y))
    assert torch.isfinite(gx).all() and torch.isfinite(gy).all()
    # A clamped norm is a constant: d cos / dx at x = 0 is y / (eps |y|); both zero gives zero gradients.
    expected_gx1 = y[1].detach() / (EPS * y[1].detach().norm())
    assert_close(gx[1], expected_gx1, rtol=1e-5, atol=0.0, name="grad of a zero row")
    assert torch.equal(gx[3].cpu(), torch.zeros(33)) and torch.equal(gy[3].cpu(), torch.zeros(33))
    _, gx64, gy64 = numpy_row_cosine(to_float64(x), to_float64(y))
    assert_close(gx, gx64, rtol=1e-5, atol=1e-5 * float(np.abs(gx64).max()), name="grads with zero rows")
    assert_close(gy, gy64, rtol=1e-5, atol=1e-5 * float(np.abs(gy64).max()), name="grads with zero rows")


def test_reference_matches_torch_cosine_similarity():
    x, y = _pair((50, 129), torch.float64)
    x[3] = 0.0
    expected = torch.nn.functional.cosine_similarity(x, y, dim=1, eps=EPS)
    assert_close(row_cosine_ref(x, y), expected, name="ref vs torch.nn.functional.cosine_similarity")


@pytest.mark.parametrize("backend", [pytest.param(b, id=b) for b in COMPILED])
def test_gradcheck_float64(backend):
    x, y = _pair((4, 11), torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: row_cosine(a, b, backend=backend), (x, y))


@pytest.mark.parametrize("backend", [pytest.param(b, id=b) for b in COMPILED])
def test_opcheck(backend):
    for dtype in (torch.float32, torch.float64):
        x, y = _pair((6, 19), dtype, requires_grad=True)
        torch.library.opcheck(FWD_OPS[backend], (x, y, EPS))
        out, stats = FWD_OPS[backend](x.detach(), y.detach(), EPS)
        grad = torch.randn_like(out)
        torch.library.opcheck(BWD_OPS[backend], (grad, x.detach(), y.detach(), stats, EPS))


@pytest.mark.slow
def test_torch_compile_fullgraph():
    backend = "cuda" if "cuda" in BACKENDS else "cpu"
    if backend not in BACKENDS:
        pytest.skip("no compiled backend available")
    torch._dynamo.reset()

    def loss_fn(a, b):
        return (1.0 - row_cosine(a, b, backend=backend)).square().mean()

    compiled = torch.compile(loss_fn, fullgraph=True)
    x, y = _pair((16, 40), torch.float32, requires_grad=True)
    loss = compiled(x, y)
    gx, gy = torch.autograd.grad(loss, (x, y))
    x2, y2 = x.detach().clone().requires_grad_(), y.detach().clone().requires_grad_()
    eager = loss_fn(x2, y2)
    egx, egy = torch.autograd.grad(eager, (x2, y2))
    assert_close(loss, eager, name="compiled loss")
    assert_close(gx, egx, name="compiled grad x")
    assert_close(gy, egy, name="compiled grad y")


# ----------------------------------------------------------------------------------------------------------------
# properties
# ----------------------------------------------------------------------------------------------------------------
_rows = st.integers(1, 6)
_cols = st.integers(1, 40)


@settings(max_examples=25, deadline=None)
@given(m=_rows, d=_cols, scale_x=st.floats(1e-3, 1e3), scale_y=st.floats(1e-3, 1e3), seed=st.integers(0, 2**31 - 1))
def test_scale_invariance_symmetry_and_range(m, d, scale_x, scale_y, seed):
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    x = torch.randn(m, d, generator=gen, device=DEVICE, dtype=torch.float64)
    y = torch.randn(m, d, generator=gen, device=DEVICE, dtype=torch.float64)
    for backend in BACKENDS:
        base = row_cosine(x, y, backend=backend)
        assert_close(row_cosine(scale_x * x, scale_y * y, backend=backend), base, atol=1e-12, rtol=1e-10)
        assert_close(row_cosine(y, x, backend=backend), base, atol=1e-12, rtol=1e-12)
        assert bool(((base >= -1 - 1e-12) & (base <= 1 + 1e-12)).all())
        assert_close(row_cosine(x, x, backend=backend), torch.ones(m, dtype=torch.float64), atol=1e-12, rtol=0)


# ----------------------------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "x, y, error, message",
    [
        (torch.randn(3), torch.randn(3), ValueError, r"x must be 2-D \(M, D\), got a 1-D tensor of shape \(3,\)"),
        (torch.randn(2, 3, 4), torch.randn(2, 3, 4), ValueError, r"x must be 2-D .* got a 3-D tensor"),
        (torch.randn(3, 4), torch.randn(3, 5), ValueError, r"y must have the shape of x \(3, 4\), got \(3, 5\)"),
        (torch.randn(3, 4), torch.randn(4, 4), ValueError, r"y must have the shape of x"),
        (
            torch.ones(3, 4, dtype=torch.int64),
            torch.ones(3, 4),
            TypeError,
            r"x must have a dtype in .* got torch.int64",
        ),
        (torch.randn(3, 4), torch.randn(3, 4).double(), TypeError, r"y must have the dtype of x \(torch.float32\)"),
        (torch.randn(0, 4), torch.randn(0, 4), ValueError, r"x must not be empty, got shape \(0, 4\)"),
        (torch.randn(3, 0), torch.randn(3, 0), ValueError, r"x must not be empty"),
        ([[1.0]], torch.randn(1, 1), TypeError, r"x must be a torch.Tensor, got list"),
    ],
    ids=["1d", "3d", "cols", "rows", "int", "mixed-dtype", "no-rows", "no-cols", "list"],
)
def test_bad_input(x, y, error, message):
    with pytest.raises(error, match=message):
        row_cosine(x, y)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_input_is_rejected(value):
    x = torch.randn(4, 6)
    x[2, 5] = value
    with pytest.raises(
        ValueError, match=r"row_cosine: x contains NaN or Inf \(1 of 24 elements; first at index \(2, 5\)\)"
    ):
        row_cosine(x, torch.randn(4, 6))
    with pytest.raises(ValueError, match=r"y contains NaN or Inf"):
        row_cosine(torch.randn(4, 6), x)


def test_non_finite_check_can_be_skipped_and_nan_propagates():
    x = torch.randn(3, 5)
    x[1, 0] = float("nan")
    out = row_cosine(x, torch.randn(3, 5), check_finite_inputs=False)
    assert torch.isnan(out[1]) and torch.isfinite(out[[0, 2]]).all()


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_finite_values_whose_squares_overflow_are_rejected(backend):
    """Finite float32 rows of magnitude 1e20 made NaN cosines (their squared norms overflow); now a ValueError names
    the argument and the bound. Half rows near their own maximum are fine (squares accumulate in float32)."""
    _skip_unavailable(backend)
    x, y = torch.randn(4, 8, device=DEVICE), torch.randn(4, 8, device=DEVICE)
    with pytest.raises(
        ValueError,
        match=r"row_cosine: y holds values up to [\d.e+]+ in magnitude, above 6.52e\+18 "
        r"where a row's squared norm \(8 terms\) overflows torch.float32",
    ):
        row_cosine(x, y * 1e20, backend=backend)
    big = torch.full((3, 8), 6e4, device=DEVICE, dtype=torch.float16)
    assert_close(row_cosine(big, big, backend=backend).float(), torch.ones(3), atol=1e-3, rtol=0)


def test_sparse_and_meta_inputs_are_rejected():
    x = torch.randn(4, 6)
    with pytest.raises(TypeError, match=r"x must be a dense \(strided\) tensor, got layout torch.sparse_coo"):
        row_cosine(x.to_sparse(), x)
    with pytest.raises(ValueError, match=r"row_cosine: x is on the meta device, which holds no values"):
        row_cosine(x.to("meta"), x.to("meta"))
    with pytest.raises(ValueError, match=r"x is on the meta device"):
        row_cosine(x.to("meta"), x.to("meta"), check_finite_inputs=False)


@pytest.mark.parametrize("eps", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_eps(eps):
    with pytest.raises(ValueError, match=r"eps must be a finite number > 0"):
        row_cosine(torch.randn(2, 3), torch.randn(2, 3), eps=eps)


def test_unknown_backend():
    with pytest.raises(ValueError, match=r"unknown backend backend='magic'"):
        row_cosine(torch.randn(2, 3), torch.randn(2, 3), backend="magic")


@pytest.mark.gpu
def test_mixed_devices():
    with pytest.raises(ValueError, match=r"y must be on the device of x \(cpu\), got cuda:0"):
        row_cosine(torch.randn(2, 3), torch.randn(2, 3, device="cuda"))


def test_meta_device_shapes_through_fake_kernels():
    x = torch.empty(5, 8, device="meta")
    out, stats = FWD_OPS["cpu"](x, x, EPS) if "cpu" in FWD_OPS else (None, None)
    assert out.shape == (5,) and stats.shape == (5, 3) and stats.dtype == torch.float32
