"""row_cosine: cosine similarity of matching rows, the project's first op through every backend.

    out[i] = <x_i, y_i> / (max(|x_i|, eps) * max(|y_i|, eps)),     x, y: (M, D) -> out: (M,)

The norms are clamped separately at ``eps`` (1e-8, as torch.nn.functional.cosine_similarity), so a zero row gives
0, never NaN. Where a norm is clamped it is a constant, so the gradient is that of the linear map
<x, y> / (eps * |y|): for a zero x it is y / (eps * |y|), large but finite, as torch gives.

Backends: ``row_cosine_ref`` (torch, the specification), the C++ CPU kernel (``_C.cpu``), the Triton kernels below
and the CUDA kernel (``_C.cuda``), each registered as ``inv_kernels::row_cosine_{fwd,bwd}_<backend>``. The forward
also returns ``stats`` (M, 3): the cosine in the accumulation dtype and both norms before clamping, so the backward
is a single pass that reads x and y once and writes both gradients:

    gx = g * (y / (nx ny) - [|x| > eps] c x / nx^2),   gy = g * (x / (nx ny) - [|y| > eps] c y / ny^2)

with nx, ny the clamped norms and c the cosine.
"""

from collections.abc import Callable

import torch
from torch import Tensor

from inv_kernels import _ext
from inv_kernels._triton import tl, triton, triton_interpreting
from inv_kernels._validate import (
    as_tensor,
    check_finite,
    check_nonempty,
    check_positive,
    check_same_device,
    check_same_dtype,
    check_same_shape,
    check_tensor,
    max_abs_for_squares,
)
from inv_kernels.backend import resolve_backend
from inv_kernels.ops._library import accumulation_dtype, device_guard, register_backends, unit_column_stride

OP = "row_cosine"
EPS = 1e-8


def row_cosine_ref(x: Tensor, y: Tensor, eps: float = EPS) -> Tensor:
    """Torch reference (the specification). Half types are computed in float32.

    Args:
        x: (M, D) floating tensor.
        y: (M, D) tensor of x's dtype and device.
        eps: lower clamp of each row norm.

    Returns:
        (M,) tensor of x's dtype: the cosine of each pair of rows.
    """
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    xc, yc = x.to(compute), y.to(compute)
    nx = torch.linalg.vector_norm(xc, dim=1).clamp_min(eps)  # (M,)
    ny = torch.linalg.vector_norm(yc, dim=1).clamp_min(eps)  # (M,)
    return ((xc * yc).sum(dim=1) / (nx * ny)).to(x.dtype)  # (M,)


def _new_fwd_outputs(x: Tensor) -> tuple[Tensor, Tensor]:
    m = x.shape[0]
    out = x.new_empty((m,))  # (M,)
    stats = x.new_empty((m, 3), dtype=accumulation_dtype(x.dtype))  # (M, 3): cos, |x|, |y|
    return out, stats


# ----------------------------------------------------------------------------------------------------------------
# Triton kernels
# ----------------------------------------------------------------------------------------------------------------
if triton is not None:

    @triton.jit
    def _row_cosine_fwd_kernel(
        x_ptr,  # (M, D) input, unit column stride
        y_ptr,  # (M, D) input, unit column stride
        out_ptr,  # (M,) cosine, input dtype
        stats_ptr,  # (M, 3) cos, |x|, |y| in the accumulation dtype (float32, or float64 for float64 inputs)
        M,
        D,
        stride_x,  # row stride of x, elements
        stride_y,  # row stride of y, elements
        eps,  # lower clamp of the norms
        BLOCK_M: tl.constexpr,  # rows per program
        BLOCK_D: tl.constexpr,  # columns per step of the loop over D
    ):
        # One program reduces BLOCK_M rows: dot = sum x y, xx = sum x^2, yy = sum y^2 over D in BLOCK_D steps,
        # then c = dot / (max(sqrt(xx), eps) max(sqrt(yy), eps)).
        acc_dtype = stats_ptr.dtype.element_ty
        rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        row_mask = rows < M
        rows64 = rows.to(tl.int64)
        dot = tl.zeros([BLOCK_M], dtype=acc_dtype)
        xx = tl.zeros([BLOCK_M], dtype=acc_dtype)
        yy = tl.zeros([BLOCK_M], dtype=acc_dtype)
        for start in range(0, D, BLOCK_D):
            cols = start + tl.arange(0, BLOCK_D)
            mask = row_mask[:, None] & (cols[None, :] < D)
            a = tl.load(x_ptr + rows64[:, None] * stride_x + cols[None, :], mask=mask, other=0.0).to(acc_dtype)
            b = tl.load(y_ptr + rows64[:, None] * stride_y + cols[None, :], mask=mask, other=0.0).to(acc_dtype)
            dot += tl.sum(a * b, axis=1)
            xx += tl.sum(a * a, axis=1)
            yy += tl.sum(b * b, axis=1)
        nx = tl.sqrt(xx)
        ny = tl.sqrt(yy)
        c = dot / (tl.maximum(nx, eps) * tl.maximum(ny, eps))
        tl.store(out_ptr + rows64, c.to(out_ptr.dtype.element_ty), mask=row_mask)
        tl.store(stats_ptr + rows64 * 3, c, mask=row_mask)
        tl.store(stats_ptr + rows64 * 3 + 1, nx, mask=row_mask)
        tl.store(stats_ptr + rows64 * 3 + 2, ny, mask=row_mask)

    @triton.jit
    def _row_cosine_bwd_kernel(
        grad_ptr,  # (M,) upstream gradient, element stride stride_g (0 for an expanded scalar)
        x_ptr,  # (M, D) input, unit column stride
        y_ptr,  # (M, D) input, unit column stride
        stats_ptr,  # (M, 3) from the forward
        gx_ptr,  # (M, D) gradient of x, contiguous
        gy_ptr,  # (M, D) gradient of y, contiguous
        M,
        D,
        stride_g,
        stride_x,
        stride_y,
        eps,
        BLOCK_M: tl.constexpr,
        BLOCK_D: tl.constexpr,
    ):
        # gx = cross * y - self_x * x, gy = cross * x - self_y * y with cross = g / (nx ny) and
        # self_x = g c / nx^2 unless |x| was clamped (then the norm is a constant and the term vanishes).
        acc_dtype = stats_ptr.dtype.element_ty
        rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        row_mask = rows < M
        rows64 = rows.to(tl.int64)
        g = tl.load(grad_ptr + rows64 * stride_g, mask=row_mask, other=0.0).to(acc_dtype)
        c = tl.load(stats_ptr + rows64 * 3, mask=row_mask, other=0.0)
        nx = tl.load(stats_ptr + rows64 * 3 + 1, mask=row_mask, other=1.0)
        ny = tl.load(stats_ptr + rows64 * 3 + 2, mask=row_mask, other=1.0)
        nxc = tl.maximum(nx, eps)
        nyc = tl.maximum(ny, eps)
        cross = g / (nxc * nyc)
        self_x = tl.where(nx > eps, g * c / (nxc * nxc), 0.0)
        self_y = tl.where(ny > eps, g * c / (nyc * nyc), 0.0)
        for start in range(0, D, BLOCK_D):
            cols = start + tl.arange(0, BLOCK_D)
            mask = row_mask[:, None] & (cols[None, :] < D)
            a = tl.load(x_ptr + rows64[:, None] * stride_x + cols[None, :], mask=mask, other=0.0).to(acc_dtype)
            b = tl.load(y_ptr + rows64[:, None] * stride_y + cols[None, :], mask=mask, other=0.0).to(acc_dtype)
            gx = cross[:, None] * b - self_x[:, None] * a
            gy = cross[:, None] * a - self_y[:, None] * b
            offsets = rows64[:, None] * D + cols[None, :]
            tl.store(gx_ptr + offsets, gx.to(gx_ptr.dtype.element_ty), mask=mask)
            tl.store(gy_ptr + offsets, gy.to(gy_ptr.dtype.element_ty), mask=mask)


def _triton_blocks(m: int, d: int) -> tuple[int, int]:
    """(BLOCK_M, BLOCK_D): about 4096 elements per step on a GPU; 16384 in the interpreter, where programs are slow."""
    block_d = min(triton.next_power_of_2(d), 256)
    budget = 16384 if triton_interpreting() else 4096
    block_m = max(1, min(budget // block_d, triton.next_power_of_2(m)))
    return block_m, block_d


# ----------------------------------------------------------------------------------------------------------------
# Launchers: (x, y, out, stats, eps) for the forward, (grad, x, y, stats, gx, gy, eps) for the backward
# ----------------------------------------------------------------------------------------------------------------
def _row_cosine_fwd_cpu(x: Tensor, y: Tensor, out: Tensor, stats: Tensor, eps: float) -> None:
    m, d = x.shape
    _ext.C.cpu.row_cosine_fwd(
        x.data_ptr(),
        x.stride(0),
        y.data_ptr(),
        y.stride(0),
        out.data_ptr(),
        stats.data_ptr(),
        m,
        d,
        _ext.dtype_code(x.dtype),
        eps,
    )


def _row_cosine_bwd_cpu(grad, x, y, stats, gx, gy, eps: float) -> None:
    m, d = x.shape
    _ext.C.cpu.row_cosine_bwd(
        grad.data_ptr(),
        grad.stride(0),
        x.data_ptr(),
        x.stride(0),
        y.data_ptr(),
        y.stride(0),
        stats.data_ptr(),
        gx.data_ptr(),
        gy.data_ptr(),
        m,
        d,
        _ext.dtype_code(x.dtype),
        eps,
    )


def _row_cosine_fwd_cuda(x: Tensor, y: Tensor, out: Tensor, stats: Tensor, eps: float) -> None:
    m, d = x.shape
    _ext.C.cuda.row_cosine_fwd(
        x.data_ptr(),
        x.stride(0),
        y.data_ptr(),
        y.stride(0),
        out.data_ptr(),
        stats.data_ptr(),
        m,
        d,
        _ext.dtype_code(x.dtype),
        eps,
        x.device.index,
        _ext.cuda_stream_handle(x.device),
    )


def _row_cosine_bwd_cuda(grad, x, y, stats, gx, gy, eps: float) -> None:
    m, d = x.shape
    _ext.C.cuda.row_cosine_bwd(
        grad.data_ptr(),
        grad.stride(0),
        x.data_ptr(),
        x.stride(0),
        y.data_ptr(),
        y.stride(0),
        stats.data_ptr(),
        gx.data_ptr(),
        gy.data_ptr(),
        m,
        d,
        _ext.dtype_code(x.dtype),
        eps,
        x.device.index,
        _ext.cuda_stream_handle(x.device),
    )


def _row_cosine_fwd_triton(x: Tensor, y: Tensor, out: Tensor, stats: Tensor, eps: float) -> None:
    m, d = x.shape
    block_m, block_d = _triton_blocks(m, d)
    with device_guard(x):
        _row_cosine_fwd_kernel[(triton.cdiv(m, block_m),)](
            x, y, out, stats, m, d, x.stride(0), y.stride(0), eps, BLOCK_M=block_m, BLOCK_D=block_d
        )


def _row_cosine_bwd_triton(grad, x, y, stats, gx, gy, eps: float) -> None:
    m, d = x.shape
    block_m, block_d = _triton_blocks(m, d)
    with device_guard(x):
        _row_cosine_bwd_kernel[(triton.cdiv(m, block_m),)](
            grad,
            x,
            y,
            stats,
            gx,
            gy,
            m,
            d,
            grad.stride(0),
            x.stride(0),
            y.stride(0),
            eps,
            BLOCK_M=block_m,
            BLOCK_D=block_d,
        )


# ----------------------------------------------------------------------------------------------------------------
# torch.library registration: one forward and one backward custom op per compiled backend
# ----------------------------------------------------------------------------------------------------------------
_FWD_SCHEMA = "(Tensor x, Tensor y, float eps) -> (Tensor, Tensor)"
_BWD_SCHEMA = "(Tensor grad, Tensor x, Tensor y, Tensor stats, float eps) -> (Tensor, Tensor)"


def _fwd(launch: Callable, x: Tensor, y: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    out, stats = _new_fwd_outputs(x)
    launch(x, y, out, stats, eps)
    return out, stats


def _new_grads(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    gx = torch.empty(x.shape, dtype=x.dtype, device=x.device)  # (M, D), contiguous
    gy = torch.empty(y.shape, dtype=y.dtype, device=y.device)  # (M, D), contiguous
    return gx, gy


def _bwd(launch: Callable, grad: Tensor, x: Tensor, y: Tensor, stats: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    gx, gy = _new_grads(x, y)
    launch(grad, x, y, stats, gx, gy, eps)
    return gx, gy


def _setup_context(ctx, inputs, output) -> None:
    x, y, eps = inputs
    _, stats = output
    ctx.mark_non_differentiable(stats)
    ctx.save_for_backward(x, y, stats)
    ctx.eps = eps


def _backward(bwd_op, ctx, grad_out: Tensor | None, _grad_stats: Tensor | None):
    x, y, stats = ctx.saved_tensors
    if grad_out is None:
        return None, None, None
    gx, gy = bwd_op(grad_out, x, y, stats, ctx.eps)
    return (gx if ctx.needs_input_grad[0] else None), (gy if ctx.needs_input_grad[1] else None), None


FWD_OPS, BWD_OPS = register_backends(
    OP,
    {
        "cpu": (_row_cosine_fwd_cpu, _row_cosine_bwd_cpu),
        "cuda": (_row_cosine_fwd_cuda, _row_cosine_bwd_cuda),
        "triton": (_row_cosine_fwd_triton, _row_cosine_bwd_triton),
    },
    fwd=_fwd,
    fwd_schema=_FWD_SCHEMA,
    fwd_fake=lambda x, y, eps: _new_fwd_outputs(x),
    bwd=_bwd,
    bwd_schema=_BWD_SCHEMA,
    bwd_fake=lambda grad, x, y, stats, eps: _new_grads(x, y),
    setup_context=_setup_context,
    backward=_backward,
)


def row_cosine(
    x: Tensor, y: Tensor, *, eps: float = EPS, backend: str = "auto", check_finite_inputs: bool = True
) -> Tensor:
    """Cosine similarity of matching rows of x and y, with gradients to both.

    Args:
        x: (M, D) float32, float64, float16 or bfloat16 tensor or NumPy array, M, D >= 1; any strides.
        y: (M, D) tensor or array of x's dtype and device.
        eps: lower clamp of each row norm (> 0); a zero row gives a cosine of 0.
        backend: "auto", "reference", "cpu", "triton" or "cuda" (see inv_kernels.backend).
        check_finite_inputs: raise on NaN/Inf inputs, or values so large that a row's squared norm overflows (one
            extra read of x and y; skipped under torch.compile).

    Returns:
        (M,) tensor of x's dtype, in [-1, 1] up to rounding (a tensor for NumPy inputs too).

    Raises:
        TypeError: a non-tensor, a non-floating dtype, or x and y of different dtypes.
        ValueError: not 2-D, shapes that differ, an empty input, tensors on different devices or on the meta
            device, eps <= 0, NaN/Inf or values whose squares overflow.
        RuntimeError: an explicitly requested backend that cannot run here.
    """
    x, y = as_tensor(OP, "x", x), as_tensor(OP, "y", y)
    check_tensor(OP, "x", x, ndim=2, layout="(M, D)")
    check_tensor(OP, "y", y, ndim=2, layout="(M, D)")
    check_same_dtype(OP, x=x, y=y)
    check_same_shape(OP, x=x, y=y)
    check_nonempty(OP, "x", x)
    device = check_same_device(OP, x=x, y=y)
    check_positive(OP, "eps", eps)
    if check_finite_inputs:
        acc = accumulation_dtype(x.dtype)
        bound, why = max_abs_for_squares(acc, x.shape[1]), f"a row's squared norm ({x.shape[1]} terms) overflows {acc}"
        check_finite(OP, "x", x, max_abs=bound, why=why)
        check_finite(OP, "y", y, max_abs=bound, why=why)
    chosen = resolve_backend(backend, device, op=OP)
    if chosen == "reference":
        return row_cosine_ref(x, y, eps)
    out, _ = FWD_OPS[chosen](unit_column_stride(x), unit_column_stride(y), float(eps))
    return out
