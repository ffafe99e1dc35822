"""What every op test shares: the device, the backends that can run here, their pytest parameters (with the
triton / cuda markers, so conftest skips them with a reason), and the float64 feature statistics of the reference
code's recipe (np.cov, np.linalg.inv, np.linalg.cholesky)."""

import functools
import math

import numpy as np
import pytest
import torch

import inv_kernels

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
BACKENDS = inv_kernels.available_backends(DEVICE)
COMPILED = [b for b in BACKENDS if b != "reference"]


def backend_param(name: str):
    marks = {"triton": [pytest.mark.triton], "cuda": [pytest.mark.cuda]}.get(name, [])
    return pytest.param(name, marks=marks, id=name)


ALL_BACKENDS = [backend_param(b) for b in inv_kernels.BACKENDS]


def skip_unavailable(backend: str) -> None:
    if backend not in BACKENDS:
        reason = inv_kernels.backend.unavailable_reason(backend, torch.device(DEVICE))
        pytest.skip(f"backend {backend} unavailable: {reason}")


@functools.cache
def reference_statistics(d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(F, mu, P, L) as eval_synthetic_invariance.py: mu = mean, P = inv(np.cov(F)), L = cholesky(P) (P = L L^T).

    F: 2D + 16 anisotropic, correlated, off-centre rows (fresh per session seed; cached per D for speed)."""
    rng = np.random.default_rng(int(torch.randint(0, 2**31, ())))
    rows = 2 * d + 16
    f = rng.standard_normal((rows, d)) * (0.3 + rng.random(d)) + 0.5
    f += 0.3 * rng.standard_normal((rows, 3)) @ rng.standard_normal((3, d))  # a few correlated directions
    p = np.linalg.inv(np.cov(f, rowvar=False).reshape(d, d))
    return f, f.mean(axis=0), p, np.linalg.cholesky(p)


def ill_conditioned_features(rows: int, d: int, condition: float = 1e11) -> torch.Tensor:
    """(rows, D) float32 features on DEVICE whose covariance has eigenvalues spread geometrically from 1 down to
    1 / condition in a random basis, centred at 1 (fresh per session seed)."""
    gen = torch.Generator().manual_seed(int(torch.randint(0, 2**31, ())))
    eigenvalues = torch.logspace(0, -math.log10(condition), d, dtype=torch.float64)  # (D,)
    basis, _ = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64, generator=gen))  # (D, D) orthogonal
    f = (torch.randn(rows, d, dtype=torch.float64, generator=gen) * eigenvalues.sqrt()) @ basis.T + 1.0  # (rows, D)
    return f.to(DEVICE, torch.float32)
