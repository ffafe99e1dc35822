"""Input checks shared by the probes (on top of inv_kernels._validate): features, labels, targets and grids, with
messages that name the argument, the file the data came from (``source``) and the offending row."""

from __future__ import annotations

import numpy as np
import torch

from inv_kernels._validate import FLOAT_DTYPES, check_nonempty, check_tensor

INT_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def _where(source: str | None) -> str:
    return f" (from {source})" if source else ""


def to_tensor(op: str, name: str, value, *, integer: bool = False) -> torch.Tensor:
    """Numpy arrays become tensors; anything else must already be a tensor."""
    if isinstance(value, np.ndarray):
        if integer and not np.issubdtype(value.dtype, np.integer):
            raise TypeError(f"{op}: {name} must hold integer labels, got a numpy array of dtype {value.dtype}")
        if not integer and not np.issubdtype(value.dtype, np.floating):
            raise TypeError(f"{op}: {name} must hold floats, got a numpy array of dtype {value.dtype}")
        return torch.from_numpy(np.ascontiguousarray(value))
    return value


def check_features(op: str, name: str, X, *, source: str | None = None) -> torch.Tensor:
    """A 2-D float tensor (N, D), non-empty, all finite; NaN/Inf raise naming the first bad row and column."""
    X = to_tensor(op, name, X)
    check_tensor(op, name + _where(source), X, ndim=2, layout="(N, D)", dtypes=FLOAT_DTYPES)
    check_nonempty(op, name, X)
    finite = torch.isfinite(X)
    if not bool(finite.all()):
        bad_rows = (~finite).any(dim=1).nonzero().flatten()
        row = int(bad_rows[0])
        col = int((~finite[row]).nonzero()[0])
        raise ValueError(
            f"{op}: {name}{_where(source)} contains NaN or Inf in row {row} (column {col}, value "
            f"{float(X[row, col])}); {bad_rows.numel()} of {X.shape[0]} rows affected"
        )
    return X


def check_labels(op: str, name: str, y, n_rows: int, features: str, *, source: str | None = None) -> torch.Tensor:
    """1-D integer labels with one entry per feature row."""
    y = to_tensor(op, name, y, integer=True)
    check_tensor(op, name + _where(source), y, ndim=1, layout="(N,)", dtypes=INT_DTYPES)
    if y.shape[0] != n_rows:
        raise ValueError(
            f"{op}: {name}{_where(source)} has {y.shape[0]} labels but {features} has {n_rows} rows; they must match"
        )
    return y


def check_targets(op: str, name: str, Y, n_rows: int, features: str, *, source: str | None = None) -> torch.Tensor:
    """Regression targets (N,) or (N, T), finite, one row per feature row; returned as (N, T)."""
    Y = to_tensor(op, name, Y)
    check_tensor(op, name + _where(source), Y, dtypes=FLOAT_DTYPES)
    if Y.dim() not in (1, 2):
        raise ValueError(f"{op}: {name} must be 1-D (N,) or 2-D (N, T), got shape {tuple(Y.shape)}")
    if Y.shape[0] != n_rows:
        raise ValueError(
            f"{op}: {name}{_where(source)} has {Y.shape[0]} rows but {features} has {n_rows} rows; they must match"
        )
    Y2 = Y.reshape(n_rows, -1)
    finite = torch.isfinite(Y2)
    if not bool(finite.all()):
        row = int((~finite).any(dim=1).nonzero()[0])
        raise ValueError(f"{op}: {name}{_where(source)} contains NaN or Inf in row {row}")
    return Y2


def check_test_features(
    op: str, X: torch.Tensor, X_test, y_test, y_name: str, *, source: str | None = None
) -> torch.Tensor | None:
    """The optional test features: given together with their labels or targets (named ``y_name``) or not at all, with
    as many columns as X (D); returned checked as (M, D), or None."""
    if X_test is None and y_test is None:
        return None
    if X_test is None or y_test is None:
        raise ValueError(f"{op}: X_test and {y_name} must be given together")
    X_test = check_features(op, "X_test", X_test, source=source)
    if X_test.shape[1] != X.shape[1]:
        raise ValueError(f"{op}: X_test must have {X.shape[1]} columns like X, got {X_test.shape[1]}")
    return X_test


def check_regression_test_set(
    op: str, X: torch.Tensor, Y2: torch.Tensor, X_test, Y_test, *, source: str | None = None
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The optional test set of a regression probe: both or neither given, as many columns as X (D) and outputs as
    Y2 (T); returned checked as (X_test (M, D), Y_test (M, T)), or (None, None)."""
    X_test = check_test_features(op, X, X_test, Y_test, "Y_test", source=source)
    if X_test is None:
        return None, None
    Y_test = check_targets(op, "Y_test", Y_test, X_test.shape[0], "X_test", source=source)
    if Y_test.shape[1] != Y2.shape[1]:
        raise ValueError(f"{op}: Y_test must have {Y2.shape[1]} outputs like Y, got {Y_test.shape[1]}")
    return X_test, Y_test


def check_mask(op: str, name: str, mask, shape: tuple[int, ...], targets: str) -> np.ndarray:
    """A boolean mask with the shape of its targets (an (N,) mask of (N,) targets may be given for (N, 1)),
    returned as an (N, T) numpy array."""
    array = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if array.dtype != np.bool_:
        raise TypeError(f"{op}: {name} must hold booleans (True = visible), got dtype {array.dtype}")
    if array.ndim == 1 and len(shape) == 2 and shape[1] == 1:
        array = array[:, None]
    if array.shape != shape:
        raise ValueError(f"{op}: {name} must have shape {shape} like {targets}, got {array.shape}")
    return array


def check_grid(op: str, name: str, grid) -> np.ndarray:
    """A non-empty 1-D grid of finite positive values, as float64."""
    arr = np.asarray(grid, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{op}: {name} must be a non-empty 1-D sequence of values, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{op}: {name} values must be finite and > 0, got min {arr.min()} max {arr.max()}")
    return arr


def default_dtype(device: torch.device, dtype: torch.dtype | None) -> torch.dtype:
    """float64 on the CPU and float32 on a GPU unless the caller chose."""
    if dtype is not None:
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        return dtype
    return torch.float64 if device.type == "cpu" else torch.float32
