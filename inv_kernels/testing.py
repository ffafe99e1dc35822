"""Helpers for checking kernels: the tolerance table, float64 oracles' plumbing and verbose comparisons.

The tolerance table is CONTRIBUTING.md's ("Numerical tolerances"). For low-precision kernels the main check is
flash-attention's: the kernel's error against an exact (float64) result is at most ``factor`` times the error that
plain PyTorch makes in the same precision, plus a small atol (``assert_within_torch_error``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

# dtype -> (atol, rtol)
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (1e-2, 1e-3),
    torch.bfloat16: (5e-2, 2e-2),
}
# float32 atol for reductions over this many terms or more
LARGE_REDUCTION = 1024
LARGE_REDUCTION_ATOL_FLOAT32 = 1e-4


def tolerance(dtype: torch.dtype, reduction_size: int = 1) -> tuple[float, float]:
    """(atol, rtol) for results computed in ``dtype`` from reductions over ``reduction_size`` terms."""
    atol, rtol = TOLERANCES[dtype]
    if dtype == torch.float32 and reduction_size >= LARGE_REDUCTION:
        atol = LARGE_REDUCTION_ATOL_FLOAT32
    return atol, rtol


def to_float64(value: torch.Tensor | np.ndarray) -> np.ndarray:
    """A float64 numpy copy of a tensor (any device or dtype) or array."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64).numpy()
    return np.asarray(value, dtype=np.float64)


def _describe_mismatch(actual: np.ndarray, expected: np.ndarray, bad: np.ndarray, allowed: np.ndarray) -> str:
    error = np.abs(actual - expected)
    error = np.where(np.isnan(error), np.inf, error)
    worst = np.unravel_index(int(np.argmax(np.where(bad, error, -1.0))), actual.shape)
    first = np.unravel_index(int(np.argmax(bad)), actual.shape)
    return (
        f"{int(bad.sum())} of {bad.size} elements differ; first at {tuple(map(int, first))}; "
        f"worst at {tuple(map(int, worst))}: got {actual[worst]!r}, expected {expected[worst]!r}, "
        f"|error| {error[worst]:.3e} > allowed {allowed[worst]:.3e}"
    )


def assert_close(
    actual: torch.Tensor | np.ndarray,
    expected: torch.Tensor | np.ndarray,
    *,
    dtype: torch.dtype | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    reduction_size: int = 1,
    name: str = "value",
) -> None:
    """Asserts |actual - expected| <= atol + rtol * |expected| elementwise; NaN never passes.

    Tolerances default to the table's for ``dtype`` (the dtype of ``actual`` when it is a tensor). On failure the
    message counts the differing elements and shows the first and the worst.
    """
    if dtype is None:
        dtype = actual.dtype if isinstance(actual, torch.Tensor) else torch.float64
    table_atol, table_rtol = tolerance(dtype, reduction_size)
    atol = table_atol if atol is None else atol
    rtol = table_rtol if rtol is None else rtol
    a, e = to_float64(actual), to_float64(expected)
    if a.shape != e.shape:
        raise AssertionError(f"{name}: shape {a.shape} differs from expected {e.shape}")
    allowed = atol + rtol * np.abs(e)
    bad = ~(np.abs(a - e) <= allowed)  # NaN compares False, so it counts as bad
    if bad.any():
        raise AssertionError(f"{name} ({dtype}): " + _describe_mismatch(a, e, bad, allowed))


def assert_within_torch_error(
    actual: torch.Tensor,
    torch_same_precision: torch.Tensor,
    exact: torch.Tensor | np.ndarray,
    *,
    factor: float = 2.0,
    atol: float = 1e-5,
    name: str = "value",
) -> None:
    """Asserts max|actual - exact| <= factor * max|torch - exact| + atol (flash-attention's low-precision rule).

    ``torch_same_precision`` is plain PyTorch's result in the kernel's precision; ``exact`` a float64 result.
    """
    a, t, e = to_float64(actual), to_float64(torch_same_precision), to_float64(exact)
    if not np.isfinite(a).all():
        raise AssertionError(f"{name}: result holds {int((~np.isfinite(a)).sum())} non-finite values")
    kernel_error = float(np.max(np.abs(a - e)))
    torch_error = float(np.max(np.abs(t - e)))
    bound = factor * torch_error + atol
    if kernel_error > bound:
        raise AssertionError(
            f"{name}: kernel error {kernel_error:.3e} exceeds {factor} x torch's error {torch_error:.3e} + {atol:.1e}"
        )


@contextmanager
def float32_matmul_precision(precision: str) -> Iterator[None]:
    """Runs its block under ``torch.set_float32_matmul_precision(precision)`` ("highest", "high" or "medium"), then
    restores the previous setting."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)
