"""Linear and kernel probes with seeded k-fold cross-validation over a regularisation grid and a final refit
(PAPER.md sections 5, 6 and 12): multinomial logistic regression, multi-output ridge and RBF kernel ridge, on the
features' device (GPU when they are there, CPU otherwise)."""

from .folds import check_class_counts, kfold_indices
from .grid import (
    KRR_ALPHAS,
    KRR_GAMMAS,
    MODES,
    grid_shift,
    logistic_Cs,
    regularisation_grid,
    ridge_alphas,
)
from .kernel_ridge import fit_kernel_ridge_cv
from .logistic import fit_logistic_cv
from .result import ProbeResult
from .ridge import fit_ridge_cv

__all__ = [
    "KRR_ALPHAS",
    "KRR_GAMMAS",
    "MODES",
    "ProbeResult",
    "check_class_counts",
    "fit_kernel_ridge_cv",
    "fit_logistic_cv",
    "fit_ridge_cv",
    "grid_shift",
    "kfold_indices",
    "logistic_Cs",
    "regularisation_grid",
    "ridge_alphas",
]
