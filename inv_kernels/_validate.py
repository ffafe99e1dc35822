"""Input checks at the Python boundary, shared by every op.

Each raises with a message that names the op and the argument and shows what was expected against what was got:
TypeError for a wrong type or dtype, ValueError for a wrong rank, a shape or device mismatch, an empty batch, a
non-positive parameter, or NaN/Inf values. Never ``assert`` (it vanishes under ``python -O``).
"""

from __future__ import annotations

import math

import torch

FLOAT_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _dtype_names(dtypes: tuple[torch.dtype, ...]) -> str:
    return ", ".join(str(d).removeprefix("torch.") for d in dtypes)


def check_tensor(
    op: str,
    name: str,
    value: object,
    *,
    ndim: int | None = None,
    layout: str = "",
    dtypes: tuple[torch.dtype, ...] = FLOAT_DTYPES,
) -> torch.Tensor:
    """Checks that ``value`` is a tensor of one of ``dtypes`` with ``ndim`` dimensions; returns it.

    ``layout`` describes the expected shape in messages, e.g. ``"(M, D)"``.
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dtype not in dtypes:
        raise TypeError(f"{op}: {name} must have a dtype in ({_dtype_names(dtypes)}), got {value.dtype}")
    if ndim is not None and value.dim() != ndim:
        expected = f"{ndim}-D {layout}".rstrip()
        raise ValueError(f"{op}: {name} must be {expected}, got a {value.dim()}-D tensor of shape {tuple(value.shape)}")
    return value


def check_same_shape(op: str, **tensors: torch.Tensor) -> None:
    """Checks that every tensor has the shape of the first."""
    (first_name, first), *rest = tensors.items()
    for name, tensor in rest:
        if tensor.shape != first.shape:
            raise ValueError(
                f"{op}: {name} must have the shape of {first_name} {tuple(first.shape)}, got {tuple(tensor.shape)}"
            )


def check_same_dtype(op: str, **tensors: torch.Tensor) -> None:
    """Checks that every tensor has the dtype of the first."""
    (first_name, first), *rest = tensors.items()
    for name, tensor in rest:
        if tensor.dtype != first.dtype:
            raise TypeError(f"{op}: {name} must have the dtype of {first_name} ({first.dtype}), got {tensor.dtype}")


def check_same_device(op: str, **tensors: torch.Tensor) -> torch.device:
    """Checks that every tensor is on the device of the first; returns that device."""
    (first_name, first), *rest = tensors.items()
    for name, tensor in rest:
        if tensor.device != first.device:
            raise ValueError(
                f"{op}: {name} must be on the device of {first_name} ({first.device}), got {tensor.device}"
            )
    return first.device


def check_nonempty(op: str, name: str, tensor: torch.Tensor) -> None:
    """Checks that no dimension of ``tensor`` is zero."""
    if tensor.numel() == 0:
        raise ValueError(f"{op}: {name} must not be empty, got shape {tuple(tensor.shape)}")


def check_finite(op: str, name: str, tensor: torch.Tensor) -> None:
    """Checks that ``tensor`` holds no NaN or Inf; the message counts them and locates the first.

    Skipped while torch.compile traces (a data-dependent check would break the graph).
    """
    if torch.compiler.is_compiling():
        return
    finite = torch.isfinite(tensor)
    if bool(finite.all()):
        return
    bad = (~finite).nonzero()
    first = tuple(int(i) for i in bad[0])
    raise ValueError(
        f"{op}: {name} contains NaN or Inf ({bad.shape[0]} of {tensor.numel()} elements; first at index {first})"
    )


def check_positive(op: str, name: str, value: float) -> None:
    """Checks that a scalar parameter is a finite number above zero."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{op}: {name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{op}: {name} must be a finite number > 0, got {value}")
