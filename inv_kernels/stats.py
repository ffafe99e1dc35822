"""Feature statistics: streaming mean and covariance, shrinkage, and the whitening factor (docs/METHOD.md section 4).

The invariance measures compare features after whitening with the statistics of a reference set (ImageNet val in
the paper): for features f (row vectors) with mean mu and covariance Sigma, P = Sigma^-1,

    cosine   s(a, b) = cos(w(f_a), w(f_b))          distance   d(a, b) = ||w(f_a) - w(f_b)||_2

with w(f) = (f - mu) A for any A with A A^T = P. The reference code takes L = chol(inv(Sigma)) (float32) and
w(f) = (mu - f) L; the sign and the choice of A change neither s nor d (two such A differ by an orthogonal factor on
the right). Here, as docs/METHOD.md's implementation note advises, C = chol(Sigma) in float64 and

    z = (f - mu) C^-T      (a triangular solve; Cov(z) = C^-1 Sigma C^-T = I)      A = C^-T  (upper triangular)

so Sigma is never inverted.

Streaming (``RunningMoments``). Each batch is reduced in float64 on the features' device to its count n, mean m and
centred sums about its own mean

    M2 = sum_k (x_k - m)(x_k - m)^T  (D, D)     q = sum_k ||x_k - m||^4     r = sum_k ||x_k - m||^2 (x_k - m)  (D,)

and two such summaries combine exactly (Chan, Golub and LeVeque's pairwise update, extended to q and r): with
delta = m_b - m_a and n = n_a + n_b,

    m  = m_a + delta n_b / n         M2 = M2_a + M2_b + delta delta^T n_a n_b / n

and q, r of each part are moved to the new centre m (y = x - m_p, d = m - m_p, s = ||y||^2, t = y . d, sum y = 0):

    q' = q - 4 d.r + 4 d^T M2 d + 2 ||d||^2 tr(M2) + n ||d||^4      r' = r - 2 M2 d - tr(M2) d - n ||d||^2 d

so shards from several processes or GPUs combine exactly (``merge``, ``all_reduce``). q is what the Ledoit-Wolf
intensity needs (the sum of ||x_k - mu||^4 about the final mean); r is only needed to move q.

Covariance and shrinkage (``FeatureStats.from_moments``). ``cov`` is always the unbiased sample covariance
S = M2 / (N - 1), as np.cov. The covariance *used* for whitening (``covariance_used()``) is

    "none"          S
    ridge (float)   S + ridge I                                        (the reference adds 1e-10 I for the random net)
    "ledoit_wolf"   (1 - delta) S + delta (tr S / D) I                 delta: sklearn's ledoit_wolf_shrinkage formula
    "auto_ridge"    S + lambda I, lambda = (tr S / D) 10^k             only as the fallback described below

The Ledoit-Wolf intensity delta is sklearn's (computed on the maximum-likelihood covariance M2 / N); it is applied to
the unbiased S, so the covariance used is N / (N - 1) times sklearn's ``ledoit_wolf`` covariance (a global scale,
which changes no cosine and scales distances by sqrt((N - 1) / N)).

With shrinkage="none" the covariance is treated as singular when N - 1 < D (its rank is at most N - 1), when its
Cholesky factorisation fails, or when its condition number exceeds ``max_condition`` (default 1e12). Then a
``SingularCovarianceWarning`` names the reason and the smallest ridge lambda = (tr S / D) 10^k,
k = floor(log10(1 / max_condition)), ..., 0, for which S + lambda I factorises and has a condition number
<= max_condition is added (recorded as shrinkage_method "auto_ridge", shrinkage lambda). strict=True raises instead.

Size. Everything here holds D x D float64 matrices, so D is bounded by memory: before the first such allocation
(the first ``update``, ``from_moments``, the first ``whitening_matrix`` or whitening on a device) a ValueError names D,
the matrices and their size when they would not fit the memory available (``INV_KERNELS_MAX_MATRIX_GIB`` overrides
the limit), instead of an allocator error part-way through.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from inv_kernels._validate import FLOAT_DTYPES, as_tensor, check_finite, check_matrix_fits, check_nonempty, check_tensor
from inv_kernels.io import atomic_torch_save

__all__ = ["FeatureStats", "RunningMoments", "SingularCovarianceWarning"]

FORMAT = "inv_kernels.FeatureStats"
FORMAT_VERSION = 1
MOMENTS_VERSION = 1
SHRINKAGE_METHODS = ("none", "ridge", "ledoit_wolf", "auto_ridge")
DEFAULT_MAX_CONDITION = 1e12
_F64 = torch.float64


class SingularCovarianceWarning(UserWarning):
    """The covariance was singular or ill-conditioned and a ridge was added automatically."""


# ----------------------------------------------------------------------------------------------------------------
# Streaming moments
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class _Summary:
    """Count and centred sums of a set of rows, about the set's own mean (all float64, one device)."""

    n: int
    mean: Tensor  # (D,)
    m2: Tensor  # (D, D) sum of centred outer products
    q: Tensor  # () sum of ||x - mean||^4
    r: Tensor  # (D,) sum of ||x - mean||^2 (x - mean)


def _summarise(x: Tensor) -> _Summary:
    """Summary of one batch x: (n, D) float64."""
    mean = x.mean(dim=0)  # (D,)
    xc = x - mean  # (n, D)
    sq = (xc * xc).sum(dim=1)  # (n,) squared norms
    return _Summary(x.shape[0], mean, xc.mT @ xc, (sq * sq).sum(), sq @ xc)


def _recentre(s: _Summary, d: Tensor) -> tuple[Tensor, Tensor]:
    """q and r of s about the point s.mean + d (d: (D,)); M2 changes through the caller's delta term."""
    tr = torch.diagonal(s.m2).sum()  # ()
    dd = d @ d  # ()
    m2d = s.m2 @ d  # (D,)
    q = s.q - 4 * (d @ s.r) + 4 * (d @ m2d) + 2 * dd * tr + s.n * dd * dd
    r = s.r - 2 * m2d - tr * d - s.n * dd * d
    return q, r


def _combine(a: _Summary, b: _Summary) -> _Summary:
    """Exact summary of the union of two disjoint sets (Chan et al.'s pairwise update)."""
    if a.n == 0:
        return b
    if b.n == 0:
        return a
    n = a.n + b.n
    delta = b.mean - a.mean  # (D,)
    mean = a.mean + delta * (b.n / n)  # (D,)
    m2 = a.m2 + b.m2 + torch.outer(delta, delta) * (a.n * b.n / n)  # (D, D)
    qa, ra = _recentre(a, delta * (b.n / n))
    qb, rb = _recentre(b, -delta * (a.n / n))
    return _Summary(n, mean, m2, qa + qb, ra + rb)


def _collective_device(group: Any) -> torch.device:
    import torch.distributed as dist

    if "nccl" in str(dist.get_backend(group)).lower():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class RunningMoments:
    """Streaming, mergeable mean and covariance of feature rows, accumulated in float64.

    Update with batches of any size, merge shards exactly, or combine the shards of every process with
    ``all_reduce``. Accumulators live on the device of the first batch (the GPU, when features come from one).

    Args:
        dim: the feature dimension D, if known in advance (then every batch is checked against it, and a process
            that sees no batch can still take part in ``all_reduce``).

    Example:
        >>> moments = RunningMoments()
        >>> for batch in loader:                       # doctest: +SKIP
        ...     moments.update(model(batch))           # (n, D) features
        >>> stats = FeatureStats.from_moments(moments, shrinkage="none", model_id="resnet50@abc123:avgpool")
    """

    def __init__(self, dim: int | None = None) -> None:
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise ValueError(f"RunningMoments: dim must be a positive int or None, got {dim!r}")
        self._dim = dim
        self._s: _Summary | None = None

    # -- state --------------------------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        """Number of rows seen."""
        return 0 if self._s is None else self._s.n

    @property
    def dim(self) -> int | None:
        """The feature dimension D (None before the first batch unless given)."""
        return self._dim

    @property
    def device(self) -> torch.device | None:
        """Device of the accumulators (None before the first batch)."""
        return None if self._s is None else self._s.mean.device

    @property
    def mean(self) -> Tensor:
        """(D,) float64 mean of all rows seen.

        Raises:
            ValueError: no rows seen yet.
        """
        self._require_count("mean", 1)
        return self._s.mean.clone()

    def covariance(self) -> Tensor:
        """Unbiased sample covariance (divides by N - 1, as ``np.cov(F, rowvar=False)``).

        Returns:
            (D, D) float64 symmetric tensor on the accumulators' device.

        Raises:
            ValueError: fewer than 2 rows seen.
        """
        self._require_count("covariance", 2)
        m2 = self._s.m2
        return (m2 + m2.mT) / (2 * (self._s.n - 1))  # symmetrised against rounding in the matmuls

    def _require_count(self, what: str, least: int) -> None:
        if self.count < least:
            raise ValueError(f"RunningMoments.{what}: needs at least {least} feature rows, got {self.count}")

    def clone(self) -> RunningMoments:
        """An independent copy."""
        out = RunningMoments(self._dim)
        if self._s is not None:
            s = self._s
            out._s = _Summary(s.n, s.mean.clone(), s.m2.clone(), s.q.clone(), s.r.clone())
        return out

    # -- accumulation -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def update(self, features: Tensor) -> RunningMoments:
        """Adds a batch of feature rows.

        Args:
            features: (n, D) floating tensor (float32, float64, float16 or bfloat16) or NumPy array, n >= 1, on the
                accumulators' device (any device for the first batch). Converted to float64 on that device.

        Returns:
            self, for chaining.

        Raises:
            TypeError: not a tensor, not floating, or sparse.
            ValueError: not 2-D, empty, NaN/Inf values, on the meta device, D different from earlier batches (or
                ``dim``), a device different from the accumulators', or (first batch) D x D accumulators that would
                not fit in memory.
        """
        op = "RunningMoments.update"
        features = as_tensor(op, "features", features)
        check_tensor(op, "features", features, ndim=2, layout="(n, D)", dtypes=FLOAT_DTYPES)
        check_nonempty(op, "features", features)
        if self._dim is not None and features.shape[1] != self._dim:
            raise ValueError(
                f"{op}: features must have D={self._dim} columns like the statistics so far, "
                f"got shape {tuple(features.shape)} (D={features.shape[1]})"
            )
        if self._s is not None and features.device != self.device:
            raise ValueError(
                f"{op}: features must be on the accumulators' device ({self.device}), got {features.device}"
            )
        check_finite(op, "features", features)
        if self._s is None:
            _check_fits(op, features.shape[1], features.device, 3, "the covariance accumulator and an update's sums")
        self._dim = features.shape[1]
        batch = _summarise(features.detach().to(_F64))
        self._s = batch if self._s is None else _combine(self._s, batch)
        return self

    @torch.no_grad()
    def merge(self, other: RunningMoments) -> RunningMoments:
        """Adds the rows summarised by ``other`` (exactly: as if they had been passed to ``update``).

        ``other``'s accumulators are moved to this object's device if they differ (shards from several GPUs).
        ``other`` is left unchanged.

        Args:
            other: another RunningMoments with the same D.

        Returns:
            self, for chaining.

        Raises:
            TypeError: other is not a RunningMoments.
            ValueError: different feature dimensions.
        """
        if not isinstance(other, RunningMoments):
            raise TypeError(f"RunningMoments.merge: other must be a RunningMoments, got {type(other).__name__}")
        if self._dim is not None and other._dim is not None and self._dim != other._dim:
            raise ValueError(f"RunningMoments.merge: expected D={self._dim}, got other with D={other._dim}")
        self._dim = self._dim if self._dim is not None else other._dim
        if other._s is None:
            return self
        o = other._s
        if self._s is not None and o.mean.device != self.device:
            dev = self.device
            o = _Summary(o.n, o.mean.to(dev), o.m2.to(dev), o.q.to(dev), o.r.to(dev))
        self._s = _combine(self._s, o) if self._s is not None else other.clone()._s
        return self

    @torch.no_grad()
    def all_reduce(self, group: Any = None) -> RunningMoments:
        """Combines the moments of every process in a torch.distributed group, in place.

        Gathers (count, D) and then the flat (mean, M2, q, r) of each rank with ``all_gather`` and merges them in
        rank order on the collective's device, so every rank ends with bitwise-identical statistics (then moved
        back to this object's device if it had one). A rank that saw no rows takes part with
        a count of 0 (give it ``dim`` at construction if no rank-local batch tells it D). Communication is
        world_size x (D^2 + 2D + 1) float64 values per rank. With NCCL, tensors travel on the current CUDA device.

        Args:
            group: the process group (None: the default group).

        Returns:
            self, for chaining.

        Raises:
            RuntimeError: torch.distributed is not available or not initialised.
            ValueError: ranks hold different feature dimensions (raised on every rank).
        """
        import torch.distributed as dist

        op = "RunningMoments.all_reduce"
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(f"{op}: torch.distributed is not initialised (call init_process_group first)")
        world = dist.get_world_size(group)
        device = _collective_device(group)  # gloo: CPU tensors; NCCL: the current CUDA device
        header = torch.tensor([self.count, -1 if self._dim is None else self._dim], dtype=torch.int64, device=device)
        headers = [torch.empty_like(header) for _ in range(world)]
        dist.all_gather(headers, header, group=group)
        counts = [int(h[0]) for h in headers]
        dims = [int(h[1]) for h in headers]
        known = sorted({d for d in dims if d >= 0})
        if len(known) > 1:
            raise ValueError(f"{op}: ranks hold different feature dimensions D (by rank: {dims})")
        if not known:
            return self  # no rank has seen anything
        dim = known[0]
        payload = torch.zeros(dim * dim + 2 * dim + 1, dtype=_F64, device=device)  # [mean | M2 | r | q]
        if self._s is not None:
            s = self._s
            payload = torch.cat([s.mean, s.m2.reshape(-1), s.r, s.q.reshape(1)]).to(device)
        payloads = [torch.empty_like(payload) for _ in range(world)]
        dist.all_gather(payloads, payload, group=group)
        merged: _Summary | None = None
        for n, flat in zip(counts, payloads):
            if n == 0:
                continue
            part = _Summary(n, flat[:dim], flat[dim : dim + dim * dim].view(dim, dim), flat[-1], flat[-1 - dim : -1])
            merged = part if merged is None else _combine(merged, part)
        if merged is not None and self.device is not None and self.device != device:
            home = self.device  # keep the accumulators where they were
            merged = _Summary(merged.n, merged.mean.to(home), merged.m2.to(home), merged.q.to(home), merged.r.to(home))
        self._dim, self._s = dim, merged
        return self

    # -- serialisation ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """A plain dict (tensors on their device; ints; a version) that ``from_state_dict`` restores exactly."""
        s = self._s
        return {
            "version": MOMENTS_VERSION,
            "dim": self._dim,
            "count": self.count,
            "mean": None if s is None else s.mean.clone(),
            "m2": None if s is None else s.m2.clone(),
            "q": None if s is None else s.q.clone(),
            "r": None if s is None else s.r.clone(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> RunningMoments:
        """Restores a ``state_dict``.

        Args:
            state: as returned by ``state_dict``: mean (D,), m2 (D, D), q (), r (D,), float64.

        Returns:
            a RunningMoments.

        Raises:
            ValueError: missing keys, an unknown version, or tensors of the wrong shape or dtype.
        """
        op = "RunningMoments.from_state_dict"
        if not isinstance(state, dict) or not {"version", "dim", "count", "mean", "m2", "q", "r"} <= set(state):
            raise ValueError(f"{op}: state must be a dict from RunningMoments.state_dict()")
        if state["version"] != MOMENTS_VERSION:
            raise ValueError(f"{op}: state version must be {MOMENTS_VERSION}, got {state['version']!r}")
        out = cls(state["dim"])
        count = state["count"]
        if count == 0:
            return out
        dim = state["dim"]
        expected = {"mean": (dim,), "m2": (dim, dim), "q": (), "r": (dim,)}
        for key, shape in expected.items():
            value = state[key]
            if not isinstance(value, Tensor) or value.dtype != _F64 or tuple(value.shape) != shape:
                got = f"{value.dtype} {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"{op}: {key} must be a float64 tensor of shape {shape}, got {got}")
        out._s = _Summary(int(count), *(state[k].clone() for k in ("mean", "m2", "q", "r")))
        return out

    def __repr__(self) -> str:
        return f"RunningMoments(count={self.count}, dim={self._dim}, device={self.device})"


# ----------------------------------------------------------------------------------------------------------------
# Frozen statistics and whitening
# ----------------------------------------------------------------------------------------------------------------
def _check_fits(op: str, dim: int, device: torch.device, copies: int, what: str, dtype: torch.dtype = _F64) -> None:
    check_matrix_fits(
        op,
        f"{'matrix' if copies == 1 else 'matrices'} ({what})",
        dim,
        dtype,
        device,
        copies=copies,
        advice=" or compute the statistics of fewer features",
    )


def _condition_number(matrix: Tensor) -> float:
    """2-norm condition number of a symmetric matrix (as np.linalg.cond): max |eig| / min |eig|; inf if singular."""
    w = torch.linalg.eigvalsh(matrix).abs()  # (D,)
    low, high = float(w.min()), float(w.max())
    return math.inf if low == 0.0 else high / low


def _shrunk(cov: Tensor, method: str, amount: float) -> Tensor:
    """The covariance used for whitening: cov (D, D) with the given shrinkage applied."""
    if method == "none" or amount == 0.0:
        return cov
    eye = torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
    if method == "ledoit_wolf":
        target = torch.diagonal(cov).mean()  # tr S / D
        return (1.0 - amount) * cov + (amount * target) * eye
    return cov + amount * eye  # ridge, auto_ridge


def _ledoit_wolf_intensity(s: _Summary) -> float:
    """sklearn.covariance.ledoit_wolf_shrinkage from streaming sums (X centred at the final mean, n rows, p cols)."""
    n, p = s.n, s.mean.shape[0]
    emp = s.m2 / n  # (p, p) maximum-likelihood covariance
    mu = float(torch.diagonal(emp).sum()) / p
    delta_ = float((emp * emp).sum())  # ||X^T X||_F^2 / n^2
    beta = (float(s.q) / n - delta_) / (p * n)  # sum_k ||x_k||^4 = sum((X^2)^T X^2)
    delta = (delta_ - p * mu * mu) / p  # ||emp - mu I||_F^2 / p
    beta = min(beta, delta)
    if beta <= 0.0:
        return 0.0
    return min(beta / delta, 1.0)


def _parse_shrinkage(shrinkage: str | float | None) -> tuple[str, float]:
    op = "FeatureStats.from_moments"
    if shrinkage is None or shrinkage == "none":
        return "none", 0.0
    if shrinkage == "ledoit_wolf":
        return "ledoit_wolf", math.nan
    if isinstance(shrinkage, str):
        raise ValueError(f"{op}: shrinkage must be 'none', 'ledoit_wolf' or a ridge > 0, got {shrinkage!r}")
    if isinstance(shrinkage, bool) or not isinstance(shrinkage, (int, float)):
        raise TypeError(f"{op}: shrinkage must be a string or a number, got {type(shrinkage).__name__}")
    if not math.isfinite(shrinkage) or shrinkage <= 0:
        raise ValueError(f"{op}: a ridge shrinkage must be a finite number > 0, got {shrinkage}")
    return "ridge", float(shrinkage)


def _auto_ridge(cov: Tensor, max_condition: float) -> tuple[float, Tensor, float]:
    """Smallest lambda = (tr S / D) 10^k (k from floor(log10(1 / max_condition)) up to 0) such that S + lambda I
    has a Cholesky factor and a condition number <= max_condition. Returns (lambda, factor, condition number)."""
    dim = cov.shape[0]
    base = float(torch.diagonal(cov).sum()) / dim
    w = torch.linalg.eigvalsh(cov)  # (D,) ascending; predicts the condition number of each candidate
    w_low, w_high = max(float(w[0]), 0.0), float(w[-1])
    eye = torch.eye(dim, dtype=cov.dtype, device=cov.device)
    # below 1e-16 (tr S / D) a ridge is lost in rounding
    first = max(math.floor(math.log10(1.0 / max_condition)), -16) if math.isfinite(max_condition) else -16
    for k in range(first, 1):
        lam = base * 10.0**k
        if (w_high + lam) / (w_low + lam) > max_condition * (1 + 1e-6):
            continue  # cannot pass the condition test
        used = cov + lam * eye
        factor, info = torch.linalg.cholesky_ex(used)
        if int(info) != 0:
            continue
        cond = _condition_number(used)
        if cond <= max_condition:
            return lam, factor, cond
    raise ValueError(
        f"FeatureStats.from_moments: no ridge up to tr(S)/D = {base:.3g} makes the covariance factorisable with a "
        f"condition number <= max_condition={max_condition:.3g}; raise max_condition or use shrinkage='ledoit_wolf'"
    )


@dataclass(frozen=True, eq=False)
class FeatureStats:
    """Frozen feature statistics of a reference set, and the whitening they define.

    Build with ``from_moments`` / ``from_features``; persist with ``save`` / ``load``.

    Attributes:
        mean: (D,) float64 mean mu (mean, cov and chol may be given as NumPy arrays; they are kept as tensors).
        cov: (D, D) float64 unbiased sample covariance S (as np.cov), before any shrinkage.
        chol: (D, D) float64 lower Cholesky factor C of the covariance used (``covariance_used()`` = C C^T).
        count: number of feature rows N.
        shrinkage: the ridge (absolute) or Ledoit-Wolf intensity actually used; 0.0 for "none".
        shrinkage_method: "none", "ridge", "ledoit_wolf" or "auto_ridge".
        condition_number: 2-norm condition number of the covariance used.
        model_id: optional string naming the model / feature extractor (e.g. checkpoint hash + layer).
    """

    mean: Tensor = field(repr=False)
    cov: Tensor = field(repr=False)
    chol: Tensor = field(repr=False)
    count: int
    shrinkage: float = 0.0
    shrinkage_method: str = "none"
    condition_number: float = math.nan
    model_id: str | None = None
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        op = "FeatureStats"
        for name in ("mean", "cov", "chol"):
            value = as_tensor(op, name, getattr(self, name))
            object.__setattr__(self, name, value)  # frozen: the one conversion at construction
            if not isinstance(value, Tensor):
                raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(value).__name__}")
            if value.dtype != _F64:
                raise TypeError(f"{op}: {name} must be float64, got {value.dtype}")
            check_tensor(op, name, value, dtypes=(_F64,))  # dense
        if self.mean.dim() != 1 or self.mean.shape[0] < 1:
            raise ValueError(f"{op}: mean must be 1-D (D,), got shape {tuple(self.mean.shape)}")
        dim = self.mean.shape[0]
        for name in ("cov", "chol"):
            shape = tuple(getattr(self, name).shape)
            if shape != (dim, dim):
                raise ValueError(f"{op}: {name} must have shape (D, D) = {(dim, dim)}, got {shape}")
        for name in ("mean", "cov", "chol"):
            check_finite(op, name, getattr(self, name))
        if not bool((torch.diagonal(self.chol) > 0).all()):
            raise ValueError(
                f"{op}: chol must be a Cholesky factor with a positive diagonal (it whitens by solving "
                "with it), got a diagonal entry <= 0"
            )
        if self.shrinkage_method not in SHRINKAGE_METHODS:
            raise ValueError(
                f"{op}: shrinkage_method must be one of {SHRINKAGE_METHODS}, got {self.shrinkage_method!r}"
            )
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 2:
            raise ValueError(f"{op}: count must be an int >= 2, got {self.count!r}")
        if self.model_id is not None and not isinstance(self.model_id, str):
            raise TypeError(f"{op}: model_id must be a str or None, got {type(self.model_id).__name__}")

    # -- construction -------------------------------------------------------------------------------------------
    @classmethod
    @torch.no_grad()
    def from_moments(
        cls,
        moments: RunningMoments,
        shrinkage: str | float | None = "none",
        *,
        model_id: str | None = None,
        strict: bool = False,
        max_condition: float = DEFAULT_MAX_CONDITION,
    ) -> FeatureStats:
        """Freezes streaming moments into statistics with a whitening factor (on the moments' device).

        Args:
            moments: a RunningMoments with at least 2 rows.
            shrinkage: "none" (the sample covariance, with an automatic ridge if it is singular; see the module
                docstring), "ledoit_wolf", or a float ridge > 0 added to the diagonal.
            model_id: string identifying the model that produced the features; checked by ``load``.
            strict: with shrinkage="none", raise instead of warning and adding a ridge when the covariance is
                singular or ill-conditioned.
            max_condition: with shrinkage="none", a condition number above this counts as singular.

        Returns:
            the FeatureStats.

        Raises:
            TypeError: moments is not a RunningMoments, or shrinkage is neither a string nor a number.
            ValueError: fewer than 2 rows; an unknown shrinkage or a ridge <= 0; zero variance in every feature;
                a singular covariance with strict=True; a Cholesky failure with an explicit ridge or Ledoit-Wolf;
                D x D matrices that would not fit in memory.

        Warns:
            SingularCovarianceWarning: shrinkage="none", strict=False and the covariance is singular (N - 1 < D,
                a failed Cholesky pivot, or condition number > max_condition); an automatic ridge is used.
        """
        op = "FeatureStats.from_moments"
        if not isinstance(moments, RunningMoments):
            raise TypeError(f"{op}: moments must be a RunningMoments, got {type(moments).__name__}")
        if moments.count < 2:
            raise ValueError(f"{op}: the covariance needs at least 2 feature rows, got count={moments.count}")
        if model_id is not None and not isinstance(model_id, str):
            raise TypeError(f"{op}: model_id must be a str or None, got {type(model_id).__name__}")
        if isinstance(max_condition, bool) or not isinstance(max_condition, (int, float)) or not max_condition > 1:
            raise ValueError(f"{op}: max_condition must be a number > 1, got {max_condition!r}")
        method, amount = _parse_shrinkage(shrinkage)
        s = moments._s
        n, dim = s.n, s.mean.shape[0]
        _check_fits(op, dim, s.mean.device, 3, "the covariance, its factor and a work copy")
        cov = moments.covariance()  # (D, D)
        if not float(torch.diagonal(cov).max()) > 0.0:
            raise ValueError(f"{op}: every feature is constant over the {n} rows (zero covariance); cannot whiten")

        if method != "none":
            if method == "ledoit_wolf":
                amount = _ledoit_wolf_intensity(s)
            used = _shrunk(cov, method, amount)
            chol, info = torch.linalg.cholesky_ex(used)
            if int(info) != 0:
                raise ValueError(
                    f"{op}: the covariance with {method} shrinkage {amount:.3g} is not positive definite "
                    f"(Cholesky failed at pivot {int(info)} of D={dim}); use a larger ridge"
                )
            cond = _condition_number(used)
        else:
            reason = None
            if n - 1 < dim:
                reason = f"it is rank-deficient: count={n} rows give rank at most {n - 1} < D={dim}"
            else:
                chol, info = torch.linalg.cholesky_ex(cov)
                if int(info) != 0:
                    reason = f"it is not positive definite: Cholesky failed at pivot {int(info)} of D={dim}"
                else:
                    cond = _condition_number(cov)
                    if cond > max_condition:
                        reason = f"its condition number {cond:.3g} exceeds max_condition={max_condition:.3g}"
            if reason is not None:
                if strict:
                    raise ValueError(
                        f"{op}: the covariance is singular: {reason}; pass shrinkage='ledoit_wolf' or a ridge, "
                        "or strict=False to add a ridge automatically"
                    )
                method = "auto_ridge"
                amount, chol, cond = _auto_ridge(cov, max_condition)
                warnings.warn(
                    f"{op}: the covariance is singular: {reason}; added a ridge {amount:.3g} * I "
                    f"(shrinkage_method='auto_ridge', condition number {cond:.3g}). "
                    "shrinkage='ledoit_wolf' usually whitens better when count is small next to D",
                    SingularCovarianceWarning,
                    stacklevel=3,
                )
        return cls(
            mean=s.mean.clone(),
            cov=cov,
            chol=chol,
            count=n,
            shrinkage=float(amount),
            shrinkage_method=method,
            condition_number=float(cond),
            model_id=model_id,
        )

    @classmethod
    def from_features(
        cls,
        features: Tensor,
        shrinkage: str | float | None = "none",
        *,
        model_id: str | None = None,
        strict: bool = False,
        max_condition: float = DEFAULT_MAX_CONDITION,
    ) -> FeatureStats:
        """``from_moments(RunningMoments().update(features), ...)`` for features that fit in memory at once.

        Args:
            features: (N, D) floating tensor or NumPy array, N >= 2.
            shrinkage, model_id, strict, max_condition: as ``from_moments``.

        Returns:
            the FeatureStats.

        Raises:
            as ``RunningMoments.update`` and ``from_moments``.
        """
        return cls.from_moments(
            RunningMoments().update(features),
            shrinkage,
            model_id=model_id,
            strict=strict,
            max_condition=max_condition,
        )

    # -- views ----------------------------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """The feature dimension D."""
        return self.mean.shape[0]

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def covariance_used(self) -> Tensor:
        """The covariance the whitening inverts: ``cov`` with the shrinkage applied (see the module docstring).

        Returns:
            (D, D) float64 tensor; equal to chol @ chol.T up to rounding.
        """
        return _shrunk(self.cov, self.shrinkage_method, self.shrinkage).clone()

    def summary(self) -> dict[str, Any]:
        """Plain-Python report: count, dim, condition_number, shrinkage, shrinkage_method, model_id."""
        return {
            "count": self.count,
            "dim": self.dim,
            "condition_number": self.condition_number,
            "shrinkage": self.shrinkage,
            "shrinkage_method": self.shrinkage_method,
            "model_id": self.model_id,
        }

    def __repr__(self) -> str:
        return "FeatureStats(" + ", ".join(f"{k}={v!r}" for k, v in self.summary().items()) + ")"

    def to(self, device: torch.device | str) -> FeatureStats:
        """A copy with every tensor on ``device`` (still float64)."""
        device = torch.device(device)
        return FeatureStats(
            mean=self.mean.to(device),
            cov=self.cov.to(device),
            chol=self.chol.to(device),
            count=self.count,
            shrinkage=self.shrinkage,
            shrinkage_method=self.shrinkage_method,
            condition_number=self.condition_number,
            model_id=self.model_id,
        )

    def _on(self, op: str, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """(mean, chol) on device in dtype, cached."""
        key = ("mc", device, dtype)
        if key not in self._cache:
            if device != self.device or dtype != _F64:
                _check_fits(op, self.dim, device, 1, "a copy of the Cholesky factor", dtype)
            self._cache[key] = (self.mean.to(device, dtype), self.chol.to(device, dtype))
        return self._cache[key]

    def _check_rows(self, op: str, name: str, features: Tensor) -> None:
        check_tensor(op, name, features, ndim=2, layout="(n, D)", dtypes=FLOAT_DTYPES)
        if features.shape[1] != self.dim:
            raise ValueError(
                f"{op}: {name} must have D={self.dim} columns like the statistics, got shape {tuple(features.shape)}"
            )
        check_nonempty(op, name, features)
        check_finite(op, name, features)

    @staticmethod
    def _check_compute_dtype(op: str, dtype: torch.dtype) -> None:
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"{op}: dtype must be torch.float32 or torch.float64, got {dtype}")

    # -- whitening ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def whiten(self, features: Tensor, *, dtype: torch.dtype = torch.float64) -> Tensor:
        """Whitened, centred features z = (f - mu) C^-T by a triangular solve (Cov(z) = I on the statistics set
        when no shrinkage was used).

        Args:
            features: (n, D) floating tensor on any device (the statistics are copied there once and cached).
            dtype: computation and output dtype, torch.float64 (default) or torch.float32.

        Returns:
            (n, D) tensor of ``dtype`` on the features' device.

        Raises:
            TypeError: not a dense floating tensor, or dtype not float32/float64.
            ValueError: not 2-D, D different from the statistics', empty, NaN/Inf values, on the meta device, or a
                copy of the factor on the features' device that would not fit in memory.
        """
        op = "FeatureStats.whiten"
        self._check_compute_dtype(op, dtype)
        self._check_rows(op, "features", features)
        mean, chol = self._on(op, features.device, dtype)
        centred = features.detach().to(dtype) - mean  # (n, D)
        # z C^T = f - mu  (C^T upper triangular; rows are solved as a right-hand side)
        return torch.linalg.solve_triangular(chol.mT, centred, upper=True, left=False)  # (n, D)

    @torch.no_grad()
    def whitening_matrix(self, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> Tensor:
        """A = C^-T (upper triangular) with A A^T = inverse of the covariance used, so z = (f - mu) A = f A - mu A.

        Obtained by a triangular solve against the identity in float64, then cast; the covariance is never
        inverted. Any A' with A' A'^T = P (e.g. the reference code's chol(inv(Sigma))) gives the same cosines and
        distances, since A' = A Q for an orthogonal Q.

        Args:
            dtype: output dtype (torch.float32 or torch.float64).
            device: output device (default: the statistics' device).

        Returns:
            (D, D) tensor of ``dtype`` on ``device``.

        Raises:
            TypeError: dtype not float32/float64.
            ValueError: D x D matrices that would not fit in memory.
        """
        op = "FeatureStats.whitening_matrix"
        self._check_compute_dtype(op, dtype)
        device = self.device if device is None else torch.device(device)
        if "A" not in self._cache:
            _check_fits(op, self.dim, self.device, 2, "the whitening matrix and the identity it solves against")
            eye = torch.eye(self.dim, dtype=_F64, device=self.device)
            self._cache["A"] = torch.linalg.solve_triangular(self.chol.mT, eye, upper=True)  # C^T A = I
        if device != self.device or dtype != _F64:
            _check_fits(op, self.dim, device, 1, "the whitening matrix", dtype)
        return self._cache["A"].to(device, dtype)

    @torch.no_grad()
    def mahalanobis(self, a: Tensor, b: Tensor, *, dtype: torch.dtype = torch.float64) -> Tensor:
        """Mahalanobis distance of matching rows, ||z_a - z_b|| = sqrt((a - b) P (a - b)^T).

        Args:
            a: (n, D) floating tensor.
            b: (n, D) floating tensor on a's device.
            dtype: computation and output dtype, torch.float64 (default) or torch.float32.

        Returns:
            (n,) tensor of ``dtype`` on a's device.

        Raises:
            TypeError: non-floating or sparse inputs, or dtype not float32/float64.
            ValueError: not 2-D, D different from the statistics', different shapes or devices, the meta device,
                empty, NaN/Inf, or a copy of the factor on a's device that would not fit in memory.
        """
        op = "FeatureStats.mahalanobis"
        self._check_compute_dtype(op, dtype)
        self._check_rows(op, "a", a)
        self._check_rows(op, "b", b)
        if a.shape != b.shape:
            raise ValueError(f"{op}: b must have the shape of a {tuple(a.shape)}, got {tuple(b.shape)}")
        if a.device != b.device:
            raise ValueError(f"{op}: b must be on the device of a ({a.device}), got {b.device}")
        _, chol = self._on(op, a.device, dtype)
        diff = a.detach().to(dtype) - b.detach().to(dtype)  # (n, D); the mean cancels
        z = torch.linalg.solve_triangular(chol.mT, diff, upper=True, left=False)  # (n, D)
        return torch.linalg.vector_norm(z, dim=1)  # (n,)

    # -- persistence ----------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Writes the statistics (tensors on the CPU and metadata, with a format version) with torch.save,
        atomically: to a temporary file in the same folder, then renamed over ``path``.

        Args:
            path: destination file; its folder is created if missing.
        """
        state = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "mean": self.mean.detach().cpu().clone(),
            "cov": self.cov.detach().cpu().clone(),
            "chol": self.chol.detach().cpu().clone(),
            "count": int(self.count),
            "shrinkage": float(self.shrinkage),
            "shrinkage_method": self.shrinkage_method,
            "condition_number": float(self.condition_number),
            "model_id": self.model_id,
            "dim": int(self.dim),
        }
        atomic_torch_save(state, path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        expected_model_id: str | None = None,
        expected_dim: int | None = None,
        map_location: torch.device | str = "cpu",
    ) -> FeatureStats:
        """Reads statistics written by ``save`` and checks they belong to the model at hand.

        Args:
            path: the file.
            expected_model_id: if given, the file's model_id must equal it.
            expected_dim: if given, the file's D must equal it.
            map_location: device for the tensors.

        Returns:
            the FeatureStats.

        Raises:
            FileNotFoundError: no file at path.
            ValueError: the file is corrupt or not a FeatureStats file, has an unsupported version, or holds
                statistics of another model (model_id) or of another feature dimension (D).
        """
        op = "FeatureStats.load"
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{op}: no statistics file at {path}")
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as err:  # torch raises many types for a damaged file
            raise ValueError(f"{op}: {path} is corrupt or not a statistics file ({type(err).__name__}: {err})") from err
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(f"{op}: {path} is not a FeatureStats file (no '{FORMAT}' format tag)")
        if state.get("version") != FORMAT_VERSION:
            raise ValueError(f"{op}: {path} has format version {state.get('version')!r}, expected {FORMAT_VERSION}")
        try:
            stats = cls(
                mean=state["mean"],
                cov=state["cov"],
                chol=state["chol"],
                count=int(state["count"]),
                shrinkage=float(state["shrinkage"]),
                shrinkage_method=state["shrinkage_method"],
                condition_number=float(state["condition_number"]),
                model_id=state["model_id"],
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{op}: {path} is corrupt ({type(err).__name__}: {err})") from err
        if stats.dim != state.get("dim"):
            raise ValueError(f"{op}: {path} is corrupt (dim {state.get('dim')!r} but mean has D={stats.dim})")
        if expected_model_id is not None and stats.model_id != expected_model_id:
            raise ValueError(
                f"{op}: {path} holds statistics of model_id={stats.model_id!r}, expected "
                f"model_id={expected_model_id!r}; recompute the statistics for this model"
            )
        if expected_dim is not None and stats.dim != expected_dim:
            raise ValueError(f"{op}: {path} holds statistics of D={stats.dim} features, expected D={expected_dim}")
        return stats
