"""The result record shared by every probe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ProbeResult:
    """What a cross-validated probe found.

    Attributes:
        probe: ``"logistic"``, ``"ridge"`` or ``"kernel_ridge"``.
        metric: the CV selection metric (``"accuracy"``, ``"mean_per_class_accuracy"``, ``"r2"``).
        param_names: names of the grid's columns, e.g. ``("C",)`` or ``("alpha", "gamma")``.
        grid: (G,) or (G, P) float64, the hyper-parameter values in the order they were given.
        cv_scores: (G,) float64 mean validation score over folds.
        cv_std: (G,) float64 standard deviation (ddof 0) of the validation score over folds.
        fold_scores: (F, G) float64 per-fold validation scores.
        best_index: index into ``grid`` of the chosen value (first maximum of ``cv_scores``).
        best_params: the chosen value(s) by name.
        test_metrics: metric name -> score on the test set (empty when no test set was given).
        fit_time_s: wall time of the whole protocol (CV and refit) in seconds.
        extra: probe-specific details (fitted coefficients, iterations, classes ...).
    """

    probe: str
    metric: str
    param_names: tuple[str, ...]
    grid: np.ndarray
    cv_scores: np.ndarray
    cv_std: np.ndarray
    fold_scores: np.ndarray
    best_index: int
    best_params: dict[str, float]
    test_metrics: dict[str, float] = field(default_factory=dict)
    fit_time_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def best_value(self) -> float:
        """The chosen value of the first grid parameter."""
        return self.best_params[self.param_names[0]]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (lists and floats; the ``extra`` tensors are left out)."""
        return {
            "probe": self.probe,
            "metric": self.metric,
            "param_names": list(self.param_names),
            "grid": np.asarray(self.grid).tolist(),
            "cv_scores": np.asarray(self.cv_scores).tolist(),
            "cv_std": np.asarray(self.cv_std).tolist(),
            "best_index": int(self.best_index),
            "best_params": {k: float(v) for k, v in self.best_params.items()},
            "test_metrics": {k: float(v) for k, v in self.test_metrics.items()},
            "fit_time_s": float(self.fit_time_s),
            "extra": {k: v for k, v in self.extra.items() if isinstance(v, (int, float, str, bool))},
        }
