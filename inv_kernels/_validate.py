"""Input checks at the Python boundary, shared by every op.

Each raises with a message that names the op and the argument and shows what was expected against what was got:
TypeError for a wrong type, dtype or layout (sparse tensors), ValueError for a wrong rank, a shape or device mismatch,
tensors without values (the meta device), an empty batch, a non-positive parameter, NaN/Inf values, or a matrix too
large for the memory that is available. Never ``assert`` (it vanishes under ``python -O``).

Memory limit (``check_matrix_fits``): a D x D matrix is checked before it is allocated against the memory available
on its device where that is known (free CUDA memory plus torch's cached blocks; on the CPU the smaller of MemAvailable
and the cgroup's remaining limit), or against ``INV_KERNELS_MAX_MATRIX_GIB`` (GiB) when that variable is set, which
overrides the detection either way.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

MATRIX_LIMIT_ENV = "INV_KERNELS_MAX_MATRIX_GIB"
_GIB = 2**30

FLOAT_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _dtype_names(dtypes: tuple[torch.dtype, ...]) -> str:
    return ", ".join(str(d).removeprefix("torch.") for d in dtypes)


def as_tensor(op: str, name: str, value: object) -> object:
    """A NumPy array as a tensor sharing its memory where it can (a copy for negative strides or a read-only
    array); anything else unchanged, for ``check_tensor`` to judge. The public entry of every op calls it, so the
    ops take arrays and return tensors."""
    if type(value).__module__ != "numpy" or not hasattr(value, "__array_interface__"):
        return value
    import numpy as np

    if not isinstance(value, np.ndarray):
        raise TypeError(f"{op}: {name} must be a torch.Tensor or a NumPy array, got {type(value).__name__}")
    if not value.flags.writeable or any(stride < 0 for stride in value.strides):
        value = value.copy()
    try:
        return torch.from_numpy(value)
    except TypeError as error:
        raise TypeError(f"{op}: {name} has a NumPy dtype torch does not take ({value.dtype}): {error}") from None


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
    if value.layout != torch.strided:
        raise TypeError(
            f"{op}: {name} must be a dense (strided) tensor, got layout {value.layout}; convert it with .to_dense()"
        )
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
    """Checks that every tensor is on the device of the first, and that this device holds values (not meta);
    returns that device."""
    (first_name, first), *rest = tensors.items()
    for name, tensor in rest:
        if tensor.device != first.device:
            raise ValueError(
                f"{op}: {name} must be on the device of {first_name} ({first.device}), got {tensor.device}"
            )
    check_has_values(op, first_name, first)
    return first.device


def check_has_values(op: str, name: str, tensor: torch.Tensor) -> None:
    """Checks that ``tensor`` holds values: a meta tensor has a shape but no data to compute with."""
    if tensor.is_meta:
        raise ValueError(f"{op}: {name} is on the meta device, which holds no values; pass CPU or CUDA tensors")


def check_nonempty(op: str, name: str, tensor: torch.Tensor) -> None:
    """Checks that no dimension of ``tensor`` is zero."""
    if tensor.numel() == 0:
        raise ValueError(f"{op}: {name} must not be empty, got shape {tuple(tensor.shape)}")


def check_finite(op: str, name: str, tensor: torch.Tensor, *, max_abs: float | None = None, why: str = "") -> None:
    """Checks that ``tensor`` holds no NaN or Inf (the message counts them and locates the first) and, with
    ``max_abs``, no value of larger magnitude (``why`` says what would overflow). One reduction over the tensor.

    Skipped while torch.compile traces (a data-dependent check would break the graph).
    """
    if torch.compiler.is_compiling():
        return
    check_has_values(op, name, tensor)
    if tensor.numel() == 0 or not (tensor.is_floating_point() or tensor.is_complex()):
        return  # integers are finite, and their magnitudes are the caller's to bound
    top = float(torch.linalg.vector_norm(tensor.detach(), float("inf")))  # NaN if any NaN
    if math.isfinite(top) and (max_abs is None or top <= max_abs):
        return
    if math.isfinite(top):
        raise ValueError(
            f"{op}: {name} holds values up to {top:.3g} in magnitude, above {max_abs:.3g} where {why}; scale it down"
        )
    bad = (~torch.isfinite(tensor)).nonzero()
    first = tuple(int(i) for i in bad[0])
    raise ValueError(
        f"{op}: {name} contains NaN or Inf ({bad.shape[0]} of {tensor.numel()} elements; first at index {first})"
    )


def max_abs_for_squares(dtype: torch.dtype, terms: int) -> float:
    """The largest magnitude m whose ``terms`` squares sum to a finite value in ``dtype``: sqrt(max / terms)."""
    return math.sqrt(torch.finfo(dtype).max / max(terms, 1))


def check_positive(op: str, name: str, value: float) -> None:
    """Checks that a scalar parameter is a finite number above zero."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{op}: {name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{op}: {name} must be a finite number > 0, got {value}")


def matrix_limit_bytes(device: torch.device) -> tuple[int, str] | None:
    """(bytes, what the limit is) that one new allocation on ``device`` may take, or None where unknown.

    ``INV_KERNELS_MAX_MATRIX_GIB`` when set; else the free memory of a CUDA device (including torch's cached blocks)
    or of the CPU (the smaller of MemAvailable and the cgroup's remaining limit); else None (e.g. the meta device).
    """
    setting = os.environ.get(MATRIX_LIMIT_ENV, "").strip()
    if setting:
        try:
            gib = float(setting)
        except ValueError:
            gib = math.nan
        if not math.isfinite(gib) or gib <= 0:
            raise ValueError(f"{MATRIX_LIMIT_ENV} must be a number of GiB > 0, got {setting!r}")
        return int(gib * _GIB), f"{MATRIX_LIMIT_ENV}={setting}"
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return free + cached, f"free memory of {device}"
    if device.type == "cpu":
        available = _cpu_available_bytes()
        return None if available is None else (available, "available memory")
    return None


def _cpu_available_bytes() -> int | None:
    """MemAvailable of /proc/meminfo, capped by the cgroup (v2) limit less its usage; None where neither is known."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
                break
    except (OSError, ValueError, IndexError):
        pass
    try:
        cgroup = Path("/sys/fs/cgroup")
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            found.append(max(0, int(limit) - int((cgroup / "memory.current").read_text())))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def check_fits(op: str, what: str, need: int, device: torch.device | str, *, advice: str = "") -> None:
    """Checks, before allocating, that ``need`` bytes fit the limit of ``device`` (see ``matrix_limit_bytes``).

    The ValueError reads "{op}: {what} ({size} GiB), more than the {limit} on {device}; {advice}, or set ..."; so
    ``what`` is a clause such as "D = 9 features need a 9 x 9 float64 covariance".
    """
    device = torch.device(device)
    limit = matrix_limit_bytes(device)
    if limit is None or need <= limit[0]:
        return
    raise ValueError(
        f"{op}: {what} ({need / _GIB:.3g} GiB), more than the {limit[1]} ({limit[0] / _GIB:.3g} GiB) on {device}; "
        f"{advice}{', or ' if advice else ''}set {MATRIX_LIMIT_ENV} to change the limit"
    )


def check_matrix_fits(
    op: str, what: str, dim: int, dtype: torch.dtype, device: torch.device | str, *, copies: int = 1, advice: str = ""
) -> None:
    """Checks, before allocating, that ``copies`` D x D matrices of ``dtype`` for ``what`` fit (``check_fits``).

    Args:
        op: the op's name, for messages.
        what: the matrix, e.g. "whitening matrix".
        dim: D.
        dtype: the matrix's dtype.
        device: where it will be allocated.
        copies: how many D x D matrices of ``dtype`` the step holds at once.
        advice: what else the user can do, after the advice to reduce D (e.g. " or use a smaller batch").
    """
    count = f"{copies} x " if copies > 1 else "a "
    check_fits(
        op,
        f"D = {dim} features need {count}{dim} x {dim} {str(dtype).removeprefix('torch.')} {what}",
        copies * dim * dim * dtype.itemsize,
        device,
        advice="reduce the feature dimension (e.g. pool or project the features)" + advice,
    )
