"""Optional Triton import: ``triton`` and ``tl`` are the modules, or None with ``TRITON_MISSING`` saying why.

On a machine without a GPU, Triton kernels run in its interpreter when ``TRITON_INTERPRET=1`` is set before the
kernels are defined (tests/conftest.py does this).
"""

from __future__ import annotations

import os

try:
    import triton
    import triton.language as tl

    TRITON_MISSING: str | None = None
except ImportError as error:
    triton = None
    tl = None
    TRITON_MISSING = f"Triton is not installed ({error})"

HAS_TRITON: bool = triton is not None


def triton_interpreting() -> bool:
    """True when Triton kernels run in the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def matmul_input_precision(dtype) -> str | None:
    """``tl.dot``'s input_precision for operands of ``dtype``, following torch's float32 matmul precision: float64
    "ieee"; float32 "ieee" under ``torch.get_float32_matmul_precision() == "highest"`` (torch's default), else "tf32"
    (tensor cores, about 1e-3 relative error); None for float16 / bfloat16 (exact products, float32 accumulation)."""
    import torch

    if dtype == torch.float64:
        return "ieee"
    if dtype == torch.float32:
        return "ieee" if torch.get_float32_matmul_precision() == "highest" else "tf32"
    return None
