"""Contrastive losses: MoCo's InfoNCE against a queue and SimCLR's NT-Xent, fused without materialising the logits.

MoCo v2 (``infonce_loss``): rows q (N, D), candidates of row i are its positive k_i and the K queue rows:

    s_ij = q_i . c_j / T,   loss_i = lse_i - s_i+,   lse_i = log(exp(s_i+) + sum_j exp(q_i . queue_j / T))

SimCLR (``ntxent_loss``): z = [z1; z2] (2N, D); row i's candidates are every other row, its positive row
(i + N) mod 2N; the loss is the mean over all 2N rows.

The kernels build the loss the way flash attention builds attention: the candidates stream through in tiles, each
row keeps an online log-sum-exp in fp32 (log2 units: exp2 with log2(e) folded into 1/T), the forward saves only
lse (M,), and the backward recomputes the logits tile by tile:

    p_ij = exp(s_ij - lse_i)
    MoCo:    dq_i = (g_i / T) (sum_j p_ij c_j - k_i)           (c over the positive and the queue)
             dk_i = (g_i / T) (p_i+ - 1) q_i                     (the queue is detached: no gradient)
    NT-Xent: dz_m = (1 / T) (sum_{j != m} (g_m p_mj + g_j p_jm) z_j - (g_m + g_pos(m)) z_pos(m))

(the row and column terms in one pass: s is symmetric, so p_jm = exp(s_mj - lse_j); deterministic, no atomics).
No N x K or 2N x 2N buffer exists in any compiled backend: extra memory is O(N + K) plus per-thread (CPU) or
per-program (GPU) tiles.

Top-1 accuracy: a row is correct when its positive logit is >= every other candidate's (ties count as correct), in
every backend and in the references.

Rows of zeros: without ``normalize`` a zero row has all logits 0, so its loss is log(number of candidates)
(log(1 + K) for MoCo, log(2N - 1) for NT-Xent). With ``normalize=True`` rows are L2-normalised by
``F.normalize`` (eps 1e-12), which maps a zero row to zero: the same finite loss, and a finite (zero-row) gradient.
Never NaN.

Precision: float32 inputs are multiplied in IEEE float32 under torch's default matmul precision ("highest"); under
``torch.set_float32_matmul_precision("high")`` the Triton kernels multiply in TF32 on tensor cores (about 1e-3
relative error in the logits), as torch's own float32 matmuls then do. float16 / bfloat16 products are exact.

Backends: the torch references (materialised logits: the specification), the C++ CPU kernel (``_C.cpu``: register-
tiled AVX2/AVX-512 products, OpenMP over row blocks), the Triton kernels of ``_infonce_triton`` (the GPU path:
tensor-core tiles, split-K over long queues) and a simple CUDA kernel (``_C.cuda``: one warp per row, shared-memory
candidate tiles; correct by construction but untuned), registered as
``inv_kernels::{infonce,ntxent}_{fwd,bwd}_<backend>``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from inv_kernels import _ext
from inv_kernels._validate import (
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
from inv_kernels.ops._infonce_triton import (
    infonce_bwd_triton,
    infonce_fwd_triton,
    ntxent_bwd_triton,
    ntxent_fwd_triton,
    triton_row_fits,
)
from inv_kernels.ops._library import accumulation_dtype, register_backends

OP_INFONCE = "infonce_loss"
OP_NTXENT = "ntxent_loss"
REDUCTIONS = ("mean", "sum", "none")


# ----------------------------------------------------------------------------------------------------------------
# torch references (materialised logits)
# ----------------------------------------------------------------------------------------------------------------
def infonce_loss_ref(
    q: Tensor, k: Tensor, queue: Tensor | None, temperature: float, *, reduction: str = "mean"
) -> tuple[Tensor, Tensor]:
    """MoCo v2 InfoNCE, torch reference (the specification, materialised logits): positives q_i . k_i, negatives
    q_i . queue_j, all divided by the temperature.

    Args:
        q: (N, D) queries (L2-normalised by the caller, as MoCo does).
        k: (N, D) positive keys.
        queue: (K, D) negative keys (detached, cast to q's dtype), or None for no negatives beyond the positive.
        temperature: > 0.
        reduction: "mean" (default), "sum" or "none" (per-row losses, (N,)).

    Returns:
        (loss, accuracy) in the accumulation dtype (float32; float64 for float64 inputs): the cross-entropy with the
        positive at index 0, 0-dim (or (N,) for reduction="none"); and the top-1 accuracy (module docstring), 0-dim,
        without gradient.
    """
    queue = q.new_empty((0, q.shape[1])) if queue is None else queue.detach().to(q.dtype)  # (K, D)
    return _reduce(*_infonce_rows(q, k, queue, temperature), reduction, return_accuracy=True)


def _infonce_rows(q: Tensor, k: Tensor, queue: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """(loss, correct), each (N,) in the accumulation dtype; queue (K, D) of q's dtype, K may be 0."""
    acc = accumulation_dtype(q.dtype)
    positives = (q * k).sum(dim=1, keepdim=True)  # (N, 1)
    logits = (torch.cat([positives, q @ queue.detach().t()], dim=1) / temperature).to(acc)  # (N, 1 + K)
    rows = torch.logsumexp(logits, dim=1) - logits[:, 0]  # (N,)
    correct = (logits.detach()[:, 0] >= logits.detach().amax(dim=1)).to(acc)  # (N,)
    return rows, correct


def ntxent_loss_ref(z1: Tensor, z2: Tensor, temperature: float, *, reduction: str = "mean") -> tuple[Tensor, Tensor]:
    """SimCLR NT-Xent, torch reference: 2N x 2N logits with self-pairs masked; row i's positive is its other view.

    Args:
        z1: (N, D) first views' embeddings (L2-normalised by the caller).
        z2: (N, D) second views' embeddings.
        temperature: > 0.
        reduction: "mean" over the 2N rows (default), "sum" or "none" (per-row losses, (2N,): z1's rows then z2's).

    Returns:
        (loss, accuracy) as infonce_loss_ref, over all 2N rows.
    """
    return _reduce(*_ntxent_rows(z1, z2, temperature), reduction, return_accuracy=True)


def _ntxent_rows(z1: Tensor, z2: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """(loss, correct), each (2N,) in the accumulation dtype."""
    n = z1.shape[0]
    acc = accumulation_dtype(z1.dtype)
    z = torch.cat([z1, z2], dim=0)  # (2N, D)
    logits = ((z @ z.t()) / temperature).to(acc)  # (2N, 2N)
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)  # (2N,)
    positive = logits.gather(1, targets[:, None])[:, 0]  # (2N,)
    rows = torch.logsumexp(logits, dim=1) - positive
    correct = (positive.detach() >= logits.detach().amax(dim=1)).to(acc)  # (2N,)
    return rows, correct


# ----------------------------------------------------------------------------------------------------------------
# Launchers. MoCo: (q, k, queue, loss, lse, correct, inv_t) and (grad, q, k, queue, lse, gq, gk, inv_t);
# NT-Xent: (z, loss, lse, correct, inv_t) and (grad, z, lse, gz, inv_t). Tensors contiguous; grad in the
# accumulation dtype.
# ----------------------------------------------------------------------------------------------------------------
def _infonce_fwd_cpu(q, k, queue, loss, lse, correct, inv_t: float) -> None:
    m, d = q.shape
    _ext.C.cpu.infonce_fwd(
        q.data_ptr(),
        k.data_ptr(),
        queue.data_ptr() if queue.numel() else 0,
        loss.data_ptr(),
        lse.data_ptr(),
        correct.data_ptr(),
        m,
        queue.shape[0],
        d,
        _ext.dtype_code(q.dtype),
        inv_t,
    )


def _infonce_bwd_cpu(grad, q, k, queue, lse, gq, gk, inv_t: float) -> None:
    m, d = q.shape
    _ext.C.cpu.infonce_bwd(
        grad.data_ptr(),
        q.data_ptr(),
        k.data_ptr(),
        queue.data_ptr() if queue.numel() else 0,
        lse.data_ptr(),
        gq.data_ptr(),
        gk.data_ptr(),
        m,
        queue.shape[0],
        d,
        _ext.dtype_code(q.dtype),
        inv_t,
    )


def _ntxent_fwd_cpu(z, loss, lse, correct, inv_t: float) -> None:
    m, d = z.shape
    _ext.C.cpu.ntxent_fwd(
        z.data_ptr(), loss.data_ptr(), lse.data_ptr(), correct.data_ptr(), m, d, _ext.dtype_code(z.dtype), inv_t
    )


def _ntxent_bwd_cpu(grad, z, lse, gz, inv_t: float) -> None:
    m, d = z.shape
    _ext.C.cpu.ntxent_bwd(
        grad.data_ptr(), z.data_ptr(), lse.data_ptr(), gz.data_ptr(), m, d, _ext.dtype_code(z.dtype), inv_t
    )


def _infonce_fwd_cuda(q, k, queue, loss, lse, correct, inv_t: float) -> None:
    m, d = q.shape
    _ext.C.cuda.infonce_fwd(
        q.data_ptr(),
        k.data_ptr(),
        queue.data_ptr() if queue.numel() else 0,
        loss.data_ptr(),
        lse.data_ptr(),
        correct.data_ptr(),
        m,
        queue.shape[0],
        d,
        _ext.dtype_code(q.dtype),
        inv_t,
        q.device.index,
        _ext.cuda_stream_handle(q.device),
    )


def _infonce_bwd_cuda(grad, q, k, queue, lse, gq, gk, inv_t: float) -> None:
    m, d = q.shape
    _ext.C.cuda.infonce_bwd(
        grad.data_ptr(),
        q.data_ptr(),
        k.data_ptr(),
        queue.data_ptr() if queue.numel() else 0,
        lse.data_ptr(),
        gq.data_ptr(),
        gk.data_ptr(),
        m,
        queue.shape[0],
        d,
        _ext.dtype_code(q.dtype),
        inv_t,
        q.device.index,
        _ext.cuda_stream_handle(q.device),
    )


def _ntxent_fwd_cuda(z, loss, lse, correct, inv_t: float) -> None:
    m, d = z.shape
    _ext.C.cuda.ntxent_fwd(
        z.data_ptr(),
        loss.data_ptr(),
        lse.data_ptr(),
        correct.data_ptr(),
        m,
        d,
        _ext.dtype_code(z.dtype),
        inv_t,
        z.device.index,
        _ext.cuda_stream_handle(z.device),
    )


def _ntxent_bwd_cuda(grad, z, lse, gz, inv_t: float) -> None:
    m, d = z.shape
    _ext.C.cuda.ntxent_bwd(
        grad.data_ptr(),
        z.data_ptr(),
        lse.data_ptr(),
        gz.data_ptr(),
        m,
        d,
        _ext.dtype_code(z.dtype),
        inv_t,
        z.device.index,
        _ext.cuda_stream_handle(z.device),
    )


# ----------------------------------------------------------------------------------------------------------------
# torch.library registration: forward and backward custom ops per compiled backend, for each loss
# ----------------------------------------------------------------------------------------------------------------
_INFONCE_FWD_SCHEMA = "(Tensor q, Tensor k, Tensor queue, float temperature) -> (Tensor, Tensor, Tensor)"
_INFONCE_BWD_SCHEMA = (
    "(Tensor grad, Tensor q, Tensor k, Tensor queue, Tensor lse, float temperature) -> (Tensor, Tensor)"
)
_NTXENT_FWD_SCHEMA = "(Tensor z, float temperature) -> (Tensor, Tensor, Tensor)"
_NTXENT_BWD_SCHEMA = "(Tensor grad, Tensor z, Tensor lse, float temperature) -> Tensor"


def _new_rows(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(loss, lse, correct), each (M,) in the accumulation dtype."""
    acc = accumulation_dtype(x.dtype)
    return tuple(x.new_empty((x.shape[0],), dtype=acc) for _ in range(3))  # type: ignore[return-value]


def _infonce_fwd(launch: Callable, q: Tensor, k: Tensor, queue: Tensor, temperature: float):
    loss, lse, correct = _new_rows(q)
    launch(q, k, queue, loss, lse, correct, 1.0 / temperature)
    return loss, lse, correct


def _new_infonce_grads(q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
    gq = torch.empty(q.shape, dtype=q.dtype, device=q.device)  # (N, D)
    gk = torch.empty(k.shape, dtype=k.dtype, device=k.device)  # (N, D)
    return gq, gk


def _infonce_bwd(launch: Callable, grad, q, k, queue, lse, temperature: float) -> tuple[Tensor, Tensor]:
    gq, gk = _new_infonce_grads(q, k)
    launch(grad, q, k, queue, lse, gq, gk, 1.0 / temperature)
    return gq, gk


def _infonce_setup_context(ctx, inputs, output) -> None:
    q, k, queue, temperature = inputs
    _, lse, correct = output
    ctx.mark_non_differentiable(lse, correct)
    ctx.save_for_backward(q, k, queue, lse)
    ctx.temperature = temperature


def _infonce_backward(bwd_op, ctx, grad_loss, _grad_lse, _grad_correct):
    q, k, queue, lse = ctx.saved_tensors
    if grad_loss is None:
        return None, None, None, None
    grad = grad_loss.to(lse.dtype).contiguous()  # (N,); an expanded scalar from mean() becomes a vector
    gq, gk = bwd_op(grad, q, k, queue, lse, ctx.temperature)
    return (gq if ctx.needs_input_grad[0] else None), (gk if ctx.needs_input_grad[1] else None), None, None


def _ntxent_fwd(launch: Callable, z: Tensor, temperature: float) -> tuple[Tensor, Tensor, Tensor]:
    loss, lse, correct = _new_rows(z)
    launch(z, loss, lse, correct, 1.0 / temperature)
    return loss, lse, correct


def _ntxent_bwd(launch: Callable, grad: Tensor, z: Tensor, lse: Tensor, temperature: float) -> Tensor:
    gz = torch.empty(z.shape, dtype=z.dtype, device=z.device)  # (2N, D)
    launch(grad, z, lse, gz, 1.0 / temperature)
    return gz


def _ntxent_setup_context(ctx, inputs, output) -> None:
    z, temperature = inputs
    _, lse, correct = output
    ctx.mark_non_differentiable(lse, correct)
    ctx.save_for_backward(z, lse)
    ctx.temperature = temperature


def _ntxent_backward(bwd_op, ctx, grad_loss, _grad_lse, _grad_correct):
    z, lse = ctx.saved_tensors
    if grad_loss is None:
        return None, None
    grad = grad_loss.to(lse.dtype).contiguous()  # (2N,)
    return bwd_op(grad, z, lse, ctx.temperature), None


INFONCE_FWD_OPS, INFONCE_BWD_OPS = register_backends(
    "infonce",
    {
        "cpu": (_infonce_fwd_cpu, _infonce_bwd_cpu),
        "cuda": (_infonce_fwd_cuda, _infonce_bwd_cuda),
        "triton": (infonce_fwd_triton, infonce_bwd_triton),
    },
    fwd=_infonce_fwd,
    fwd_schema=_INFONCE_FWD_SCHEMA,
    fwd_fake=lambda q, k, queue, temperature: _new_rows(q),
    bwd=_infonce_bwd,
    bwd_schema=_INFONCE_BWD_SCHEMA,
    bwd_fake=lambda grad, q, k, queue, lse, temperature: _new_infonce_grads(q, k),
    setup_context=_infonce_setup_context,
    backward=_infonce_backward,
)
NTXENT_FWD_OPS, NTXENT_BWD_OPS = register_backends(
    "ntxent",
    {
        "cpu": (_ntxent_fwd_cpu, _ntxent_bwd_cpu),
        "cuda": (_ntxent_fwd_cuda, _ntxent_bwd_cuda),
        "triton": (ntxent_fwd_triton, ntxent_bwd_triton),
    },
    fwd=_ntxent_fwd,
    fwd_schema=_NTXENT_FWD_SCHEMA,
    fwd_fake=lambda z, temperature: _new_rows(z),
    bwd=_ntxent_bwd,
    bwd_schema=_NTXENT_BWD_SCHEMA,
    bwd_fake=lambda grad, z, lse, temperature: torch.empty_like(z),
    setup_context=_ntxent_setup_context,
    backward=_ntxent_backward,
)


# ----------------------------------------------------------------------------------------------------------------
# public functions
# ----------------------------------------------------------------------------------------------------------------
def _gpu_order(d: int, dtype: torch.dtype) -> tuple[str, ...]:
    """The automatic rule's order on CUDA tensors: triton first (the Triton kernels are the tuned GPU path, with
    tensor-core tiles and split-K for long queues; the CUDA kernel is a simple one-warp-per-row kernel), cuda alone
    for rows too long for the Triton tiles."""
    return ("triton", "cuda") if triton_row_fits(d, dtype) else ("cuda",)


def _check_temperature(op: str, temperature: float, dtype: torch.dtype) -> None:
    """A finite temperature > 0 whose reciprocal (the kernels' scale of the logits) is finite in the accumulation
    dtype of features of ``dtype`` (below about 2.9e-39 it is not in float32, and every logit would be inf)."""
    check_positive(op, "temperature", temperature)
    acc = accumulation_dtype(dtype)
    if not 1.0 / temperature <= torch.finfo(acc).max:
        raise ValueError(
            f"{op}: temperature must be at least {1.0 / torch.finfo(acc).max:.3g} (1 / temperature must be finite "
            f"in {acc}), got {temperature}"
        )


def _check_inputs_finite(op: str, normalize: bool, **tensors: Tensor) -> None:
    """No NaN/Inf; with ``normalize``, no row whose norm overflows (F.normalize would make it a zero row)."""
    bound, why = None, ""
    if normalize:
        first = next(iter(tensors.values()))
        d, dtype = first.shape[1], first.dtype
        bound = min(max_abs_for_squares(accumulation_dtype(dtype), d), torch.finfo(dtype).max / math.sqrt(d))
        why = f"a row's norm ({d} terms) overflows {dtype} and normalize=True would zero the row"
    for name, tensor in tensors.items():
        check_finite(op, name, tensor, max_abs=bound, why=why)


def _check_reduction(op: str, reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {', '.join(map(repr, REDUCTIONS))}, got {reduction!r}")


def _check_rows_finite(op: str, rows: Tensor, temperature: float) -> None:
    """Finite inputs whose logits (dot products / temperature) overflow give an inf or NaN loss: say so instead.
    Skipped while torch.compile traces, like check_finite."""
    if torch.compiler.is_compiling() or bool(torch.isfinite(rows.detach()).all()):
        return
    raise ValueError(
        f"{op}: the logits overflow {rows.dtype} (dot products / temperature beyond its range; temperature="
        f"{temperature}): use a larger temperature, normalize=True, or inputs of smaller norm"
    )


def _reduce(rows: Tensor, correct: Tensor, reduction: str, return_accuracy: bool):
    loss = rows.mean() if reduction == "mean" else rows.sum() if reduction == "sum" else rows
    if return_accuracy:
        return loss, correct.detach().mean()
    return loss


def infonce_loss(
    q: Tensor,
    k: Tensor,
    queue: Tensor | None = None,
    temperature: float = 0.2,
    *,
    normalize: bool = False,
    reduction: str = "mean",
    return_accuracy: bool = False,
    backend: str = "auto",
    check_finite_inputs: bool = True,
):
    """MoCo v2 InfoNCE loss, fused: positives q_i . k_i, negatives against a detached queue, no (N, K) logits.

    Args:
        q: (N, D) queries, float32, float64, float16 or bfloat16, N, D >= 1.
        k: (N, D) positive keys, q's dtype and device. Gets a gradient only if it requires one.
        queue: (K, D) negative keys (detached; cast to q's dtype), or None for none. K may be 0.
        temperature: > 0.
        normalize: L2-normalise q, k and the queue's rows first (F.normalize; autograd differentiates it).
            A zero row stays zero: its logits are 0 and its loss log(1 + K).
        reduction: "mean" (default), "sum" or "none" (per-row losses, (N,)).
        return_accuracy: also return the top-1 accuracy of the positive (ties count as correct), 0-dim, no grad.
        backend: "auto", "reference", "cpu", "triton" or "cuda" (see inv_kernels.backend; "auto" on a CUDA tensor
            prefers triton, see _gpu_order).
        check_finite_inputs: raise on NaN/Inf inputs (one extra read), and on a loss that overflows (logits beyond
            the accumulation dtype's range); both skipped under torch.compile.

    Returns:
        The loss (0-dim, or (N,) for reduction="none") in the accumulation dtype (float32; float64 for float64
        inputs), or (loss, accuracy) when return_accuracy.

    Raises:
        TypeError: a non-tensor, a non-floating dtype, or q and k of different dtypes.
        ValueError: not 2-D, mismatched shapes or D, an empty batch, tensors on different devices or on the meta
            device, temperature <= 0 (or so small that 1 / temperature overflows), an unknown reduction, NaN/Inf.
        RuntimeError: an explicitly requested backend that cannot run here.
    """
    op = OP_INFONCE
    check_tensor(op, "q", q, ndim=2, layout="(N, D)")
    check_tensor(op, "k", k, ndim=2, layout="(N, D)")
    check_same_dtype(op, q=q, k=k)
    check_same_shape(op, q=q, k=k)
    check_nonempty(op, "q", q)
    if queue is not None:
        check_tensor(op, "queue", queue, ndim=2, layout="(K, D)")
        if queue.shape[1] != q.shape[1]:
            raise ValueError(
                f"{op}: queue must have q's feature dimension D={q.shape[1]}, got shape {tuple(queue.shape)}"
            )
        device = check_same_device(op, q=q, k=k, queue=queue)
    else:
        device = check_same_device(op, q=q, k=k)
    _check_temperature(op, temperature, q.dtype)
    _check_reduction(op, reduction)
    if check_finite_inputs:
        _check_inputs_finite(op, normalize, q=q, k=k, **({} if queue is None else {"queue": queue}))
    chosen = resolve_backend(backend, device, op=op, gpu_order=_gpu_order(q.shape[1], q.dtype))
    queue = q.new_empty((0, q.shape[1])) if queue is None else queue.detach().to(q.dtype)  # (K, D)
    if normalize:
        q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
        queue = F.normalize(queue, dim=1) if queue.shape[0] else queue
    if chosen == "reference":
        rows, correct = _infonce_rows(q, k, queue, float(temperature))
    else:
        fused = INFONCE_FWD_OPS[chosen]
        rows, _, correct = fused(q.contiguous(), k.contiguous(), queue.contiguous(), float(temperature))
    if check_finite_inputs:
        _check_rows_finite(op, rows, temperature)
    return _reduce(rows, correct, reduction, return_accuracy)


def ntxent_loss(
    z1: Tensor,
    z2: Tensor,
    temperature: float = 0.2,
    *,
    normalize: bool = False,
    reduction: str = "mean",
    return_accuracy: bool = False,
    backend: str = "auto",
    check_finite_inputs: bool = True,
):
    """SimCLR NT-Xent loss, fused: z = [z1; z2], 2N x 2N logits with self-pairs masked, never materialised.

    Args:
        z1: (N, D) first views' embeddings, float32, float64, float16 or bfloat16, N, D >= 1.
        z2: (N, D) second views' embeddings, z1's dtype and device.
        temperature: > 0.
        normalize: L2-normalise the rows first (F.normalize; a zero row stays zero, its loss is log(2N - 1)).
        reduction: "mean" over the 2N rows (default), "sum" or "none" (per-row losses, (2N,): z1's rows then z2's).
        return_accuracy: also return the top-1 accuracy of the positive (ties count as correct), 0-dim, no grad.
        backend: "auto", "reference", "cpu", "triton" or "cuda" (see inv_kernels.backend; "auto" on a CUDA tensor
            prefers triton, see _gpu_order).
        check_finite_inputs: raise on NaN/Inf inputs (one extra read), and on a loss that overflows (logits beyond
            the accumulation dtype's range); both skipped under torch.compile.

    Returns:
        The loss (0-dim, or (2N,)) in the accumulation dtype, or (loss, accuracy) when return_accuracy.

    Raises:
        TypeError: a non-tensor, a non-floating dtype, or z1 and z2 of different dtypes.
        ValueError: not 2-D, mismatched shapes, an empty batch, different devices or the meta device,
            temperature <= 0 (or so small that 1 / temperature overflows), an unknown reduction, NaN/Inf.
        RuntimeError: an explicitly requested backend that cannot run here.
    """
    op = OP_NTXENT
    check_tensor(op, "z1", z1, ndim=2, layout="(N, D)")
    check_tensor(op, "z2", z2, ndim=2, layout="(N, D)")
    check_same_dtype(op, z1=z1, z2=z2)
    check_same_shape(op, z1=z1, z2=z2)
    check_nonempty(op, "z1", z1)
    device = check_same_device(op, z1=z1, z2=z2)
    _check_temperature(op, temperature, z1.dtype)
    _check_reduction(op, reduction)
    if check_finite_inputs:
        _check_inputs_finite(op, normalize, z1=z1, z2=z2)
    chosen = resolve_backend(backend, device, op=op, gpu_order=_gpu_order(z1.shape[1], z1.dtype))
    if normalize:
        z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    if chosen == "reference":
        rows, correct = _ntxent_rows(z1, z2, float(temperature))
    else:
        z = torch.cat([z1, z2], dim=0)  # (2N, D)
        rows, _, correct = NTXENT_FWD_OPS[chosen](z, float(temperature))
    if check_finite_inputs:
        _check_rows_finite(op, rows, temperature)
    return _reduce(rows, correct, reduction, return_accuracy)


__all__ = [
    "infonce_loss",
    "infonce_loss_ref",
    "ntxent_loss",
    "ntxent_loss_ref",
]
