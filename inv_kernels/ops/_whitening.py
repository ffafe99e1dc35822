"""Whitening for the scoring ops (invariance_scores, group_invariance): the statistics, the dtype of the products
and z = (f - mu) A.

With feature statistics mu and a whitening matrix A (A A^T = Sigma^-1), features f are whitened as z = (f - mu) A.
float32 and float64 features are whitened in their own precision; float16 / bfloat16 features are multiplied with A
rounded to their dtype and float32 accumulation. For float32 features whose statistics report a condition number
above FLOAT32_MAX_CONDITION the products are computed in float64 and an IllConditionedWarning says so.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import Tensor

from inv_kernels._validate import check_finite, check_matrix_fits, check_tensor
from inv_kernels.ops._library import accumulation_dtype

EPS = 1e-8  # lower clamp of the whitened norms
HALF_DTYPES = (torch.float16, torch.bfloat16)
# Above this condition number of the statistics, float32 features are whitened in float64 (module docstring): float32
# rounding, amplified about sqrt(cond) times, would pass 1e-4 of |z|.
FLOAT32_MAX_CONDITION = 1e6


class IllConditionedWarning(UserWarning):
    """The statistics are too ill-conditioned for float32 whitening: the products were computed in float64."""


def scoring_dtype(op: str, dtype: torch.dtype, stats: Any, *, stacklevel: int = 4) -> torch.dtype:
    """The dtype of the whitening products for features of ``dtype``: ``accumulation_dtype(dtype)``, except float64
    for float32 features when ``stats`` reports a condition number above FLOAT32_MAX_CONDITION (then an
    IllConditionedWarning says so).

    Args:
        op: the op's name, for the warning.
        dtype: the features' dtype.
        stats: the statistics object, or None (raw mean= / whitening= carry no condition number).
        stacklevel: the warning's, counted from this function (4: the caller of a public op under torch.no_grad).
    """
    acc = accumulation_dtype(dtype)
    cond = getattr(stats, "condition_number", None)
    if dtype != torch.float32 or isinstance(cond, bool) or not isinstance(cond, (int, float)):
        return acc
    if not cond > FLOAT32_MAX_CONDITION:  # also False for NaN (unknown)
        return acc
    shown = "inf" if math.isinf(cond) else f"{cond:.3g}"
    warnings.warn(
        f"{op}: the statistics are ill-conditioned (condition number {shown} > {FLOAT32_MAX_CONDITION:g}, beyond "
        "which float32 whitening loses accuracy); whitening products computed in float64, results returned in float32",
        IllConditionedWarning,
        stacklevel=stacklevel,
    )
    return torch.float64


# ----------------------------------------------------------------------------------------------------------------
# Statistics: stats= object or mean= / whitening= tensors
# ----------------------------------------------------------------------------------------------------------------
def resolve_whitening(
    op: str,
    stats: Any,
    mean: Tensor | None,
    whitening: Tensor | None,
    *,
    dim: int,
    acc: torch.dtype,
    device: torch.device,
    feature_device: torch.device,
    check_finite_values: bool = True,
) -> tuple[Tensor, Tensor]:
    """The mean (D,) and whitening matrix A (D, D), in ``acc`` on ``device``.

    Args:
        op: the op's name, for messages.
        stats: None, or an object with ``.mean`` (D,) and ``.whitening_matrix(dtype=, device=)`` (D, D) such as
            ``inv_kernels.stats.FeatureStats``.
        mean, whitening: (D,) and (D, D) dense floating tensors, on the features' device or ``device``; used when
            ``stats`` is None.
        dim: the features' D.
        acc: the dtype to return (float32 or float64).
        device: the compute device.
        feature_device: the features' device.
        check_finite_values: raise on NaN/Inf in the statistics.

    Raises:
        TypeError: a stats object without the interface, non-tensor, sparse or non-floating mean / whitening.
        ValueError: both or neither of stats and (mean, whitening); wrong ranks or D; tensors on another device;
            a copy of the whitening matrix that would not fit in memory; NaN/Inf.
    """
    if stats is not None:
        if mean is not None or whitening is not None:
            raise ValueError(f"{op}: pass either stats= or mean= and whitening=, not both")
        if not isinstance(getattr(stats, "mean", None), Tensor) or not callable(
            getattr(stats, "whitening_matrix", None)
        ):
            raise TypeError(
                f"{op}: stats must have a .mean tensor and a .whitening_matrix(dtype=, device=) method "
                f"(e.g. inv_kernels.stats.FeatureStats), got {type(stats).__name__}"
            )
        names = ("stats.mean", "stats.whitening_matrix()")
        mean_t = stats.mean
        check_tensor(op, names[0], mean_t, ndim=1, layout="(D,)")
        if mean_t.shape[0] != dim:
            raise ValueError(f"{op}: {names[0]} has D={mean_t.shape[0]} entries but the features have D={dim}")
        w_t = stats.whitening_matrix(dtype=acc, device=device)
    else:
        if mean is None or whitening is None:
            missing = " and ".join(n for n, v in (("mean", mean), ("whitening", whitening)) if v is None)
            raise ValueError(
                f"{op}: no whitening statistics ({missing} missing): pass stats= (e.g. a FeatureStats) "
                "or both mean= (D,) and whitening= (D, D)"
            )
        names = ("mean", "whitening")
        mean_t, w_t = mean, whitening
    check_tensor(op, names[0], mean_t, ndim=1, layout="(D,)")
    check_tensor(op, names[1], w_t, ndim=2, layout="(D, D)")
    if mean_t.shape[0] != dim:
        raise ValueError(
            f"{op}: {names[0]} must have D={dim} entries like the features, got shape {tuple(mean_t.shape)}"
        )
    if tuple(w_t.shape) != (dim, dim):
        raise ValueError(
            f"{op}: {names[1]} must have shape (D, D) = ({dim}, {dim}) like the features, got {tuple(w_t.shape)}"
        )
    if stats is None:
        for name, t in zip(names, (mean_t, w_t)):
            if t.device not in (feature_device, device):
                raise ValueError(
                    f"{op}: {name} must be on the device of the features ({feature_device}), got {t.device}"
                )
        if w_t.dtype != acc or w_t.device != device or not w_t.is_contiguous():  # a dense copy will be made
            check_matrix_fits(op, f"{names[1]} matrix", dim, acc, device)
    mean_t = mean_t.detach().to(device, acc)
    w_t = w_t.detach().to(device, acc)
    if check_finite_values:
        check_finite(op, names[0], mean_t)
        check_finite(op, names[1], w_t)
    return mean_t, w_t


def check_results_finite(op: str, acc: torch.dtype, **results: Tensor) -> None:
    """Finite features and statistics give finite scores unless the whitened features overflow ``acc``: say so."""
    for name, t in results.items():
        if not torch.compiler.is_compiling() and not bool(torch.isfinite(t).all()):
            raise ValueError(
                f"{op}: the {name} came out NaN/Inf: the whitened features (clean / views - mean) A overflow {acc}; "
                "clean / views or the whitening matrix are too large in magnitude (scale them, or pass float64 "
                "features)"
            )


def operand_whitening(whitening_acc: Tensor, dtype: torch.dtype) -> Tensor:
    """A as the GEMM's operand: rounded to the features' dtype for half inputs, else unchanged."""
    return whitening_acc.to(dtype) if dtype in HALF_DTYPES else whitening_acc


def whiten(features: Tensor, mean_acc: Tensor, w_operand: Tensor) -> Tensor:
    """z = (f - mu) A in the accumulation dtype of f's dtype, with A = ``w_operand`` (already rounded for halves).

    Args:
        features: (..., D) floating tensor.
        mean_acc: (D,) in the accumulation dtype.
        w_operand: (D, D), from ``operand_whitening``.

    Returns:
        (..., D) tensor of the accumulation dtype.
    """
    acc = mean_acc.dtype
    return (features.to(acc) - mean_acc) @ w_operand.to(acc)
