"""invariance_scores: the synthetic invariance measures of Ericsson et al. (BMVC 2022), docs/METHOD.md section 4.

For n clean images and k transformed views of each, with feature statistics mu and a whitening matrix A
(A A^T = Sigma^-1, e.g. ``FeatureStats.whitening_matrix()``; any such A gives the same results):

    zc_i  = (c_i  - mu) A                                      (n, D)    whitened clean features
    zv_ij = (v_ij - mu) A                                      (n, k, D) whitened views, never materialised
    cosine[i, j]   = <zc_i, zv_ij> / (max(|zc_i|, eps) max(|zv_ij|, eps))      the whitened cosine
    distance[i, j] = |zc_i - zv_ij| = sqrt((c_i - v_ij) Sigma^-1 (c_i - v_ij)^T)   the Mahalanobis distance

and the paper's reductions: per parameter value j the nanmean over images (``cosine_per_value``, (k,)), then the
mean over values (``cosine_mean``); likewise for the distance. The distance is computed as the norm of the difference
(not |zc|^2 + |zv|^2 - 2 <zc, zv>), so an identical view gives ~0 without cancellation.

Precision: float32 and float64 features are computed in their own precision; float16 / bfloat16 features are
multiplied with A rounded to their dtype and float32 accumulation (the tensor-core recipe), everything else in
float32. Results are float32 (float64 for float64 features).

Ill-conditioned statistics: rounding in z = (f - mu) A grows with sqrt(cond(Sigma)) (up to about 6e-8 sqrt(cond) of
|z| in float32). The clean rows and the views are whitened by different products (torch's for zc, a backend's GEMM
for zv), so that rounding does not cancel between them: at cond = 1e11, float32 products give an identical view a
distance of 0.05 to 0.3 and every score an error near 1e-3. So for float32 features whose statistics report a
condition number (``stats.condition_number``, as FeatureStats records it) above FLOAT32_MAX_CONDITION = 1e6, the
whitening products are computed in float64 on every backend (the features converted exactly, chunk by chunk), the
results cast back to float32, and an IllConditionedWarning says so. Statistics passed as mean= / whitening= tensors
carry no condition number and are used in the features' precision (pass float64 features, or a FeatureStats, for
ill-conditioned ones).

On a GPU the Triton kernel follows ``torch.get_float32_matmul_precision()`` for float32 features: "highest" (torch's
default) multiplies in IEEE float32; "high" / "medium" allow TF32, which is much faster (needed for the H100
throughput target) at about 1e-3 relative error.

Backends: ``invariance_scores_ref`` (torch, the specification), the C++ CPU kernel (a cache-blocked GEMM with the
epilogue fused, ``_C.cpu``), the Triton kernel below (a tiled tensor-core GEMM with the epilogue fused) and the CUDA
kernel (``_C.cuda``, a shared-memory tiled GEMM without tensor cores for now), each registered as
``inv_kernels::invariance_scores_fwd_<backend>``. The compiled backends compute z tile by tile and fold each tile into
per-row sums of zc * zv, zv^2 and (zc - zv)^2, so the (n k, D) whitened views never exist; the GPU ones write one
partial triple per (row, column block), summed by a small second pass (deterministic, no atomics).
The views are processed in chunks of images (``chunk_rows``), so features larger than device memory can be kept on
the CPU (ideally pinned) and streamed to the GPU with ``device="cuda"``.

These are measurements: no backward is registered, and the outputs carry no gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from inv_kernels import _ext
from inv_kernels._triton import matmul_input_precision, tl, triton, triton_interpreting
from inv_kernels._validate import (
    as_tensor,
    check_finite,
    check_nonempty,
    check_positive,
    check_same_device,
    check_same_dtype,
    check_tensor,
)
from inv_kernels.backend import resolve_backend
from inv_kernels.ops._library import accumulation_dtype, device_guard, register_backends, unit_column_stride
from inv_kernels.ops._whitening import (
    EPS,
    HALF_DTYPES,
    check_results_finite,
    operand_whitening,
    resolve_whitening,
    scoring_dtype,
    whiten,
)

OP = "invariance_scores"
# Working memory per chunk of images (views copied to the device, the reference's intermediates, the GPU partials).
CHUNK_BYTES = 256 * 2**20
# Columns of z per program of the GPU kernels (the partials hold one triple per row and block of columns).
TRITON_BLOCK_N = 128
TRITON_BLOCK_N_FP64 = 64
CUDA_BLOCK_N = 64  # csrc/scoring/scoring.h kScoresCudaBlockN


# ----------------------------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InvarianceScores:
    """Per-pair scores and the paper's reductions.

    Attributes:
        cosine: (n, k) whitened cosine of clean image i and its view j.
        distance: (n, k) Mahalanobis distance of the same pairs.
        cosine_per_value: (k,) nanmean over images, per parameter value (view index).
        distance_per_value: (k,) likewise.
        cosine_mean: mean of cosine_per_value over the k values (the per-transform summary).
        distance_mean: mean of distance_per_value.
    """

    cosine: Tensor
    distance: Tensor
    cosine_per_value: Tensor
    distance_per_value: Tensor
    cosine_mean: float
    distance_mean: float

    @classmethod
    def from_pairs(cls, cosine: Tensor, distance: Tensor) -> InvarianceScores:
        """The reductions of the (n, k) per-pair scores, as the reference code (nanmean over images, mean over k)."""
        cos_v = torch.nanmean(cosine, dim=0)  # (k,)
        dist_v = torch.nanmean(distance, dim=0)  # (k,)
        return cls(cosine, distance, cos_v, dist_v, float(cos_v.mean()), float(dist_v.mean()))

    def to_dict(self, include_pairs: bool = False) -> dict[str, Any]:
        """Plain-Python (JSON-ready) summary; the (n, k) per-pair scores only with ``include_pairs``."""
        out: dict[str, Any] = {
            "n": int(self.cosine.shape[0]),
            "k": int(self.cosine.shape[1]),
            "cosine_mean": self.cosine_mean,
            "distance_mean": self.distance_mean,
            "cosine_per_value": self.cosine_per_value.detach().cpu().double().tolist(),
            "distance_per_value": self.distance_per_value.detach().cpu().double().tolist(),
        }
        if include_pairs:
            out["cosine"] = self.cosine.detach().cpu().double().tolist()
            out["distance"] = self.distance.detach().cpu().double().tolist()
        return out


# ----------------------------------------------------------------------------------------------------------------
# Reference
# ----------------------------------------------------------------------------------------------------------------
def _pair_scores_ref(
    views: Tensor, zc: Tensor, mean_acc: Tensor, w_operand: Tensor, eps: float
) -> tuple[Tensor, Tensor]:
    """(cosine, distance), each (c, k), of views (c, k, D) against whitened clean rows zc (c, D)."""
    c, k, d = views.shape
    zv = whiten(views.reshape(c * k, d), mean_acc, w_operand).view(c, k, d)  # (c, k, D)
    nc = torch.linalg.vector_norm(zc, dim=1).clamp_min(eps)  # (c,)
    nv = torch.linalg.vector_norm(zv, dim=2).clamp_min(eps)  # (c, k)
    cosine = (zc[:, None, :] * zv).sum(dim=2) / (nc[:, None] * nv)  # (c, k)
    distance = torch.linalg.vector_norm(zc[:, None, :] - zv, dim=2)  # (c, k)
    return cosine, distance


@torch.no_grad()
def invariance_scores_ref(
    clean: Tensor,
    views: Tensor,
    stats: Any = None,
    *,
    mean: Tensor | None = None,
    whitening: Tensor | None = None,
    eps: float = EPS,
) -> InvarianceScores:
    """Torch reference (the specification): whitens every view in full, then the formulas of the module docstring.

    Args:
        clean: (n, D) floating tensor, the clean images' features.
        views: (n, k, D) tensor of clean's dtype and device, the transformed views' features.
        stats: an object with ``.mean`` and ``.whitening_matrix(dtype=, device=)`` (a FeatureStats), or None.
        mean: (D,) feature mean, when stats is None.
        whitening: (D, D) whitening matrix A with A A^T = Sigma^-1, when stats is None.
        eps: lower clamp of the whitened norms.

    Returns:
        InvarianceScores (tensors in float32, or float64 for float64 features; ill-conditioned statistics as in the
        module docstring).
    """
    acc = scoring_dtype(OP, views.dtype, stats)
    mean_acc, w_acc = resolve_whitening(
        OP, stats, mean, whitening, dim=clean.shape[1], acc=acc, device=clean.device, feature_device=clean.device
    )
    w_op = operand_whitening(w_acc, views.dtype)
    zc = whiten(clean, mean_acc, w_op)  # (n, D)
    out = accumulation_dtype(views.dtype)
    return InvarianceScores.from_pairs(*(t.to(out) for t in _pair_scores_ref(views, zc, mean_acc, w_op, eps)))


def _finish_partials(partials: Tensor, zc: Tensor, k: int, eps: float) -> tuple[Tensor, Tensor]:
    """(cosine, distance), each (c, k), from the GPU kernels' partial sums (c k, NB, 3) of zc zv, zv^2, (zc - zv)^2."""
    c = zc.shape[0]
    sums = partials.sum(dim=1)  # (c k, 3)
    nc = torch.linalg.vector_norm(zc, dim=1).clamp_min(eps).repeat_interleave(k)  # (c k,)
    cosine = sums[:, 0] / (nc * sums[:, 1].sqrt().clamp_min(eps))  # (c k,)
    distance = sums[:, 2].clamp_min(0).sqrt()  # (c k,)
    return cosine.view(c, k), distance.view(c, k)


def _new_outputs(views: Tensor, zc: Tensor) -> tuple[Tensor, Tensor]:
    c, k, _ = views.shape
    return zc.new_empty((c, k)), zc.new_empty((c, k))


# ----------------------------------------------------------------------------------------------------------------
# Triton kernel
# ----------------------------------------------------------------------------------------------------------------
if triton is not None:

    @triton.jit
    def _invariance_scores_fwd_kernel(
        views_ptr,  # (c, k, D) view features, unit column stride
        w_ptr,  # (D, D) whitening matrix A in the dot dtype (the features' dtype; float32 in the interpreter)
        mua_ptr,  # (D,) mu A in the accumulation dtype
        zc_ptr,  # (c, D) whitened clean features, accumulation dtype, contiguous
        part_ptr,  # (c k, NB, 3) partial sums, accumulation dtype, contiguous
        M,  # c k view rows
        K_VIEWS,  # k: view row r belongs to clean row r // k
        D,
        stride_img,  # views stride of the image axis, elements
        stride_view,  # views stride of the view axis, elements
        NB,  # column blocks: cdiv(D, BLOCK_N)
        INPUT_PRECISION: tl.constexpr,  # tl.dot precision for float32 ("ieee" or "tf32"); None for half types
        BLOCK_M: tl.constexpr,  # view rows per program
        BLOCK_N: tl.constexpr,  # columns of z per program
        BLOCK_K: tl.constexpr,  # depth of a step of the K loop
        GROUP_M: tl.constexpr,  # row blocks per group of the L2-friendly program order
    ):
        # One program computes a BLOCK_M x BLOCK_N tile of v A with fp32 (fp64) accumulation, then
        # z = v A - mu A, and folds the tile into per-row partial sums over its columns:
        #   part[r, pid_n] = (sum_j zc[r // k, j] z[r, j], sum_j z[r, j]^2, sum_j (zc[r // k, j] - z[r, j])^2).
        # Subtracting mu A in the epilogue keeps the load -> dot path direct; v is exact in its own dtype and mu A is
        # computed in float64, so this is (v - mu) A up to the accumulation's rounding.
        acc_dtype = part_ptr.dtype.element_ty
        pid = tl.program_id(0)
        num_pid_m = tl.cdiv(M, BLOCK_M)
        num_pid_n = tl.cdiv(D, BLOCK_N)
        num_pid_in_group = GROUP_M * num_pid_n
        group_id = pid // num_pid_in_group
        first_pid_m = group_id * GROUP_M
        group_size_m = tl.minimum(num_pid_m - first_pid_m, GROUP_M)
        pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)
        pid_n = (pid % num_pid_in_group) // group_size_m

        rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        row_mask = rows < M
        rows64 = rows.to(tl.int64)
        img = rows64 // K_VIEWS
        row_off = img * stride_img + (rows64 - img * K_VIEWS) * stride_view  # (BLOCK_M,)
        cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        col_mask = cols < D

        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=acc_dtype)
        for k0 in range(0, D, BLOCK_K):
            ks = k0 + tl.arange(0, BLOCK_K)
            k_mask = ks < D
            v = tl.load(views_ptr + row_off[:, None] + ks[None, :], mask=row_mask[:, None] & k_mask[None, :], other=0.0)
            a = tl.load(
                w_ptr + ks.to(tl.int64)[:, None] * D + cols[None, :],
                mask=k_mask[:, None] & col_mask[None, :],
                other=0.0,
            )
            # out_dtype named: Triton 3.6 requires it to match a float64 accumulator
            acc = tl.dot(v.to(w_ptr.dtype.element_ty), a, acc, input_precision=INPUT_PRECISION, out_dtype=acc_dtype)

        mua = tl.load(mua_ptr + cols, mask=col_mask, other=0.0)
        z = acc - mua[None, :]  # (BLOCK_M, BLOCK_N) whitened views; 0 in masked columns
        q = tl.load(zc_ptr + img[:, None] * D + cols[None, :], mask=row_mask[:, None] & col_mask[None, :], other=0.0)
        t = q - z
        base = part_ptr + (rows64 * NB + pid_n) * 3
        tl.store(base, tl.sum(q * z, axis=1), mask=row_mask)
        tl.store(base + 1, tl.sum(z * z, axis=1), mask=row_mask)
        tl.store(base + 2, tl.sum(t * t, axis=1), mask=row_mask)

    # GPU launch: BLOCK_N fixed per dtype (it sets the partials' shape); the rest tuned per (D, dtypes, precision).
    # Checked by compiling for sm_90 / sm_80 without a device (D = 2048): none spills registers (128 x 128 tiles
    # take 180-240 registers with 8 warps; 4 warps or BLOCK_M = 256 spill, so they are not listed), bf16 and TF32
    # lower to wgmma with a cp.async pipeline. Shared memory per config, bf16 / float32: 96 / 192, 128 / 256,
    # 64 / 128, 96 / 192 and 32 / 48 KB; the autotuner skips those that exceed the card (float32 on an A100).
    _invariance_scores_fwd_kernel_tuned = triton.autotune(
        configs=[
            triton.Config({"BLOCK_M": 128, "BLOCK_K": 64, "GROUP_M": 8}, num_warps=8, num_stages=3),
            triton.Config({"BLOCK_M": 128, "BLOCK_K": 64, "GROUP_M": 8}, num_warps=8, num_stages=4),
            triton.Config({"BLOCK_M": 128, "BLOCK_K": 32, "GROUP_M": 8}, num_warps=8, num_stages=4),
            triton.Config({"BLOCK_M": 64, "BLOCK_K": 64, "GROUP_M": 8}, num_warps=4, num_stages=4),
            triton.Config({"BLOCK_M": 64, "BLOCK_K": 32, "GROUP_M": 8}, num_warps=4, num_stages=2),
        ],
        key=["D", "INPUT_PRECISION"],
    )(_invariance_scores_fwd_kernel)
    # float64 (FMA, no tensor cores): small tiles, or the (BLOCK, BLOCK) double accumulators spill.
    _invariance_scores_fwd_kernel_tuned_fp64 = triton.autotune(
        configs=[
            triton.Config({"BLOCK_M": 64, "BLOCK_K": 32, "GROUP_M": 8}, num_warps=4, num_stages=2),
            triton.Config({"BLOCK_M": 32, "BLOCK_K": 32, "GROUP_M": 8}, num_warps=4, num_stages=3),
        ],
        key=["D"],
    )(_invariance_scores_fwd_kernel)


def _interpreter_blocks(m: int, d: int) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K) for the CPU interpreter: large blocks (few, slow programs); tl.dot needs >= 16."""
    p2 = triton.next_power_of_2
    return max(16, min(64, p2(m))), max(16, min(128, p2(d))), max(16, min(128, p2(d)))


# ----------------------------------------------------------------------------------------------------------------
# Launchers: (views (c, k, D), zc (c, D), mean (D,), whitening (D, D), eps) -> (cosine (c, k), distance (c, k))
# ----------------------------------------------------------------------------------------------------------------
def _scores_fwd_cpu(views: Tensor, zc: Tensor, mean: Tensor, whitening: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    c, k, d = views.shape
    cosine, distance = _new_outputs(views, zc)
    zc, mean = zc.contiguous(), mean.contiguous()
    w = whitening.to(zc.dtype).contiguous()  # half inputs: A rounded to their dtype, multiplied in float32
    _ext.C.cpu.invariance_scores_fwd(
        views.data_ptr(),
        views.stride(0),
        views.stride(1),
        zc.data_ptr(),
        mean.data_ptr(),
        w.data_ptr(),
        cosine.data_ptr(),
        distance.data_ptr(),
        c,
        k,
        d,
        _ext.dtype_code(views.dtype),
        eps,
    )
    return cosine, distance


def _scores_fwd_cuda(views: Tensor, zc: Tensor, mean: Tensor, whitening: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    c, k, d = views.shape
    nb = -(-d // CUDA_BLOCK_N)
    zc, mean = zc.contiguous(), mean.contiguous()
    w = whitening.to(zc.dtype).contiguous()
    partials = torch.empty((c * k, nb, 3), dtype=zc.dtype, device=zc.device)  # (c k, NB, 3)
    _ext.C.cuda.invariance_scores_fwd(
        views.data_ptr(),
        views.stride(0),
        views.stride(1),
        zc.data_ptr(),
        mean.data_ptr(),
        w.data_ptr(),
        partials.data_ptr(),
        nb,
        c,
        k,
        d,
        _ext.dtype_code(views.dtype),
        views.device.index,
        _ext.cuda_stream_handle(views.device),
    )
    return _finish_partials(partials, zc, k, eps)


def _scores_fwd_triton(views: Tensor, zc: Tensor, mean: Tensor, whitening: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    c, k, d = views.shape
    m = c * k
    acc = zc.dtype
    zc = zc.contiguous()
    interpreting = triton_interpreting()
    # mu A in float64, so that v A - mu A cancels accurately whatever the matmul precision.
    mua = (mean.double() @ whitening.double()).to(acc).contiguous()  # (D,)
    # The interpreter's bf16 tl.dot is broken: multiply the (exact) half values in float32 there.
    w = whitening.to(acc) if interpreting and views.dtype in HALF_DTYPES else whitening
    w = w.contiguous()
    precision = matmul_input_precision(views.dtype)
    with device_guard(views):
        if interpreting:
            block_m, block_n, block_k = _interpreter_blocks(m, d)
            nb = triton.cdiv(d, block_n)
            partials = torch.empty((m, nb, 3), dtype=acc, device=views.device)
            grid = (triton.cdiv(m, block_m) * nb,)
            _invariance_scores_fwd_kernel[grid](
                views,
                w,
                mua,
                zc,
                partials,
                m,
                k,
                d,
                views.stride(0),
                views.stride(1),
                nb,
                INPUT_PRECISION=precision,
                BLOCK_M=block_m,
                BLOCK_N=block_n,
                BLOCK_K=block_k,
                GROUP_M=8,
            )
        else:
            fp64 = views.dtype == torch.float64
            block_n = TRITON_BLOCK_N_FP64 if fp64 else TRITON_BLOCK_N
            kernel = _invariance_scores_fwd_kernel_tuned_fp64 if fp64 else _invariance_scores_fwd_kernel_tuned
            nb = triton.cdiv(d, block_n)
            partials = torch.empty((m, nb, 3), dtype=acc, device=views.device)

            def grid(meta):
                return (triton.cdiv(m, meta["BLOCK_M"]) * nb,)

            kernel[grid](
                views,
                w,
                mua,
                zc,
                partials,
                m,
                k,
                d,
                views.stride(0),
                views.stride(1),
                nb,
                INPUT_PRECISION=precision,
                BLOCK_N=block_n,
            )
    return _finish_partials(partials, zc, k, eps)


# ----------------------------------------------------------------------------------------------------------------
# torch.library registration: one forward custom op per compiled backend (no backward: a measurement)
# ----------------------------------------------------------------------------------------------------------------
_FWD_SCHEMA = "(Tensor views, Tensor zc, Tensor mean, Tensor whitening, float eps) -> (Tensor, Tensor)"


FWD_OPS, _ = register_backends(
    OP,
    {"cpu": (_scores_fwd_cpu,), "cuda": (_scores_fwd_cuda,), "triton": (_scores_fwd_triton,)},
    fwd=lambda launch, views, zc, mean, whitening, eps: launch(views, zc, mean, whitening, eps),
    fwd_schema=_FWD_SCHEMA,
    fwd_fake=lambda views, zc, mean, whitening, eps: _new_outputs(views, zc),
)


# ----------------------------------------------------------------------------------------------------------------
# Public function
# ----------------------------------------------------------------------------------------------------------------
def _default_chunk_rows(
    backend: str, n: int, k: int, d: int, dtype: torch.dtype, acc: torch.dtype, streamed: bool, device: torch.device
) -> int:
    """Images per chunk so that a chunk's working memory stays within CHUNK_BYTES (views of ``dtype`` whitened in
    ``acc``)."""
    acc_bytes = acc.itemsize
    per_image = k * d * dtype.itemsize if streamed else 0
    if backend != "reference" and acc != accumulation_dtype(dtype):
        per_image += k * d * acc_bytes  # the views converted for float64 products
    if backend == "reference":
        per_image += 4 * k * d * acc_bytes  # centred views, zv, and two (k, D) temporaries
    elif backend == "triton":
        block_n = TRITON_BLOCK_N_FP64 if device.type == "cuda" else 16  # the smallest block used there
        per_image += k * -(-d // block_n) * 3 * acc_bytes  # the partials
    elif backend == "cuda":
        per_image += k * -(-d // CUDA_BLOCK_N) * 3 * acc_bytes
    if per_image == 0:
        return n
    return max(1, min(n, CHUNK_BYTES // per_image))


@torch.no_grad()
def invariance_scores(
    clean: Tensor,
    views: Tensor,
    stats: Any = None,
    *,
    mean: Tensor | None = None,
    whitening: Tensor | None = None,
    eps: float = EPS,
    backend: str = "auto",
    chunk_rows: int | None = None,
    device: torch.device | str | None = None,
    check_finite_inputs: bool = True,
) -> InvarianceScores:
    """Whitened cosine and Mahalanobis distance of every (clean image, view) pair, and the paper's reductions.

    Args:
        clean: (n, D) float32, float64, float16 or bfloat16 features of the clean images, n, D >= 1 (tensors or
            NumPy arrays, here and for views, mean and whitening).
        views: (n, k, D) features of k transformed views per image (clean's dtype and device, k >= 1); any strides
            (a stride-0 expanded tensor is fine).
        stats: an object with ``.mean`` (D,) and ``.whitening_matrix(dtype=, device=)`` (D, D), such as
            ``inv_kernels.stats.FeatureStats``; or None, with ``mean`` and ``whitening``.
        mean: (D,) feature mean mu.
        whitening: (D, D) whitening matrix A with A A^T = Sigma^-1 (any such A gives the same scores).
        eps: lower clamp of the whitened norms in the cosine (> 0).
        backend: "auto", "reference", "cpu", "triton" or "cuda" (see inv_kernels.backend), chosen for ``device``.
        chunk_rows: images per chunk of views (default: a chunk's working memory about 256 MiB).
        device: where to compute (default: the features' device). With CPU features and a CUDA device, the views
            are copied chunk by chunk (pin them for asynchronous copies), so they may exceed the GPU's memory.
        check_finite_inputs: raise on NaN/Inf features (one extra read; streamed views are checked per chunk), and
            on scores that overflow (features or statistics too large for the whitening's dtype).

    Returns:
        InvarianceScores (tensors, for NumPy inputs too) on the compute device: cosine and distance (n, k), their per-value nanmeans (k,) and the
        summaries; float32 tensors (float64 for float64 features), without gradient.

    Warns:
        IllConditionedWarning: float32 features and statistics whose condition number exceeds
            FLOAT32_MAX_CONDITION; the whitening products are then computed in float64 (module docstring).

    Raises:
        TypeError: non-tensor, sparse or non-floating features, clean and views of different dtypes, a bad stats
            object.
        ValueError: wrong ranks; views not (n, k, D) for clean (n, D); k = 0 or an empty input; mean / whitening
            not (D,) / (D, D); missing or doubly given statistics; tensors on different devices or on the meta
            device; eps <= 0; chunk_rows < 1; a whitening matrix too large for the memory available; NaN/Inf in the
            features or statistics.
        RuntimeError: an explicitly requested backend that cannot run here.
    """
    clean, views = as_tensor(OP, "clean", clean), as_tensor(OP, "views", views)
    mean, whitening = as_tensor(OP, "mean", mean), as_tensor(OP, "whitening", whitening)
    check_tensor(OP, "clean", clean, ndim=2, layout="(n, D)")
    check_tensor(OP, "views", views, ndim=3, layout="(n, k, D)")
    check_same_dtype(OP, clean=clean, views=views)
    n, d = clean.shape
    if views.shape[0] != n or views.shape[2] != d:
        raise ValueError(
            f"{OP}: views must have shape (n, k, D) with n={n} and D={d} from clean {tuple(clean.shape)}, "
            f"got {tuple(views.shape)}"
        )
    check_nonempty(OP, "clean", clean)
    k = views.shape[1]
    if k == 0:
        raise ValueError(f"{OP}: views has k=0 views per image (shape {tuple(views.shape)}); expected k >= 1")
    feature_device = check_same_device(OP, clean=clean, views=views)
    compute_device = feature_device if device is None else torch.device(device)
    if compute_device.type == "cuda" and compute_device.index is None:
        compute_device = torch.device("cuda", torch.cuda.current_device())
    check_positive(OP, "eps", eps)
    if chunk_rows is not None and (isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1):
        raise ValueError(f"{OP}: chunk_rows must be a positive int or None, got {chunk_rows!r}")
    acc = scoring_dtype(OP, views.dtype, stats)
    mean_acc, w_acc = resolve_whitening(
        OP, stats, mean, whitening, dim=d, acc=acc, device=compute_device, feature_device=feature_device
    )
    streamed = compute_device != feature_device
    if check_finite_inputs:
        check_finite(OP, "clean", clean)
        if not streamed:
            check_finite(OP, "views", views)
    # On a GPU the Triton kernel (tensor-core tiles, autotuned) is the tuned path; the CUDA kernel is a simple
    # CUDA-core GEMM (csrc/scoring/scoring_cuda.cu).
    chosen = resolve_backend(backend, compute_device, op=OP, gpu_order=("triton", "cuda"))

    clean, views = clean.detach(), views.detach()
    w_op = operand_whitening(w_acc, views.dtype)  # (D, D)
    zc = whiten(clean.to(compute_device), mean_acc, w_op)  # (n, D) in acc
    rows = chunk_rows or _default_chunk_rows(chosen, n, k, d, views.dtype, acc, streamed, compute_device)
    cosine = torch.empty((n, k), dtype=acc, device=compute_device)  # (n, k)
    distance = torch.empty((n, k), dtype=acc, device=compute_device)  # (n, k)
    for i0 in range(0, n, rows):
        i1 = min(n, i0 + rows)
        chunk = views[i0:i1]  # (c, k, D)
        if streamed:
            # non-blocking only towards a GPU: a non-blocking copy to the CPU may not have landed when read
            chunk = chunk.to(compute_device, non_blocking=compute_device.type == "cuda")
            if check_finite_inputs:
                check_finite(OP, f"views[{i0}:{i1}]", chunk)
        if chosen == "reference":
            cos_c, dist_c = _pair_scores_ref(chunk, zc[i0:i1], mean_acc, w_op, eps)
        else:
            chunk = chunk.to(acc) if acc == torch.float64 else chunk  # float64 products: the kernels read float64
            cos_c, dist_c = FWD_OPS[chosen](unit_column_stride(chunk), zc[i0:i1], mean_acc, w_op, float(eps))
        cosine[i0:i1] = cos_c
        distance[i0:i1] = dist_c
    if check_finite_inputs:
        check_results_finite(OP, acc, cosine=cosine, distance=distance)
    out = accumulation_dtype(views.dtype)
    return InvarianceScores.from_pairs(cosine.to(out), distance.to(out))
