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
