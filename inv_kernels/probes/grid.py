"""The regularisation grids of the paper's probes (docs/METHOD.md sections 5 and 6) and how C and alpha derive from them.

The reference code (``eval_downstream.py`` L122-124, L300-301) draws ``wd = logspace(-6 + 2c, 5 + 2c, 45)`` with the
shift ``c = 2`` for a "w3" (wide) model and otherwise ``c`` = the number of '+' in the model string (the number of fused
models minus one). Logistic regression uses ``C = 1 / wd`` and Ridge ``alpha = 1 / wd``. The shift is meant to allow
stronger regularisation for more features: it does so for logistic regression (C falls as wd rises), but for Ridge it
moves alpha toward *weaker* regularisation (docs/METHOD.md section 12, "Silent protocol bugs").

Modes:
    ``"paper"``: the reference behaviour, ``alpha = 1 / wd`` on the shifted grid.
    ``"corrected"``: the ridge shift in the intended direction, ``alpha = 10**(2c) / wd_unshifted``, i.e. alpha spans
    ``[1e-5 * 10**(2c), 1e6 * 10**(2c)]``. The logistic grid is the same in both modes.
"""

from __future__ import annotations

import numpy as np

MODES = ("paper", "corrected")
GRID_SIZE = 45
KRR_ALPHAS = np.logspace(0, -4, 5)  # docs/METHOD.md section 5: {1, 0.1, 0.01, 1e-3, 1e-4}
KRR_GAMMAS = np.logspace(-5, 2, 8)  # {1e-5, ..., 1e2}


def _check_mode(op: str, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"{op}: mode must be one of {MODES}, got {mode!r}")


def grid_shift(num_models_fused: int = 1, wide: bool = False) -> int:
    """The shift ``c`` of the paper's grid: 2 for a wide ("w3") model, else ``num_models_fused - 1``.

    Raises:
        TypeError / ValueError: ``num_models_fused`` is not an integer >= 1.
    """
    if isinstance(num_models_fused, bool) or not isinstance(num_models_fused, (int, np.integer)):
        raise TypeError(f"grid_shift: num_models_fused must be an int, got {type(num_models_fused).__name__}")
    if num_models_fused < 1:
        raise ValueError(f"grid_shift: num_models_fused must be >= 1, got {num_models_fused}")
    return 2 if wide else int(num_models_fused) - 1


def regularisation_grid(num_models_fused: int = 1, wide: bool = False, mode: str = "paper") -> np.ndarray:
    """The paper's weight-decay grid ``wd = logspace(-6 + 2c, 5 + 2c, 45)``.

    Args:
        num_models_fused: how many representations are concatenated (1 for a single model).
        wide: True for a "w3" model (c = 2 whatever the fusion).
        mode: ``"paper"`` or ``"corrected"``; the wd grid itself is the same in both (the modes differ in
            ``ridge_alphas``).

    Returns:
        (45,) float64 ascending wd values, 0.25-decade steps spanning 11 decades.

    Raises:
        ValueError: unknown mode or ``num_models_fused < 1``.
    """
    _check_mode("regularisation_grid", mode)
    c = grid_shift(num_models_fused, wide)
    return np.logspace(-6 + 2 * c, 5 + 2 * c, GRID_SIZE)


def logistic_Cs(num_models_fused: int = 1, wide: bool = False, mode: str = "paper") -> np.ndarray:  # noqa: N802
    """Inverse regularisation strengths ``C = 1 / wd`` of the logistic probe (same in both modes).

    Returns:
        (45,) float64, in the order of ``regularisation_grid`` (so descending C).
    """
    return 1.0 / regularisation_grid(num_models_fused, wide, mode)


def ridge_alphas(num_models_fused: int = 1, wide: bool = False, mode: str = "paper") -> np.ndarray:
    """Ridge penalties: ``1 / wd`` on the shifted grid (``"paper"``), or shifted toward stronger
    regularisation for more features (``"corrected"``: ``10**(2c) / wd_unshifted``).

    Returns:
        (45,) float64, in the order of the wd grid (so descending alpha).
    """
    _check_mode("ridge_alphas", mode)
    c = grid_shift(num_models_fused, wide)
    if mode == "paper":
        return 1.0 / regularisation_grid(num_models_fused, wide, mode)
    return 10.0 ** (2 * c) / np.logspace(-6, 5, GRID_SIZE)
