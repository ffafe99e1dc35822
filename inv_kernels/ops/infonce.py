"""Contrastive losses: MoCo's InfoNCE against a queue and SimCLR's NT-Xent, fused without materialising the logits.

MoCo v2 (``infonce_loss``): rows q (N, D), candidates of row i are its positive k_i and the K queue rows:

    s_ij = q_i . c_j / T,   loss_i = lse_i - s_i+,   lse_i = log(exp(s_i+) + sum_j exp(q_i . queue_j / T))

SimCLR (``ntxent_loss``): z = [z1; z2] (2N, D); row i's candidates are every other row, its positive row
(i + N) mod 2N; the loss is the mean over all 2N rows.

The kernels build the loss the way flash attention builds attention: the candidates stream through in tiles, each
row keeps an online log-sum-exp in fp32 (log2 units: exp2 with log2(e) folded into 1/T), the forward saves only
lse (M,), and the backward recomputes the logits tile by tile:

    p_ij = exp(s_ij - lse_i)
    MoCo:    dq_i = (g_i / T) (sum_j p_ij c_j - k_i)           (c over the positive and the queue)
             dk_i = (g_i / T) (p_i+ - 1) q_i                     (the queue is detached: no gradient)
    NT-Xent: dz_m = (1 / T) (sum_{j != m} (g_m p_mj + g_j p_jm) z_j - (g_m + g_pos(m)) z_pos(m))

(the row and column terms in one pass: s is symmetric, so p_jm = exp(s_mj - lse_j); deterministic, no atomics).
No N x K or 2N x 2N buffer exists in any compiled backend: extra memory is O(N + K) plus per-thread (CPU) or
per-program (GPU) tiles.

Top-1 accuracy: a row is correct when its positive logit is >= every other candidate's (ties count as correct, in
every compiled backend and in this module's per-row reference; ``infonce_loss_ref`` / ``ntxent_loss_ref`` use
argmax, which breaks ties by the first index: the same for MoCo, where the positive is first).

Rows of zeros: without ``normalize`` a zero row has all logits 0, so its loss is log(number of candidates)
(log(1 + K) for MoCo, log(2N - 1) for NT-Xent). With ``normalize=True`` rows are L2-normalised by
``F.normalize`` (eps 1e-12), which maps a zero row to zero: the same finite loss, and a finite (zero-row) gradient.
Never NaN.

Precision: float32 inputs are multiplied in IEEE float32 under torch's default matmul precision ("highest"); under
``torch.set_float32_matmul_precision("high")`` the Triton kernels multiply in TF32 on tensor cores (about 1e-3
relative error in the logits), as torch's own float32 matmuls then do. float16 / bfloat16 products are exact.

Backends: the torch references (materialised logits: the specification), the C++ CPU kernel (``_C.cpu``: register-
tiled AVX2/AVX-512 products, OpenMP over row blocks), the Triton kernels below (the GPU path: tensor-core tiles,
split-K over long queues) and a simple CUDA kernel (``_C.cuda``: one warp per row, shared-memory candidate tiles;
correct by construction but untuned), registered as ``inv_kernels::{infonce,ntxent}_{fwd,bwd}_<backend>``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from inv_kernels import _ext
from inv_kernels._triton import matmul_input_precision, tl, triton, triton_interpreting
from inv_kernels._validate import (
    check_finite,
    check_nonempty,
    check_positive,
    check_same_device,
    check_same_dtype,
    check_same_shape,
    check_tensor,
    max_abs_for_squares,
)
from inv_kernels.backend import ENV_VAR, resolve_backend
from inv_kernels.ops._library import accumulation_dtype, device_guard, register_backends

OP_INFONCE = "infonce_loss"
OP_NTXENT = "ntxent_loss"
LOG2E = 1.4426950408889634
REDUCTIONS = ("mean", "sum", "none")


# ----------------------------------------------------------------------------------------------------------------
# torch references (materialised logits)
# ----------------------------------------------------------------------------------------------------------------
def infonce_loss_ref(
    q: Tensor, k: Tensor, queue: Tensor | None, temperature: float, *, reduction: str = "mean"
) -> tuple[Tensor, Tensor]:
    """MoCo v2 InfoNCE: positives q_i . k_i, negatives q_i . queue_j, all divided by the temperature.

    Args:
        q: (N, D) queries (L2-normalised by the caller, as MoCo does).
        k: (N, D) positive keys.
        queue: (K, D) negative keys, or None for no negatives beyond the batch's own positive.
        temperature: > 0.
        reduction: "mean" (default), "sum" or "none" (per-row losses, (N,)).

    Returns:
        (loss, accuracy): the mean cross-entropy with the positive at index 0, a 0-dim tensor; and the fraction of
        rows whose positive logit is the largest (top-1), a 0-dim float tensor without gradient.
    """
    positives = (q * k).sum(dim=1, keepdim=True)  # (N, 1)
    if queue is None:
        logits = positives
    else:
        negatives = q @ queue.detach().to(q.dtype).t()  # (N, K)
        logits = torch.cat([positives, negatives], dim=1)  # (N, 1 + K)
    logits = logits / temperature
    labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    loss = F.cross_entropy(logits.float(), labels, reduction=reduction)
    accuracy = (logits.detach().argmax(dim=1) == 0).float().mean()
    return loss, accuracy


def ntxent_loss_ref(z1: Tensor, z2: Tensor, temperature: float, *, reduction: str = "mean") -> tuple[Tensor, Tensor]:
    """SimCLR NT-Xent: 2N x 2N cosine logits with self-pairs masked; row i's positive is its other view.

    Args:
        z1: (N, D) first views' embeddings (L2-normalised by the caller).
        z2: (N, D) second views' embeddings.
        temperature: > 0.
        reduction: "mean" (default), "sum" or "none" (per-row losses, (2N,): z1's rows then z2's).

    Returns:
        (loss, accuracy) as infonce_loss_ref, averaged over all 2N rows.
    """
    n = z1.shape[0]
    z = torch.cat([z1, z2], dim=0)  # (2N, D)
    logits = (z @ z.t()) / temperature  # (2N, 2N)
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)  # (2N,)
    loss = F.cross_entropy(logits.float(), targets, reduction=reduction)
    accuracy = (logits.detach().argmax(dim=1) == targets).float().mean()
    return loss, accuracy


def _infonce_rows_ref(q: Tensor, k: Tensor, queue: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """Per-row reference with the kernels' conventions: (loss (N,), correct (N,)) in the accumulation dtype,
    float64 kept for float64 inputs, ties counted as correct. queue: (K, D), K may be 0."""
    acc = accumulation_dtype(q.dtype)
    positives = (q * k).sum(dim=1, keepdim=True)  # (N, 1)
    negatives = q @ queue.detach().to(q.dtype).t()  # (N, K)
    logits = (torch.cat([positives, negatives], dim=1) / temperature).to(acc)  # (N, 1 + K)
    loss = torch.logsumexp(logits, dim=1) - logits[:, 0]  # (N,)
    best_other = logits.detach()[:, 1:].amax(dim=1) if queue.shape[0] > 0 else None
    correct = torch.ones_like(loss) if best_other is None else (logits.detach()[:, 0] >= best_other).to(acc)
    return loss, correct.detach()


def _ntxent_rows_ref(z1: Tensor, z2: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """Per-row NT-Xent reference: (loss (2N,), correct (2N,)) as _infonce_rows_ref."""
    n = z1.shape[0]
    acc = accumulation_dtype(z1.dtype)
    z = torch.cat([z1, z2], dim=0)  # (2N, D)
    logits = ((z @ z.t()) / temperature).to(acc)  # (2N, 2N)
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)  # (2N,)
    positive = logits.gather(1, targets[:, None])[:, 0]  # (2N,)
    loss = torch.logsumexp(logits, dim=1) - positive
    others = logits.detach().scatter(1, targets[:, None], float("-inf"))
    correct = (positive.detach() >= others.amax(dim=1)).to(acc)
    return loss, correct


# ----------------------------------------------------------------------------------------------------------------
# Triton kernels (SYM=False: MoCo against a queue; SYM=True: NT-Xent, candidates = the rows themselves).
# The candidates may be split into S contiguous ranges (grid axis 1, flash-decoding's split-K) so that a small batch
# against a long queue (MoCo: N=256, K=65536) still fills the GPU: the forward writes per-split partial (max, sum)
# pairs (S, M) that _infonce_combine_kernel merges; the backward writes per-split partial gradients (S, M, D) in fp32
# that are summed (S = 1 writes the gradient directly). Extra memory: O(S (M + M D)), never M x K.
# ----------------------------------------------------------------------------------------------------------------
if triton is not None:

    @triton.jit
    def _infonce_fwd_kernel(
        x_ptr,  # (M, D) rows, contiguous
        k_ptr,  # (M, D) MoCo positives, contiguous (unused when SYM)
        c_ptr,  # (K, D) candidates, contiguous: the queue, or x when SYM
        pos_ptr,  # (M,) positive logit in log2 units, accumulation dtype (written by split 0)
        part_m_ptr,  # (S, M) running max over this split's negatives, log2 units (-inf for none)
        part_l_ptr,  # (S, M) sum of 2^(s - max) over this split's negatives
        M,
        K,  # number of candidates (M when SYM)
        D,
        HALF,  # N = M / 2 when SYM: row i's positive is row (i + HALF) mod M
        SPLIT_LEN,  # candidates per split, a multiple of BLOCK_N
        scale2,  # log2(e) / T: logits in log2 units
        SYM: tl.constexpr,
        CAST: tl.constexpr,  # cast tiles to the accumulation dtype before tl.dot (interpreter, float64)
        INPUT_PRECISION: tl.constexpr,  # tl.dot's: "ieee", or "tf32" for float32 under torch's "high" precision
        BLOCK_M: tl.constexpr,  # rows per program
        BLOCK_N: tl.constexpr,  # candidates per tile
        BLOCK_D: tl.constexpr,  # >= D: the whole feature dimension in one tile
    ):
        # Online log-sum-exp over the split's candidate tiles (the positive excluded, added by the combine):
        # m' = max(m, max_j s_j), l' = l 2^(m - m') + sum_j 2^(s_j - m'), guarded for rows with no candidate yet.
        acc_dtype = pos_ptr.dtype.element_ty
        pid_s = tl.program_id(1)
        rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        row_mask = rows < M
        rows64 = rows.to(tl.int64)
        dcols = tl.arange(0, BLOCK_D)
        dmask = dcols < D
        xm = row_mask[:, None] & dmask[None, :]
        xt = tl.load(x_ptr + rows64[:, None] * D + dcols[None, :], mask=xm, other=0.0)
        if SYM:
            prow = (rows + HALF) % M
            pt = tl.load(x_ptr + prow.to(tl.int64)[:, None] * D + dcols[None, :], mask=xm, other=0.0)
        else:
            prow = rows
            pt = tl.load(k_ptr + rows64[:, None] * D + dcols[None, :], mask=xm, other=0.0)
        pos2 = tl.sum(xt.to(acc_dtype) * pt.to(acc_dtype), axis=1) * scale2
        tl.store(pos_ptr + rows64, pos2, mask=row_mask & (pid_s == 0))
        if CAST:
            xt = xt.to(acc_dtype)
        m_i = tl.full([BLOCK_M], float("-inf"), dtype=acc_dtype)
        l_i = tl.zeros([BLOCK_M], dtype=acc_dtype)
        k_lo = pid_s * SPLIT_LEN
        k_hi = tl.minimum(K, k_lo + SPLIT_LEN)
        for start in range(k_lo, k_hi, BLOCK_N):
            cols = start + tl.arange(0, BLOCK_N)
            cmask = cols < k_hi
            ct = tl.load(
                c_ptr + cols.to(tl.int64)[:, None] * D + dcols[None, :], mask=cmask[:, None] & dmask[None, :], other=0.0
            )
            if CAST:
                ct = ct.to(acc_dtype)
            # (BLOCK_M, BLOCK_N)
            s = tl.dot(xt, tl.trans(ct), input_precision=INPUT_PRECISION, out_dtype=acc_dtype) * scale2
            keep = cmask[None, :] & row_mask[:, None]
            if SYM:
                keep = keep & (cols[None, :] != rows[:, None]) & (cols[None, :] != prow[:, None])
            s = tl.where(keep, s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, axis=1))
            m_use = tl.where(m_new == float("-inf"), 0.0, m_new)  # no candidate yet: avoid -inf - -inf
            l_i = l_i * tl.exp2(m_i - m_use) + tl.sum(tl.exp2(s - m_use[:, None]), axis=1)
            m_i = m_new
        tl.store(part_m_ptr + pid_s * M + rows64, m_i, mask=row_mask)
        tl.store(part_l_ptr + pid_s * M + rows64, l_i, mask=row_mask)

    @triton.jit
    def _infonce_combine_kernel(
        pos_ptr,  # (M,) positive logits, log2 units
        part_m_ptr,  # (S, M)
        part_l_ptr,  # (S, M)
        loss_ptr,  # (M,) lse - positive, natural units
        lse_ptr,  # (M,) natural log-sum-exp
        correct_ptr,  # (M,) 1 where the positive is >= every negative (ties count)
        M,
        S,
        BLOCK: tl.constexpr,
    ):
        # m = max(pos, max_s m_s); l = 2^(pos - m) + sum_s l_s 2^(m_s - m); lse = (m + log2 l) ln 2.
        rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = rows < M
        pos2 = tl.load(pos_ptr + rows, mask=mask, other=0.0)
        mneg = tl.full([BLOCK], float("-inf"), dtype=pos2.dtype)
        for s in range(0, S):
            mneg = tl.maximum(mneg, tl.load(part_m_ptr + s * M + rows, mask=mask, other=float("-inf")))
        m = tl.maximum(pos2, mneg)
        l_i = tl.exp2(pos2 - m)
        for s in range(0, S):
            ms = tl.load(part_m_ptr + s * M + rows, mask=mask, other=float("-inf"))
            ls = tl.load(part_l_ptr + s * M + rows, mask=mask, other=0.0)
            l_i += ls * tl.exp2(ms - m)
        lse2 = m + tl.log2(l_i)
        tl.store(lse_ptr + rows, lse2 * 0.6931471805599453, mask=mask)
        tl.store(loss_ptr + rows, (lse2 - pos2) * 0.6931471805599453, mask=mask)
        tl.store(correct_ptr + rows, tl.where(pos2 >= mneg, 1.0, 0.0).to(pos2.dtype), mask=mask)

    @triton.jit
    def _infonce_bwd_kernel(
        grad_ptr,  # (M,) upstream gradient of the per-row losses, accumulation dtype, contiguous
        x_ptr,  # (M, D) rows
        k_ptr,  # (M, D) MoCo positives (unused when SYM)
        c_ptr,  # (K, D) candidates (x when SYM)
        lse_ptr,  # (M,) from the forward
        out_ptr,  # S = 1: (M, D) gradient of x, storage dtype; S > 1: (S, M, D) fp32 partial gradients
        gk_ptr,  # (M, D) gradient of k (unused when SYM), written by split 0
        M,
        K,
        D,
        HALF,
        SPLIT_LEN,
        scale2,  # log2(e) / T
        inv_t,  # 1 / T
        SYM: tl.constexpr,
        CAST: tl.constexpr,
        INPUT_PRECISION: tl.constexpr,
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_D: tl.constexpr,
    ):
        # Recompute s per tile; w_ij = g_i 2^(s2_ij - lse2_i) (+ g_j 2^(s2_ij - lse2_j) when SYM: the column term);
        # acc_i += sum_j w_ij c_j over the split's candidates; split 0 adds the positive's term (module docstring).
        acc_dtype = lse_ptr.dtype.element_ty
        pid_s = tl.program_id(1)
        rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        row_mask = rows < M
        rows64 = rows.to(tl.int64)
        dcols = tl.arange(0, BLOCK_D)
        dmask = dcols < D
        xm = row_mask[:, None] & dmask[None, :]
        xt = tl.load(x_ptr + rows64[:, None] * D + dcols[None, :], mask=xm, other=0.0)
        g = tl.load(grad_ptr + rows64, mask=row_mask, other=0.0)
        lse2 = tl.load(lse_ptr + rows64, mask=row_mask, other=0.0) * 1.4426950408889634
        xa = xt.to(acc_dtype)
        if CAST:
            xt = xa
        acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=acc_dtype)
        k_lo = pid_s * SPLIT_LEN
        k_hi = tl.minimum(K, k_lo + SPLIT_LEN)
        for start in range(k_lo, k_hi, BLOCK_N):
            cols = start + tl.arange(0, BLOCK_N)
            cmask = cols < k_hi
            ct = tl.load(
                c_ptr + cols.to(tl.int64)[:, None] * D + dcols[None, :], mask=cmask[:, None] & dmask[None, :], other=0.0
            )
            if CAST:
                ct = ct.to(acc_dtype)
            s = tl.dot(xt, tl.trans(ct), input_precision=INPUT_PRECISION, out_dtype=acc_dtype) * scale2
            keep = cmask[None, :] & row_mask[:, None]
            if SYM:
                keep = keep & (cols[None, :] != rows[:, None])
            w = g[:, None] * tl.exp2(tl.where(keep, s - lse2[:, None], float("-inf")))
            if SYM:
                gc = tl.load(grad_ptr + cols, mask=cmask, other=0.0)
                lc = tl.load(lse_ptr + cols, mask=cmask, other=0.0) * 1.4426950408889634
                w += gc[None, :] * tl.exp2(tl.where(keep, s - lc[None, :], float("-inf")))
            acc += tl.dot(w.to(ct.dtype), ct, input_precision=INPUT_PRECISION, out_dtype=acc_dtype)
        first = pid_s == 0
        if SYM:
            prow = (rows + HALF) % M
            zp = tl.load(x_ptr + prow.to(tl.int64)[:, None] * D + dcols[None, :], mask=xm, other=0.0).to(acc_dtype)
            gp = tl.load(grad_ptr + prow, mask=row_mask, other=0.0)
            coef = tl.where(first, -(g + gp), 0.0)
            gx = inv_t * (acc + coef[:, None] * zp)
        else:
            kt = tl.load(k_ptr + rows64[:, None] * D + dcols[None, :], mask=xm, other=0.0).to(acc_dtype)
            pos2 = tl.sum(xa * kt, axis=1) * scale2
            coef = g * (tl.exp2(tl.minimum(pos2 - lse2, 0.0)) - 1.0)
            gk = inv_t * coef[:, None] * xa
            tl.store(gk_ptr + rows64[:, None] * D + dcols[None, :], gk.to(gk_ptr.dtype.element_ty), mask=xm & first)
            gx = inv_t * (acc + tl.where(first, coef, 0.0)[:, None] * kt)
        out = out_ptr + pid_s.to(tl.int64) * M * D + rows64[:, None] * D + dcols[None, :]
        tl.store(out, gx.to(out_ptr.dtype.element_ty), mask=xm)


# Tests set this to force a number of candidate splits (exercising the split-K path in the interpreter).
TRITON_SPLITS_OVERRIDE: int | None = None
_SM_COUNT: dict = {}


# The Triton kernels hold a whole row (BLOCK_D >= D) per tile: rows up to this many bytes (D = 1024 in float32).
TRITON_MAX_ROW_BYTES = 4096


def _triton_row_fits(d: int, dtype: torch.dtype) -> bool:
    return triton.next_power_of_2(d) * dtype.itemsize <= TRITON_MAX_ROW_BYTES


def _triton_config(m: int, k: int, d: int, dtype: torch.dtype, device: torch.device) -> tuple[dict, int, int]:
    """Block sizes and the candidate split: (constexprs, S, SPLIT_LEN). 64 x 64 tiles on a GPU (BLOCK_D >= 16 for
    tl.dot); large tiles in the interpreter, where each program and each loop step is slow. S is chosen so that
    about two programs per SM run (a small batch against a long queue is split along the queue)."""
    if not _triton_row_fits(d, dtype):
        raise ValueError(
            f"infonce (triton): D={d} in {dtype} exceeds the kernels' single-tile row of {TRITON_MAX_ROW_BYTES} bytes; "
            "use backend='cuda', 'cpu' or 'reference'"
        )
    block_d = max(16, triton.next_power_of_2(d))
    interpreting = triton_interpreting()
    if interpreting:
        block_m = max(16, min(128, triton.next_power_of_2(m)))
        block_n = max(16, min(256, triton.next_power_of_2(max(k, 1))))
    else:
        # Shared memory holds pipelined (BLOCK_M + BLOCK_N) x BLOCK_D tiles: shrink the tiles as a row grows.
        row_bytes = block_d * dtype.itemsize
        block_m = block_n = 64 if row_bytes <= 512 else 32 if row_bytes <= 1024 else 16
    cast = interpreting or dtype == torch.float64
    tiles = max(1, triton.cdiv(k, block_n))
    if TRITON_SPLITS_OVERRIDE is not None:
        splits = max(1, min(TRITON_SPLITS_OVERRIDE, tiles))
    elif interpreting or device.type != "cuda":
        splits = 1
    else:
        if device not in _SM_COUNT:
            _SM_COUNT[device] = torch.cuda.get_device_properties(device).multi_processor_count
        splits = max(1, min(tiles, 2 * _SM_COUNT[device] // triton.cdiv(m, block_m)))
    tiles_per_split = triton.cdiv(tiles, splits)
    splits = triton.cdiv(tiles, tiles_per_split)
    # float32 follows torch's matmul precision (TF32 tensor cores under "high"); half types multiply exactly.
    precision = matmul_input_precision(dtype) or "ieee"
    cfg = {"CAST": cast, "INPUT_PRECISION": precision, "BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_D": block_d}
    if not interpreting and block_d * dtype.itemsize > 2048:
        # rows of 4 KiB: two pipeline stages keep the tiles within an A100's 163 KiB (three need 192 KiB)
        cfg["num_stages"] = 2
    return cfg, splits, tiles_per_split * block_n


def _fwd_triton(x, k, c, kk: int, half: int, sym: bool, loss, lse, correct, inv_t: float) -> None:
    m, d = x.shape
    cfg, splits, split_len = _triton_config(m, kk, d, x.dtype, x.device)
    acc = lse.dtype
    pos = torch.empty(m, dtype=acc, device=x.device)  # (M,)
    part_m = torch.empty(splits, m, dtype=acc, device=x.device)  # (S, M)
    part_l = torch.empty(splits, m, dtype=acc, device=x.device)  # (S, M)
    with device_guard(x):
        grid = (triton.cdiv(m, cfg["BLOCK_M"]), splits)
        _infonce_fwd_kernel[grid](
            x, k, c, pos, part_m, part_l, m, kk, d, half, split_len, LOG2E * inv_t, SYM=sym, **cfg
        )
        block = min(1024, max(16, triton.next_power_of_2(m)))
        _infonce_combine_kernel[(triton.cdiv(m, block),)](pos, part_m, part_l, loss, lse, correct, m, splits,
                                                          BLOCK=block)  # fmt: skip


def _bwd_triton(grad, x, k, c, kk: int, half: int, sym: bool, lse, gx, gk, inv_t: float) -> None:
    m, d = x.shape
    cfg, splits, split_len = _triton_config(m, kk, d, x.dtype, x.device)
    out = gx if splits == 1 else torch.empty(splits, m, d, dtype=lse.dtype, device=x.device)  # (S, M, D) partials
    with device_guard(x):
        grid = (triton.cdiv(m, cfg["BLOCK_M"]), splits)
        _infonce_bwd_kernel[grid](
            grad, x, k, c, lse, out, gk, m, kk, d, half, split_len, LOG2E * inv_t, inv_t, SYM=sym, **cfg
        )
    if splits > 1:
        gx.copy_(out.sum(dim=0))  # fixed order: deterministic


# ----------------------------------------------------------------------------------------------------------------
# Launchers. MoCo: (q, k, queue, loss, lse, correct, inv_t) and (grad, q, k, queue, lse, gq, gk, inv_t);
# NT-Xent: (z, loss, lse, correct, inv_t) and (grad, z, lse, gz, inv_t). Tensors contiguous; grad in the
# accumulation dtype.
# ----------------------------------------------------------------------------------------------------------------
def _infonce_fwd_cpu(q, k, queue, loss, lse, correct, inv_t: float) -> None:
    m, d = q.shape
    _ext.C.cpu.infonce_fwd(
        q.data_ptr(), k.data_ptr(), queue.data_ptr() if queue.numel() else 0, loss.data_ptr(), lse.data_ptr(),
        correct.data_ptr(), m, queue.shape[0], d, _ext.dtype_code(q.dtype), inv_t,
    )  # fmt: skip


def _infonce_bwd_cpu(grad, q, k, queue, lse, gq, gk, inv_t: float) -> None:
    m, d = q.shape
    _ext.C.cpu.infonce_bwd(
        grad.data_ptr(), q.data_ptr(), k.data_ptr(), queue.data_ptr() if queue.numel() else 0, lse.data_ptr(),
        gq.data_ptr(), gk.data_ptr(), m, queue.shape[0], d, _ext.dtype_code(q.dtype), inv_t,
    )  # fmt: skip


def _ntxent_fwd_cpu(z, loss, lse, correct, inv_t: float) -> None:
    m, d = z.shape
    _ext.C.cpu.ntxent_fwd(
        z.data_ptr(), loss.data_ptr(), lse.data_ptr(), correct.data_ptr(), m, d, _ext.dtype_code(z.dtype), inv_t
    )


def _ntxent_bwd_cpu(grad, z, lse, gz, inv_t: float) -> None:
    m, d = z.shape
    _ext.C.cpu.ntxent_bwd(
        grad.data_ptr(), z.data_ptr(), lse.data_ptr(), gz.data_ptr(), m, d, _ext.dtype_code(z.dtype), inv_t
    )


def _infonce_fwd_cuda(q, k, queue, loss, lse, correct, inv_t: float) -> None:
    m, d = q.shape
    _ext.C.cuda.infonce_fwd(
        q.data_ptr(), k.data_ptr(), queue.data_ptr() if queue.numel() else 0, loss.data_ptr(), lse.data_ptr(),
        correct.data_ptr(), m, queue.shape[0], d, _ext.dtype_code(q.dtype), inv_t,
        q.device.index, _ext.cuda_stream_handle(q.device),
    )  # fmt: skip


def _infonce_bwd_cuda(grad, q, k, queue, lse, gq, gk, inv_t: float) -> None:
    m, d = q.shape
    _ext.C.cuda.infonce_bwd(
        grad.data_ptr(), q.data_ptr(), k.data_ptr(), queue.data_ptr() if queue.numel() else 0, lse.data_ptr(),
        gq.data_ptr(), gk.data_ptr(), m, queue.shape[0], d, _ext.dtype_code(q.dtype), inv_t,
        q.device.index, _ext.cuda_stream_handle(q.device),
    )  # fmt: skip


def _ntxent_fwd_cuda(z, loss, lse, correct, inv_t: float) -> None:
    m, d = z.shape
    _ext.C.cuda.ntxent_fwd(
        z.data_ptr(), loss.data_ptr(), lse.data_ptr(), correct.data_ptr(), m, d, _ext.dtype_code(z.dtype), inv_t,
        z.device.index, _ext.cuda_stream_handle(z.device),
    )  # fmt: skip


def _ntxent_bwd_cuda(grad, z, lse, gz, inv_t: float) -> None:
    m, d = z.shape
    _ext.C.cuda.ntxent_bwd(
        grad.data_ptr(), z.data_ptr(), lse.data_ptr(), gz.data_ptr(), m, d, _ext.dtype_code(z.dtype), inv_t,
        z.device.index, _ext.cuda_stream_handle(z.device),
    )  # fmt: skip


def _infonce_fwd_triton(q, k, queue, loss, lse, correct, inv_t: float) -> None:
    kk = queue.shape[0]
    _fwd_triton(q, k, queue if kk else q, kk, 0, False, loss, lse, correct, inv_t)


def _infonce_bwd_triton(grad, q, k, queue, lse, gq, gk, inv_t: float) -> None:
    kk = queue.shape[0]
    _bwd_triton(grad, q, k, queue if kk else q, kk, 0, False, lse, gq, gk, inv_t)


def _ntxent_fwd_triton(z, loss, lse, correct, inv_t: float) -> None:
    m = z.shape[0]
    _fwd_triton(z, z, z, m, m // 2, True, loss, lse, correct, inv_t)


def _ntxent_bwd_triton(grad, z, lse, gz, inv_t: float) -> None:
    m = z.shape[0]
    _bwd_triton(grad, z, z, z, m, m // 2, True, lse, gz, gz, inv_t)


# ----------------------------------------------------------------------------------------------------------------
# torch.library registration: forward and backward custom ops per compiled backend, for each loss
# ----------------------------------------------------------------------------------------------------------------
_INFONCE_FWD_SCHEMA = "(Tensor q, Tensor k, Tensor queue, float temperature) -> (Tensor, Tensor, Tensor)"
_INFONCE_BWD_SCHEMA = (
    "(Tensor grad, Tensor q, Tensor k, Tensor queue, Tensor lse, float temperature) -> (Tensor, Tensor)"
)
_NTXENT_FWD_SCHEMA = "(Tensor z, float temperature) -> (Tensor, Tensor, Tensor)"
_NTXENT_BWD_SCHEMA = "(Tensor grad, Tensor z, Tensor lse, float temperature) -> Tensor"


def _new_rows(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(loss, lse, correct), each (M,) in the accumulation dtype."""
    acc = accumulation_dtype(x.dtype)
    return tuple(x.new_empty((x.shape[0],), dtype=acc) for _ in range(3))  # type: ignore[return-value]


def _infonce_fwd(launch: Callable, q: Tensor, k: Tensor, queue: Tensor, temperature: float):
    loss, lse, correct = _new_rows(q)
    launch(q, k, queue, loss, lse, correct, 1.0 / temperature)
    return loss, lse, correct


def _new_infonce_grads(q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
    gq = torch.empty(q.shape, dtype=q.dtype, device=q.device)  # (N, D)
    gk = torch.empty(k.shape, dtype=k.dtype, device=k.device)  # (N, D)
    return gq, gk


def _infonce_bwd(launch: Callable, grad, q, k, queue, lse, temperature: float) -> tuple[Tensor, Tensor]:
    gq, gk = _new_infonce_grads(q, k)
    launch(grad, q, k, queue, lse, gq, gk, 1.0 / temperature)
    return gq, gk


def _infonce_setup_context(ctx, inputs, output) -> None:
    q, k, queue, temperature = inputs
    _, lse, correct = output
    ctx.mark_non_differentiable(lse, correct)
    ctx.save_for_backward(q, k, queue, lse)
    ctx.temperature = temperature


def _infonce_backward(bwd_op, ctx, grad_loss, _grad_lse, _grad_correct):
    q, k, queue, lse = ctx.saved_tensors
    if grad_loss is None:
        return None, None, None, None
    grad = grad_loss.to(lse.dtype).contiguous()  # (N,); an expanded scalar from mean() becomes a vector
    gq, gk = bwd_op(grad, q, k, queue, lse, ctx.temperature)
    return (gq if ctx.needs_input_grad[0] else None), (gk if ctx.needs_input_grad[1] else None), None, None


def _ntxent_fwd(launch: Callable, z: Tensor, temperature: float) -> tuple[Tensor, Tensor, Tensor]:
    loss, lse, correct = _new_rows(z)
    launch(z, loss, lse, correct, 1.0 / temperature)
    return loss, lse, correct


def _ntxent_bwd(launch: Callable, grad: Tensor, z: Tensor, lse: Tensor, temperature: float) -> Tensor:
    gz = torch.empty(z.shape, dtype=z.dtype, device=z.device)  # (2N, D)
    launch(grad, z, lse, gz, 1.0 / temperature)
    return gz


def _ntxent_setup_context(ctx, inputs, output) -> None:
    z, temperature = inputs
    _, lse, correct = output
    ctx.mark_non_differentiable(lse, correct)
    ctx.save_for_backward(z, lse)
    ctx.temperature = temperature


def _ntxent_backward(bwd_op, ctx, grad_loss, _grad_lse, _grad_correct):
    z, lse = ctx.saved_tensors
    if grad_loss is None:
        return None, None
    grad = grad_loss.to(lse.dtype).contiguous()  # (2N,)
    return bwd_op(grad, z, lse, ctx.temperature), None


INFONCE_FWD_OPS, INFONCE_BWD_OPS = register_backends(
    "infonce",
    {
        "cpu": (_infonce_fwd_cpu, _infonce_bwd_cpu),
        "cuda": (_infonce_fwd_cuda, _infonce_bwd_cuda),
        "triton": (_infonce_fwd_triton, _infonce_bwd_triton),
    },
    fwd=_infonce_fwd,
    fwd_schema=_INFONCE_FWD_SCHEMA,
    fwd_fake=lambda q, k, queue, temperature: _new_rows(q),
    bwd=_infonce_bwd,
    bwd_schema=_INFONCE_BWD_SCHEMA,
    bwd_fake=lambda grad, q, k, queue, lse, temperature: _new_infonce_grads(q, k),
    setup_context=_infonce_setup_context,
    backward=_infonce_backward,
)
NTXENT_FWD_OPS, NTXENT_BWD_OPS = register_backends(
    "ntxent",
    {
        "cpu": (_ntxent_fwd_cpu, _ntxent_bwd_cpu),
        "cuda": (_ntxent_fwd_cuda, _ntxent_bwd_cuda),
        "triton": (_ntxent_fwd_triton, _ntxent_bwd_triton),
    },
    fwd=_ntxent_fwd,
    fwd_schema=_NTXENT_FWD_SCHEMA,
    fwd_fake=lambda z, temperature: _new_rows(z),
    bwd=_ntxent_bwd,
    bwd_schema=_NTXENT_BWD_SCHEMA,
    bwd_fake=lambda grad, z, lse, temperature: torch.empty_like(z),
    setup_context=_ntxent_setup_context,
    backward=_ntxent_backward,
)


# ----------------------------------------------------------------------------------------------------------------
# public functions
# ----------------------------------------------------------------------------------------------------------------
def _choose_backend(backend: str, device: torch.device, op: str, d: int, dtype: torch.dtype) -> str:
    """inv_kernels.backend's rule, except that "auto" on a CUDA tensor prefers triton over cuda: the Triton kernels
    are the tuned GPU path (tensor-core tiles, split-K for long queues); the CUDA kernel is a simple one-warp-per-row
    kernel kept for builds without Triton. An explicit backend= or INV_KERNELS_BACKEND is honoured as usual."""
    automatic = backend in (None, "auto") and os.environ.get(ENV_VAR, "auto").strip().lower() in ("", "auto")
    if automatic and device.type == "cuda" and not _triton_row_fits(d, dtype):
        # rows too long for the Triton tiles: the CUDA kernel, else the reference
        return resolve_backend(backend, device, op=op, supported=("reference", "cpu", "cuda"))
    return resolve_backend(backend, device, op=op, gpu_order=("triton", "cuda"))


def _check_temperature(op: str, temperature: float, dtype: torch.dtype) -> None:
    """A finite temperature > 0 whose reciprocal (the kernels' scale of the logits) is finite in the accumulation
    dtype of features of ``dtype`` (below about 2.9e-39 it is not in float32, and every logit would be inf)."""
    check_positive(op, "temperature", temperature)
    acc = accumulation_dtype(dtype)
    if not 1.0 / temperature <= torch.finfo(acc).max:
        raise ValueError(
            f"{op}: temperature must be at least {1.0 / torch.finfo(acc).max:.3g} (1 / temperature must be finite "
            f"in {acc}), got {temperature}"
        )


def _check_inputs_finite(op: str, normalize: bool, **tensors: Tensor) -> None:
    """No NaN/Inf; with ``normalize``, no row whose norm overflows (F.normalize would make it a zero row)."""
    bound, why = None, ""
    if normalize:
        first = next(iter(tensors.values()))
        d, dtype = first.shape[1], first.dtype
        bound = min(max_abs_for_squares(accumulation_dtype(dtype), d), torch.finfo(dtype).max / math.sqrt(d))
        why = f"a row's norm ({d} terms) overflows {dtype} and normalize=True would zero the row"
    for name, tensor in tensors.items():
        check_finite(op, name, tensor, max_abs=bound, why=why)


def _check_reduction(op: str, reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {', '.join(map(repr, REDUCTIONS))}, got {reduction!r}")


def _check_rows_finite(op: str, rows: Tensor, temperature: float) -> None:
    """Finite inputs whose logits (dot products / temperature) overflow give an inf or NaN loss: say so instead.
    Skipped while torch.compile traces, like check_finite."""
    if torch.compiler.is_compiling() or bool(torch.isfinite(rows.detach()).all()):
        return
    raise ValueError(
        f"{op}: the logits overflow {rows.dtype} (dot products / temperature beyond its range; temperature="
        f"{temperature}): use a larger temperature, normalize=True, or inputs of smaller norm"
    )


def _reduce(rows: Tensor, correct: Tensor, reduction: str, return_accuracy: bool):
    loss = rows.mean() if reduction == "mean" else rows.sum() if reduction == "sum" else rows
    if return_accuracy:
        return loss, correct.detach().mean()
    return loss


def infonce_loss(
    q: Tensor,
    k: Tensor,
    queue: Tensor | None = None,
    temperature: float = 0.2,
    *,
    normalize: bool = False,
    reduction: str = "mean",
    return_accuracy: bool = False,
    backend: str = "auto",
    check_finite_inputs: bool = True,
):
    """MoCo v2 InfoNCE loss, fused: positives q_i . k_i, negatives against a detached queue, no (N, K) logits.

    Args:
        q: (N, D) queries, float32, float64, float16 or bfloat16, N, D >= 1.
        k: (N, D) positive keys, q's dtype and device. Gets a gradient only if it requires one.
        queue: (K, D) negative keys (detached; cast to q's dtype), or None for none. K may be 0.
        temperature: > 0.
        normalize: L2-normalise q, k and the queue's rows first (F.normalize; autograd differentiates it).
            A zero row stays zero: its logits are 0 and its loss log(1 + K).
        reduction: "mean" (default), "sum" or "none" (per-row losses, (N,)).
        return_accuracy: also return the top-1 accuracy of the positive (ties count as correct), 0-dim, no grad.
        backend: "auto", "reference", "cpu", "triton" or "cuda" (see inv_kernels.backend; "auto" on a CUDA tensor
            prefers triton, see _choose_backend).
        check_finite_inputs: raise on NaN/Inf inputs (one extra read), and on a loss that overflows (logits beyond
            the accumulation dtype's range); both skipped under torch.compile.

    Returns:
        The loss (0-dim, or (N,) for reduction="none") in the accumulation dtype (float32; float64 for float64
        inputs), or (loss, accuracy) when return_accuracy.

    Raises:
        TypeError: a non-tensor, a non-floating dtype, or q and k of different dtypes.
        ValueError: not 2-D, mismatched shapes or D, an empty batch, tensors on different devices or on the meta
            device, temperature <= 0 (or so small that 1 / temperature overflows), an unknown reduction, NaN/Inf.
        RuntimeError: an explicitly requested backend that cannot run here.
    """
    op = OP_INFONCE
    check_tensor(op, "q", q, ndim=2, layout="(N, D)")
    check_tensor(op, "k", k, ndim=2, layout="(N, D)")
    check_same_dtype(op, q=q, k=k)
    check_same_shape(op, q=q, k=k)
    check_nonempty(op, "q", q)
    if queue is not None:
        check_tensor(op, "queue", queue, ndim=2, layout="(K, D)")
        if queue.shape[1] != q.shape[1]:
            raise ValueError(
                f"{op}: queue must have q's feature dimension D={q.shape[1]}, got shape {tuple(queue.shape)}"
            )
        device = check_same_device(op, q=q, k=k, queue=queue)
    else:
        device = check_same_device(op, q=q, k=k)
    _check_temperature(op, temperature, q.dtype)
    _check_reduction(op, reduction)
    if check_finite_inputs:
        _check_inputs_finite(op, normalize, q=q, k=k, **({} if queue is None else {"queue": queue}))
    chosen = _choose_backend(backend, device, op, q.shape[1], q.dtype)
    queue = q.new_empty((0, q.shape[1])) if queue is None else queue.detach().to(q.dtype)  # (K, D)
    if normalize:
        q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
        queue = F.normalize(queue, dim=1) if queue.shape[0] else queue
    if chosen == "reference":
        rows, correct = _infonce_rows_ref(q, k, queue, float(temperature))
    else:
        fused = INFONCE_FWD_OPS[chosen]
        rows, _, correct = fused(q.contiguous(), k.contiguous(), queue.contiguous(), float(temperature))
    if check_finite_inputs:
        _check_rows_finite(op, rows, temperature)
    return _reduce(rows, correct, reduction, return_accuracy)


def ntxent_loss(
    z1: Tensor,
    z2: Tensor,
    temperature: float = 0.2,
    *,
    normalize: bool = False,
    reduction: str = "mean",
    return_accuracy: bool = False,
    backend: str = "auto",
    check_finite_inputs: bool = True,
):
    """SimCLR NT-Xent loss, fused: z = [z1; z2], 2N x 2N logits with self-pairs masked, never materialised.

    Args:
        z1: (N, D) first views' embeddings, float32, float64, float16 or bfloat16, N, D >= 1.
        z2: (N, D) second views' embeddings, z1's dtype and device.
        temperature: > 0.
        normalize: L2-normalise the rows first (F.normalize; a zero row stays zero, its loss is log(2N - 1)).
        reduction: "mean" over the 2N rows (default), "sum" or "none" (per-row losses, (2N,): z1's rows then z2's).
        return_accuracy: also return the top-1 accuracy of the positive (ties count as correct), 0-dim, no grad.
        backend: "auto", "reference", "cpu", "triton" or "cuda" (see inv_kernels.backend; "auto" on a CUDA tensor
            prefers triton, see _choose_backend).
        check_finite_inputs: raise on NaN/Inf inputs (one extra read), and on a loss that overflows (logits beyond
            the accumulation dtype's range); both skipped under torch.compile.

    Returns:
        The loss (0-dim, or (2N,)) in the accumulation dtype, or (loss, accuracy) when return_accuracy.

    Raises:
        TypeError: a non-tensor, a non-floating dtype, or z1 and z2 of different dtypes.
        ValueError: not 2-D, mismatched shapes, an empty batch, different devices or the meta device,
            temperature <= 0 (or so small that 1 / temperature overflows), an unknown reduction, NaN/Inf.
        RuntimeError: an explicitly requested backend that cannot run here.
    """
    op = OP_NTXENT
    check_tensor(op, "z1", z1, ndim=2, layout="(N, D)")
    check_tensor(op, "z2", z2, ndim=2, layout="(N, D)")
    check_same_dtype(op, z1=z1, z2=z2)
    check_same_shape(op, z1=z1, z2=z2)
    check_nonempty(op, "z1", z1)
    device = check_same_device(op, z1=z1, z2=z2)
    _check_temperature(op, temperature, z1.dtype)
    _check_reduction(op, reduction)
    if check_finite_inputs:
        _check_inputs_finite(op, normalize, z1=z1, z2=z2)
    chosen = _choose_backend(backend, device, op, z1.shape[1], z1.dtype)
    if normalize:
        z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    if chosen == "reference":
        rows, correct = _ntxent_rows_ref(z1, z2, float(temperature))
    else:
        z = torch.cat([z1, z2], dim=0)  # (2N, D)
        rows, _, correct = NTXENT_FWD_OPS[chosen](z, float(temperature))
    if check_finite_inputs:
        _check_rows_finite(op, rows, temperature)
    return _reduce(rows, correct, reduction, return_accuracy)


__all__ = [
    "infonce_loss",
    "infonce_loss_ref",
    "ntxent_loss",
    "ntxent_loss_ref",
]
