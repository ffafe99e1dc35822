"""inv-kernels: measuring and shaping the invariances of self-supervised vision models, fast.

Implements Ericsson, Gouk and Hospedales, "Why Do Self-Supervised Models Transfer? On the Impact of Invariance on
Downstream Tasks" (BMVC 2022). Importing never fails because the compiled extension, Triton or DALI is missing:
the flags below say what is present, and ``inv_kernels.backend`` explains what is not.
"""

import importlib.util

from inv_kernels._ext import C_MISSING, CUDA_MISSING, HAS_C_EXT, HAS_CUDA_EXT
from inv_kernels._triton import HAS_TRITON, TRITON_MISSING
from inv_kernels.backend import BACKENDS, available_backends, resolve_backend
from inv_kernels.ops import (
    GroupInvariance,
    InfoNCELoss,
    InvarianceScores,
    KeyQueue,
    NTXentLoss,
    fused_augment,
    group_invariance,
    group_invariance_ref,
    infonce_loss,
    invariance_scores,
    invariance_scores_ref,
    ntxent_loss,
    row_cosine,
    row_cosine_ref,
)
from inv_kernels.stats import FeatureStats, RunningMoments

# Looked up, not imported: importing DALI takes seconds.
HAS_DALI: bool = importlib.util.find_spec("nvidia") is not None and importlib.util.find_spec("nvidia.dali") is not None

__version__ = "0.1.0"

# The one-call API and its result objects, imported on first use (they pull in the measurement and transfer code).
_LAZY = {
    "measure_invariance": "api",
    "evaluate_transfer": "api",
    "compare": "api",
    "MeasureResult": "results",
    "TransferResult": "results",
    "Comparison": "results",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"inv_kernels.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'inv_kernels' has no attribute {name!r}")


__all__ = [
    *_LAZY,
    "BACKENDS",
    "C_MISSING",
    "FeatureStats",
    "GroupInvariance",
    "InfoNCELoss",
    "KeyQueue",
    "NTXentLoss",
    "RunningMoments",
    "CUDA_MISSING",
    "HAS_CUDA_EXT",
    "HAS_C_EXT",
    "HAS_DALI",
    "HAS_TRITON",
    "InvarianceScores",
    "TRITON_MISSING",
    "available_backends",
    "fused_augment",
    "group_invariance",
    "group_invariance_ref",
    "infonce_loss",
    "invariance_scores",
    "invariance_scores_ref",
    "ntxent_loss",
    "resolve_backend",
    "row_cosine",
    "row_cosine_ref",
]
