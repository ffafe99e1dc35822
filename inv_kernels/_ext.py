"""Loads the compiled extension ``inv_kernels._C`` and records why it, or its CUDA part, is missing.

Importing this module never fails: ``C`` is the module or None, ``C_MISSING`` / ``CUDA_MISSING`` say why a part is
absent (None when present). Kernels receive dtypes as the integer codes of ``DTYPE_CODES``.
"""

from __future__ import annotations

import torch

# The codes csrc/common/dtype.h understands.
DTYPE_CODES: dict[torch.dtype, int] = {
    torch.float32: 0,
    torch.float64: 1,
    torch.float16: 2,
    torch.bfloat16: 3,
}

try:
    from inv_kernels import _C as C

    C_MISSING: str | None = None
except ImportError as error:  # not built (e.g. a source checkout without `pip install -e .`)
    C = None
    C_MISSING = (
        f"the compiled extension inv_kernels._C could not be imported ({error}); "
        "build it with `pip install -e .` from the project's root"
    )

if C is None:
    CUDA_MISSING: str | None = C_MISSING
elif not C.WITH_CUDA:
    CUDA_MISSING = (
        "inv_kernels._C was built without CUDA kernels (nvcc was not found, or INV_KERNELS_CUDA=OFF); "
        "rebuild with nvcc on the PATH"
    )
else:
    CUDA_MISSING = None

HAS_C_EXT: bool = C is not None
HAS_CUDA_EXT: bool = CUDA_MISSING is None


def dtype_code(dtype: torch.dtype) -> int:
    """The kernels' integer code for ``dtype``; raises TypeError for a dtype no kernel handles."""
    try:
        return DTYPE_CODES[dtype]
    except KeyError:
        names = ", ".join(str(d).removeprefix("torch.") for d in DTYPE_CODES)
        raise TypeError(f"unsupported dtype {dtype}: expected one of {names}") from None


def cuda_stream_handle(device: torch.device) -> int:
    """The raw handle of torch's current stream on ``device``, for a kernel launch on the caller's stream."""
    return torch.cuda.current_stream(device).cuda_stream
