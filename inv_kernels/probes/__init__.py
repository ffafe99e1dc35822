"""Linear and kernel probes with seeded k-fold cross-validation over a regularisation grid and a final refit
(docs/METHOD.md sections 5, 6 and 12): multinomial logistic regression, multi-output ridge and RBF kernel ridge, on the
features' device (GPU when they are there, CPU otherwise)."""

from .cv import cross_validate, select_best
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
from .metrics import class_scores, r2_per_output
from .result import ProbeResult
from .ridge import fit_ridge_cv, ridge_path

__all__ = [
    "KRR_ALPHAS",
    "KRR_GAMMAS",
    "MODES",
    "ProbeResult",
    "check_class_counts",
    "class_scores",
    "cross_validate",
    "fit_kernel_ridge_cv",
    "fit_logistic_cv",
    "fit_ridge_cv",
    "grid_shift",
    "kfold_indices",
    "logistic_Cs",
    "r2_per_output",
    "regularisation_grid",
    "ridge_alphas",
    "ridge_path",
    "select_best",
]
