"""group_invariance: the real-world invariance measure of Ericsson et al. (BMVC 2022), docs/METHOD.md section 4.3.

For each group G of k >= 2 images of one object or scene under a varied real factor, with whitened features
z_a = (f_a - mu) A (A A^T = Sigma^-1) and cos(a, b) = <z_a, z_b> / (max(|z_a|, eps) max(|z_b|, eps)):

    cosine_with_diagonal(G) = (1 / k^2) sum over all k^2 ordered pairs (a, b), self-pairs included
                              (the paper's convention: biased upward, (1 + s) / 2 for k = 2)
    cosine_off_diagonal(G)  = mean over the k (k - 1) ordered pairs with a != b
    distance(G)             = mean over the k (k - 1) / 2 unordered pairs of |z_a - z_b|

and the reported numbers are the means of these over groups. Distances are norms of differences (as the reference
code's torch.pdist), never |z_a|^2 + |z_b|^2 - 2 <z_a, z_b>, so duplicate images give ~0.

Every backend whitens all N features once with torch ((N, D): these are real images, not n k views) after sorting
them by group. The reference then batches the groups of equal size into (B, k, D) tensors and forms each group's
k x k Gram matrix of normalised rows and its pairwise distances. The compiled backends (C++ CPU, Triton, CUDA; custom
ops ``inv_kernels::group_invariance_fwd_<backend>``) run the pair reduction as a kernel that never forms a k x k
matrix: per group, the sums over a < b of the cosines and the distances and the sum of the self-cosines, from which
the three measures follow. Features of every dtype are whitened in float32 (float64 for float64 features), and float32
features in float64 when the statistics are ill-conditioned (as ``invariance_scores``: see its module docstring);
results are float32 (float64 for float64 features).

These are measurements: no backward is registered, and the outputs carry no gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from inv_kernels import _ext
from inv_kernels._triton import tl, triton, triton_interpreting
from inv_kernels._validate import (
    as_tensor,
    check_finite,
    check_nonempty,
    check_positive,
    check_same_device,
    check_tensor,
    max_abs_for_squares,
)
from inv_kernels.backend import resolve_backend
from inv_kernels.ops._library import accumulation_dtype, device_guard, register_backends
from inv_kernels.ops._whitening import EPS, resolve_whitening, scoring_dtype

OP = "group_invariance"
INTEGER_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


@dataclass(frozen=True)
class GroupInvariance:
    """Per-group measures and their means over groups.

    Attributes:
        group_ids: (G,) the distinct group ids, ascending (the order of every per-group tensor).
        sizes: (G,) int64 number of images k of each group.
        cosine_with_diagonal: (G,) mean cosine over all k^2 ordered pairs, self-pairs included (the paper's).
        cosine_off_diagonal: (G,) mean cosine over the k (k - 1) pairs of distinct images.
        distance: (G,) mean Mahalanobis distance over the k (k - 1) / 2 unordered pairs.
        cosine_with_diagonal_mean, cosine_off_diagonal_mean, distance_mean: the means over groups.
    """

    group_ids: Tensor
    sizes: Tensor
    cosine_with_diagonal: Tensor
    cosine_off_diagonal: Tensor
    distance: Tensor
    cosine_with_diagonal_mean: float
    cosine_off_diagonal_mean: float
    distance_mean: float

    @classmethod
    def from_groups(cls, group_ids: Tensor, sizes: Tensor, with_diag: Tensor, off_diag: Tensor, distance: Tensor):
        return cls(
            group_ids,
            sizes,
            with_diag,
            off_diag,
            distance,
            float(with_diag.mean()),
            float(off_diag.mean()),
            float(distance.mean()),
        )

    def to_dict(self, include_groups: bool = True) -> dict[str, Any]:
        """Plain-Python (JSON-ready) summary; the per-group values too unless ``include_groups`` is False."""
        out: dict[str, Any] = {
            "num_groups": int(self.sizes.shape[0]),
            "cosine_with_diagonal_mean": self.cosine_with_diagonal_mean,
            "cosine_off_diagonal_mean": self.cosine_off_diagonal_mean,
            "distance_mean": self.distance_mean,
        }
        if include_groups:
            out["group_ids"] = self.group_ids.detach().cpu().tolist()
            out["sizes"] = self.sizes.detach().cpu().tolist()
            for name in ("cosine_with_diagonal", "cosine_off_diagonal", "distance"):
                out[name] = getattr(self, name).detach().cpu().double().tolist()
        return out


# ----------------------------------------------------------------------------------------------------------------
# Shared preparation: checks, grouping, whitening
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class _Prepared:
    z: Tensor  # (N, D) whitened features sorted by group, accumulation dtype, contiguous
    group_ids: Tensor  # (G,)
    sizes: Tensor  # (G,) int64
    offsets: Tensor  # (G + 1,) int64 row offsets of the groups in z
    device: torch.device
    out_dtype: torch.dtype  # of the results: float32, float64 for float64 features


def _prepare(op: str, features, group_ids, stats, mean, whitening, eps, check_finite_inputs: bool) -> _Prepared:
    check_tensor(op, "features", features, ndim=2, layout="(N, D)")
    check_tensor(op, "group_ids", group_ids, ndim=1, layout="(N,)", dtypes=INTEGER_DTYPES)
    check_nonempty(op, "features", features)
    n, d = features.shape
    if group_ids.shape[0] != n:
        raise ValueError(
            f"{op}: group_ids must have one entry per feature row (N={n}), got shape {tuple(group_ids.shape)}"
        )
    device = check_same_device(op, features=features, group_ids=group_ids)
    check_positive(op, "eps", eps)
    acc = scoring_dtype(op, features.dtype, stats, stacklevel=5)  # via _prepare
    mean_acc, w_acc = resolve_whitening(
        op, stats, mean, whitening, dim=d, acc=acc, device=device, feature_device=device
    )
    if check_finite_inputs:
        check_finite(op, "features", features)
    ids, inverse, counts = torch.unique(group_ids, sorted=True, return_inverse=True, return_counts=True)
    single = counts < 2
    if bool(single.any()):
        lonely = ids[single].tolist()
        listed = ", ".join(str(i) for i in lonely[:10]) + (", ..." if len(lonely) > 10 else "")
        raise ValueError(
            f"{op}: group_ids: group {lonely[0]} has a single image; pairwise measures need at least 2 images per "
            f"group ({len(lonely)} such group(s): ids {listed})"
        )
    order = torch.argsort(inverse, stable=True)  # (N,) rows grouped, groups in ascending id order
    z = (features.detach()[order].to(acc) - mean_acc) @ w_acc  # (N, D) whitened, sorted by group
    if check_finite_inputs:  # finite inputs can still whiten beyond acc's range (huge features or statistics)
        why = f"pairwise distances ({d} terms) overflow {acc}"
        check_finite(op, "z = (features - mean) A", z, max_abs=max_abs_for_squares(acc, d) / 2, why=why)
    offsets = torch.zeros(ids.shape[0] + 1, dtype=torch.int64, device=device)
    offsets[1:] = torch.cumsum(counts, 0)
    return _Prepared(z.contiguous(), ids, counts.to(torch.int64), offsets, device, accumulation_dtype(features.dtype))


def _measures_from_sums(p: _Prepared, sums: Tensor) -> GroupInvariance:
    """The three measures from the kernels' (G, 3) sums over a < b of cos and distance, and of the self-cosines."""
    k = p.sizes.to(sums.dtype)  # (G,)
    pair_cos, pair_dist, self_cos = sums.unbind(1)  # (G,) each
    with_diag = (2 * pair_cos + self_cos) / (k * k)
    off_diag = 2 * pair_cos / (k * (k - 1))
    distance = pair_dist / (k * (k - 1) / 2)
    return _results(p, with_diag, off_diag, distance)


def _results(p: _Prepared, with_diag: Tensor, off_diag: Tensor, distance: Tensor) -> GroupInvariance:
    out = p.out_dtype
    return GroupInvariance.from_groups(p.group_ids, p.sizes, with_diag.to(out), off_diag.to(out), distance.to(out))


# ----------------------------------------------------------------------------------------------------------------
# Reference
# ----------------------------------------------------------------------------------------------------------------
def _measures_ref(p: _Prepared, eps: float) -> GroupInvariance:
    """Groups of equal size batched: k x k Gram of normalised rows, and cdist by differences."""
    g = p.sizes.shape[0]
    acc = p.z.dtype
    with_diag = torch.empty(g, dtype=acc, device=p.device)
    off_diag = torch.empty(g, dtype=acc, device=p.device)
    distance = torch.empty(g, dtype=acc, device=p.device)
    zhat = p.z / torch.linalg.vector_norm(p.z, dim=1, keepdim=True).clamp_min(eps)  # (N, D)
    for size in torch.unique(p.sizes).tolist():
        which = (p.sizes == size).nonzero().squeeze(1)  # (B,) groups of this size
        rows = p.offsets[which][:, None] + torch.arange(size, device=p.device)  # (B, k)
        gram = zhat[rows] @ zhat[rows].mT  # (B, k, k) pairwise cosines
        zg = p.z[rows]  # (B, k, D)
        dist = torch.cdist(zg, zg, compute_mode="donot_use_mm_for_euclid_dist")  # (B, k, k)
        upper = torch.triu_indices(size, size, offset=1, device=p.device)  # (2, k (k - 1) / 2)
        total = gram.sum(dim=(1, 2))  # (B,)
        with_diag[which] = total / size**2
        off_diag[which] = (total - gram.diagonal(dim1=1, dim2=2).sum(dim=1)) / (size * (size - 1))
        distance[which] = dist[:, upper[0], upper[1]].mean(dim=1)
    return _results(p, with_diag, off_diag, distance)


@torch.no_grad()
def group_invariance_ref(
    features: Tensor,
    group_ids: Tensor,
    stats: Any = None,
    *,
    mean: Tensor | None = None,
    whitening: Tensor | None = None,
    eps: float = EPS,
) -> GroupInvariance:
    """Torch reference (the specification): per group, the k x k cosine matrix of whitened rows and pdist.

    Args:
        features: (N, D) floating tensor, one row per image.
        group_ids: (N,) integer tensor on features' device: the group of each row (any values; every group >= 2 rows).
        stats: an object with ``.mean`` and ``.whitening_matrix(dtype=, device=)`` (a FeatureStats), or None.
        mean: (D,) feature mean, when stats is None.
        whitening: (D, D) whitening matrix A with A A^T = Sigma^-1, when stats is None.
        eps: lower clamp of the whitened norms.

    Returns:
        GroupInvariance (float32 tensors, float64 for float64 features).
    """
    return _measures_ref(_prepare(OP, features, group_ids, stats, mean, whitening, eps, True), eps)


# ----------------------------------------------------------------------------------------------------------------
# Triton kernel
# ----------------------------------------------------------------------------------------------------------------
if triton is not None:

    @triton.jit
    def _group_invariance_fwd_kernel(
        z_ptr,  # (N, D) whitened rows sorted by group, contiguous, accumulation dtype
        offsets_ptr,  # (G + 1,) int64 first row of each group, then N
        out_ptr,  # (G, 3) per group: sum over a < b of cos, of |z_a - z_b|; sum of cos(z_a, z_a)
        D,
        eps,  # lower clamp of the norms
        BLOCK_A: tl.constexpr,  # rows per tile of the group
        BLOCK_D: tl.constexpr,  # columns per step of the loop over D
    ):
        # One program per group. For each pair of row tiles (ta <= tb) accumulate over D the dot products, the squared
        # differences and both tiles' squared norms; then add the pairs a < b (and the diagonal's self-cosines).
        acc_dtype = out_ptr.dtype.element_ty
        g = tl.program_id(0)
        start = tl.load(offsets_ptr + g)
        end = tl.load(offsets_ptr + g + 1)
        offs = tl.arange(0, BLOCK_A)
        cos_acc = tl.zeros((BLOCK_A, BLOCK_A), dtype=acc_dtype)
        dist_acc = tl.zeros((BLOCK_A, BLOCK_A), dtype=acc_dtype)
        self_acc = tl.zeros((BLOCK_A, BLOCK_A), dtype=acc_dtype)
        for a0 in range(start, end, BLOCK_A):
            ra = a0 + offs
            ma = ra < end
            for b0 in range(a0, end, BLOCK_A):
                rb = b0 + offs
                mb = rb < end
                dots = tl.zeros((BLOCK_A, BLOCK_A), dtype=acc_dtype)
                d2 = tl.zeros((BLOCK_A, BLOCK_A), dtype=acc_dtype)
                na2 = tl.zeros((BLOCK_A,), dtype=acc_dtype)
                nb2 = tl.zeros((BLOCK_A,), dtype=acc_dtype)
                for d0 in range(0, D, BLOCK_D):
                    cols = d0 + tl.arange(0, BLOCK_D)
                    mc = cols < D
                    za = tl.load(z_ptr + ra[:, None] * D + cols[None, :], mask=ma[:, None] & mc[None, :], other=0.0)
                    zb = tl.load(z_ptr + rb[:, None] * D + cols[None, :], mask=mb[:, None] & mc[None, :], other=0.0)
                    diff = za[:, None, :] - zb[None, :, :]  # (BLOCK_A, BLOCK_A, BLOCK_D)
                    d2 += tl.sum(diff * diff, axis=2)
                    dots += tl.sum(za[:, None, :] * zb[None, :, :], axis=2)
                    na2 += tl.sum(za * za, axis=1)
                    nb2 += tl.sum(zb * zb, axis=1)
                na = tl.maximum(tl.sqrt(na2), eps)
                nb = tl.maximum(tl.sqrt(nb2), eps)
                cos = dots / (na[:, None] * nb[None, :])
                valid = ma[:, None] & mb[None, :]
                pair = valid & (ra[:, None] < rb[None, :])
                cos_acc += tl.where(pair, cos, 0.0)
                dist_acc += tl.where(pair, tl.sqrt(d2), 0.0)
                self_acc += tl.where(valid & (ra[:, None] == rb[None, :]), cos, 0.0)
        tl.store(out_ptr + g * 3, tl.sum(tl.sum(cos_acc, axis=1), axis=0))
        tl.store(out_ptr + g * 3 + 1, tl.sum(tl.sum(dist_acc, axis=1), axis=0))
        tl.store(out_ptr + g * 3 + 2, tl.sum(tl.sum(self_acc, axis=1), axis=0))


# ----------------------------------------------------------------------------------------------------------------
# Launchers: (z (N, D), offsets (G + 1,), eps) -> sums (G, 3)
# ----------------------------------------------------------------------------------------------------------------
def _new_sums(z: Tensor, offsets: Tensor) -> Tensor:
    return z.new_empty((offsets.shape[0] - 1, 3))


def _groups_fwd_cpu(z: Tensor, offsets: Tensor, eps: float) -> Tensor:
    out = _new_sums(z, offsets)
    z, offsets = z.contiguous(), offsets.contiguous()
    n, d = z.shape
    _ext.C.cpu.group_invariance_fwd(
        z.data_ptr(), offsets.data_ptr(), out.data_ptr(), n, out.shape[0], d, _ext.dtype_code(z.dtype), eps
    )
    return out


def _groups_fwd_cuda(z: Tensor, offsets: Tensor, eps: float) -> Tensor:
    out = _new_sums(z, offsets)
    z, offsets = z.contiguous(), offsets.contiguous()
    n, d = z.shape
    _ext.C.cuda.group_invariance_fwd(
        z.data_ptr(),
        offsets.data_ptr(),
        out.data_ptr(),
        n,
        out.shape[0],
        d,
        _ext.dtype_code(z.dtype),
        eps,
        z.device.index,
        _ext.cuda_stream_handle(z.device),
    )
    return out


def _groups_fwd_triton(z: Tensor, offsets: Tensor, eps: float) -> Tensor:
    out = _new_sums(z, offsets)
    z, offsets = z.contiguous(), offsets.contiguous()
    d = z.shape[1]
    if not triton_interpreting():  # spill-free on sm_90 (tests/gpu_compile): 168 registers for float32
        block_a, block_d, warps = 16, (16 if z.dtype == torch.float64 else 32), 4
    else:  # the interpreter: few, large steps
        block_a, block_d, warps = 16, min(128, triton.next_power_of_2(d)), 4
    with device_guard(z):
        _group_invariance_fwd_kernel[(out.shape[0],)](
            z, offsets, out, d, eps, BLOCK_A=block_a, BLOCK_D=block_d, num_warps=warps
        )
    return out


_FWD_SCHEMA = "(Tensor z, Tensor offsets, float eps) -> Tensor"


FWD_OPS, _ = register_backends(
    OP,
    {"cpu": (_groups_fwd_cpu,), "cuda": (_groups_fwd_cuda,), "triton": (_groups_fwd_triton,)},
    fwd=lambda launch, z, offsets, eps: launch(z, offsets, eps),
    fwd_schema=_FWD_SCHEMA,
    fwd_fake=lambda z, offsets, eps: _new_sums(z, offsets),
)


# ----------------------------------------------------------------------------------------------------------------
# Public function
# ----------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def group_invariance(
    features: Tensor,
    group_ids: Tensor,
    stats: Any = None,
    *,
    mean: Tensor | None = None,
    whitening: Tensor | None = None,
    eps: float = EPS,
    backend: str = "auto",
    check_finite_inputs: bool = True,
) -> GroupInvariance:
    """The real-world invariance measure: per group, mean pairwise whitened cosine (with and without self-pairs) and
    mean pairwise Mahalanobis distance; and their means over groups.

    Args:
        features: (N, D) float32, float64, float16 or bfloat16 features, one row per image (a tensor or a NumPy
            array, as group_ids, mean and whitening may be).
        group_ids: (N,) integer tensor on features' device: the group of each row (any values, any order).
        stats: an object with ``.mean`` (D,) and ``.whitening_matrix(dtype=, device=)`` (D, D), such as
            ``inv_kernels.stats.FeatureStats``; or None, with ``mean`` and ``whitening``.
        mean: (D,) feature mean mu.
        whitening: (D, D) whitening matrix A with A A^T = Sigma^-1 (any such A gives the same measures).
        eps: lower clamp of the whitened norms (> 0).
        backend: "auto", "reference", "cpu", "triton" or "cuda" (see inv_kernels.backend).
        check_finite_inputs: raise on NaN/Inf features, and on whitened features that overflow.

    Returns:
        GroupInvariance: per-group tensors (for NumPy inputs too) in ascending group-id order (float32, float64 for float64 features),
        without gradient, and the means over groups.

    Warns:
        IllConditionedWarning: float32 features and statistics whose condition number exceeds FLOAT32_MAX_CONDITION
            (inv_kernels.ops._whitening); the whitening is then computed in float64.

    Raises:
        TypeError: non-tensor, sparse or non-floating features, non-integer group_ids, a bad stats object.
        ValueError: wrong ranks; group_ids not (N,); an empty input; a group of one image (named); mean / whitening
            not (D,) / (D, D); missing or doubly given statistics; tensors on different devices or on the meta
            device; eps <= 0; a whitening matrix too large for the memory available; NaN/Inf.
        RuntimeError: an explicitly requested backend that cannot run here.
    """
    features, group_ids = as_tensor(OP, "features", features), as_tensor(OP, "group_ids", group_ids)
    mean, whitening = as_tensor(OP, "mean", mean), as_tensor(OP, "whitening", whitening)
    prepared = _prepare(OP, features, group_ids, stats, mean, whitening, eps, check_finite_inputs)
    chosen = resolve_backend(backend, features.device, op=OP)
    if chosen == "reference":
        return _measures_ref(prepared, eps)
    sums = FWD_OPS[chosen](prepared.z, prepared.offsets, float(eps))  # (G, 3)
    return _measures_from_sums(prepared, sums)
