"""What every op shares: the accumulation dtype, the stride and device helpers, and the torch.library registration.

Each op registers, per compiled backend (``cpu``, ``cuda``, ``triton``), a forward custom op
``inv_kernels::<op>_fwd_<backend>`` and, where it has gradients, a backward custom op
``inv_kernels::<op>_bwd_<backend>`` with the forward's autograd formula calling it. ``register_backends`` does that
for all backends at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import Tensor

# The device types of each backend's custom ops; None: any device (the Triton interpreter takes CPU tensors).
DEVICE_TYPES: dict[str, str | None] = {"cpu": "cpu", "cuda": "cuda", "triton": None}


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the kernels accumulate features of ``dtype`` in: float64 for float64, float32 otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def device_guard(t: Tensor) -> AbstractContextManager:
    """Makes ``t``'s GPU the current one while a kernel is launched on it (a no-op for CPU tensors)."""
    return torch.cuda.device(t.device) if t.is_cuda else nullcontext()


def unit_column_stride(t: Tensor) -> Tensor:
    """``t`` itself if its last dimension is contiguous (or of size 1), else a contiguous copy."""
    return t if t.stride(-1) == 1 or t.shape[-1] == 1 else t.contiguous()


def _custom_op(op: str, direction: str, backend: str, impl: Callable, schema: str, fake: Callable):
    custom = torch.library.custom_op(
        f"inv_kernels::{op}_{direction}_{backend}",
        impl,
        mutates_args=(),
        device_types=DEVICE_TYPES[backend],
        schema=schema,
    )
    custom.register_fake(fake)
    return custom


def _bound(run: Callable, launch: Callable) -> Callable:
    def impl(*args):
        return run(launch, *args)

    return impl


def register_backends(
    op: str,
    launchers: Mapping[str, tuple[Callable, ...]],
    *,
    fwd: Callable,
    fwd_schema: str,
    fwd_fake: Callable,
    bwd: Callable | None = None,
    bwd_schema: str | None = None,
    bwd_fake: Callable | None = None,
    setup_context: Callable | None = None,
    backward: Callable | None = None,
) -> tuple[dict, dict]:
    """Registers ``op``'s forward (and backward) custom ops for each backend of ``launchers``.

    Args:
        op: the op's name in ``inv_kernels::<op>_{fwd,bwd}_<backend>``.
        launchers: backend -> (forward launcher,) or (forward launcher, backward launcher).
        fwd: ``fwd(launch, *inputs)``: allocates the outputs, runs ``launch`` and returns them.
        fwd_schema: the forward's torch.library schema, such as ``"(Tensor x, float eps) -> Tensor"``.
        fwd_fake: ``fwd_fake(*inputs)``: empty outputs of the right shapes, dtypes and devices.
        bwd, bwd_schema, bwd_fake: the same for the backward (None for an op without gradients).
        setup_context: ``setup_context(ctx, inputs, output)`` of torch.library.register_autograd.
        backward: ``backward(bwd_op, ctx, *grads)``: the gradients of the forward's inputs, using ``bwd_op``.

    Returns:
        (forward ops, backward ops), each backend -> custom op (the backward dict empty without ``bwd``).
    """
    fwd_ops: dict = {}
    bwd_ops: dict = {}
    for backend, (fwd_launch, *bwd_launch) in launchers.items():
        fwd_ops[backend] = _custom_op(op, "fwd", backend, _bound(fwd, fwd_launch), fwd_schema, fwd_fake)
        if bwd is None:
            continue
        bwd_op = _custom_op(op, "bwd", backend, _bound(bwd, bwd_launch[0]), bwd_schema, bwd_fake)
        bwd_ops[backend] = bwd_op
        fwd_ops[backend].register_autograd(_bound(backward, bwd_op), setup_context=setup_context)
    return fwd_ops, bwd_ops
