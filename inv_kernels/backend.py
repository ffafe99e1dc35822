"""Backend choice for every op: ``reference`` (plain torch), ``cpu`` (C++ with OpenMP), ``triton``, ``cuda``.

Order of precedence: the op's ``backend=`` argument, then the ``INV_KERNELS_BACKEND`` environment variable, then the
automatic rule: a CUDA tensor goes to ``cuda`` if ``_C`` has CUDA kernels, else ``triton``, else ``reference`` (ops whose
Triton kernel is the tuned GPU path, with tensor-core tiles, try ``triton`` first); a CPU tensor goes to ``cpu`` if
``_C`` is built, else ``reference``. A backend that was asked for (by argument or by the
environment variable) never falls back: if it cannot run, a RuntimeError says what is missing and why.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch

from inv_kernels import _ext, _triton

BACKENDS: tuple[str, ...] = ("reference", "cpu", "triton", "cuda")
ENV_VAR = "INV_KERNELS_BACKEND"


def unavailable_reason(backend: str, device: torch.device) -> str | None:
    """Why ``backend`` cannot run on tensors of ``device``, or None when it can.

    Args:
        backend: one of BACKENDS.
        device: the device of the op's tensors.
    """
    if backend == "reference":
        return None
    if backend == "cpu":
        if _ext.C_MISSING is not None:
            return _ext.C_MISSING
        if device.type != "cpu":
            return f"the cpu backend takes CPU tensors, got tensors on {device}"
        return None
    if backend == "triton":
        if _triton.TRITON_MISSING is not None:
            return _triton.TRITON_MISSING
        if device.type == "cuda" or (device.type == "cpu" and _triton.triton_interpreting()):
            return None
        return (
            f"the triton backend takes CUDA tensors (or CPU tensors with TRITON_INTERPRET=1), got tensors on {device}"
        )
    if backend == "cuda":
        if _ext.CUDA_MISSING is not None:
            return _ext.CUDA_MISSING
        if device.type != "cuda":
            return f"the cuda backend takes CUDA tensors, got tensors on {device}"
        return None
    raise ValueError(f"unknown backend {backend!r}: expected 'auto' or one of {', '.join(BACKENDS)}")


def available_backends(device: torch.device | str, supported: Iterable[str] = BACKENDS) -> list[str]:
    """The backends of ``supported`` that can run on tensors of ``device``, in BACKENDS order."""
    device = torch.device(device)
    return [b for b in BACKENDS if b in tuple(supported) and unavailable_reason(b, device) is None]


def _automatic(device: torch.device, supported: tuple[str, ...], gpu_order: tuple[str, ...]) -> str:
    preference = (*gpu_order, "reference") if device.type == "cuda" else ("cpu", "reference")
    for backend in preference:
        if backend in supported and unavailable_reason(backend, device) is None:
            return backend
    return "reference"


def resolve_backend(
    requested: str | None,
    device: torch.device,
    *,
    op: str,
    supported: Iterable[str] = BACKENDS,
    gpu_order: tuple[str, ...] = ("cuda", "triton"),
) -> str:
    """The backend that runs ``op`` on tensors of ``device``.

    Args:
        requested: the op's ``backend=`` argument: ``"auto"`` (or None) or one of BACKENDS.
        device: the device of the op's tensors.
        op: the op's name, for messages.
        supported: the backends the op implements.
        gpu_order: the automatic rule's order of preference for CUDA tensors (ops whose Triton kernel is the tuned
            one put "triton" first).

    Returns:
        One of BACKENDS.

    Raises:
        ValueError: an unknown backend name.
        RuntimeError: a requested backend that the op lacks or that cannot run here, with the reason.
    """
    supported = tuple(supported)
    source = "backend="
    if requested in (None, "auto"):
        requested = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
        source = f"{ENV_VAR}="
        if requested == "auto":
            return _automatic(device, supported, gpu_order)
    if requested not in BACKENDS:
        raise ValueError(
            f"{op}: unknown backend {source}{requested!r}; expected 'auto' or one of {', '.join(BACKENDS)}"
        )
    if requested not in supported:
        raise RuntimeError(
            f"{op}: {source}{requested!r} is not implemented for this op (it has {', '.join(supported)})"
        )
    reason = unavailable_reason(requested, device)
    if reason is not None:
        raise RuntimeError(f"{op}: {source}{requested!r} cannot run: {reason}")
    return requested
