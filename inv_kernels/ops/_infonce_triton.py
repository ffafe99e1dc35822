"""The Triton kernels of the contrastive losses (inv_kernels.ops.infonce): MoCo's InfoNCE against a queue and
SimCLR's NT-Xent, with their launchers.

Launchers: MoCo (q, k, queue, loss, lse, correct, inv_t) and (grad, q, k, queue, lse, gq, gk, inv_t); NT-Xent
(z, loss, lse, correct, inv_t) and (grad, z, lse, gz, inv_t). Tensors contiguous; grad in the accumulation dtype.
"""

from __future__ import annotations

import torch

from inv_kernels._triton import matmul_input_precision, tl, triton, triton_interpreting
from inv_kernels.ops._library import device_guard

LOG2E = 1.4426950408889634


# ----------------------------------------------------------------------------------------------------------------
# Triton kernels (SYM=False: MoCo against a queue; SYM=True: NT-Xent, candidates = the rows themselves).
# The candidates may be split into S contiguous ranges (grid axis 1, flash-decoding's split-K) so that a small batch
# against a long queue (MoCo: N=256, K=65536) still fills the GPU: the forward writes per-split partial (max, sum)
# pairs (S, M) that _infonce_combine_kernel merges; the backward writes per-split partial gradients (S, M, D) in fp32
# that are summed (S = 1 writes the gradient directly). Extra memory: O(S (M + M D)), never M x K.
# ----------------------------------------------------------------------------------------------------------------
if triton is not None:

    @triton.jit
    def _candidate_logits(
        c_ptr,
        start,
        k_hi,
        D,
        xt,
        rows,
        row_mask,
        dcols,
        dmask,
        scale2,
        acc_dtype: tl.constexpr,
        CAST: tl.constexpr,
        INPUT_PRECISION: tl.constexpr,
        BLOCK_N: tl.constexpr,
    ):
        # One tile of candidates from `start`: the tile ct (BLOCK_N, BLOCK_D), its indices, and the logits s of the
        # rows against it (BLOCK_M, BLOCK_N) in log2 units, with keep = both indices in range (the forward and the
        # backward each add their own exclusions).
        cols = start + tl.arange(0, BLOCK_N)
        cmask = cols < k_hi
        ct = tl.load(
            c_ptr + cols.to(tl.int64)[:, None] * D + dcols[None, :], mask=cmask[:, None] & dmask[None, :], other=0.0
        )
        if CAST:
            ct = ct.to(acc_dtype)
        s = tl.dot(xt, tl.trans(ct), input_precision=INPUT_PRECISION, out_dtype=acc_dtype) * scale2
        keep = cmask[None, :] & row_mask[:, None]
        return ct, cols, cmask, s, keep

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
            ct, cols, cmask, s, keep = _candidate_logits(
                c_ptr,
                start,
                k_hi,
                D,
                xt,
                rows,
                row_mask,
                dcols,
                dmask,
                scale2,
                acc_dtype,
                CAST,
                INPUT_PRECISION,
                BLOCK_N,
            )
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
            ct, cols, cmask, s, keep = _candidate_logits(
                c_ptr,
                start,
                k_hi,
                D,
                xt,
                rows,
                row_mask,
                dcols,
                dmask,
                scale2,
                acc_dtype,
                CAST,
                INPUT_PRECISION,
                BLOCK_N,
            )
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


def triton_row_fits(d: int, dtype: torch.dtype) -> bool:
    """Whether rows of D=``d`` elements of ``dtype`` fit the kernels' single tile (also without Triton installed)."""
    return (1 << max(d - 1, 0).bit_length()) * dtype.itemsize <= TRITON_MAX_ROW_BYTES


def _triton_config(m: int, k: int, d: int, dtype: torch.dtype, device: torch.device) -> tuple[dict, int, int]:
    """Block sizes and the candidate split: (constexprs, S, SPLIT_LEN). 64 x 64 tiles on a GPU (BLOCK_D >= 16 for
    tl.dot); large tiles in the interpreter, where each program and each loop step is slow. S is chosen so that
    about two programs per SM run (a small batch against a long queue is split along the queue)."""
    if not triton_row_fits(d, dtype):
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
        _infonce_combine_kernel[(triton.cdiv(m, block),)](
            pos, part_m, part_l, loss, lse, correct, m, splits, BLOCK=block
        )


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


def infonce_fwd_triton(q, k, queue, loss, lse, correct, inv_t: float) -> None:
    kk = queue.shape[0]
    _fwd_triton(q, k, queue if kk else q, kk, 0, False, loss, lse, correct, inv_t)


def infonce_bwd_triton(grad, q, k, queue, lse, gq, gk, inv_t: float) -> None:
    kk = queue.shape[0]
    _bwd_triton(grad, q, k, queue if kk else q, kk, 0, False, lse, gq, gk, inv_t)


def ntxent_fwd_triton(z, loss, lse, correct, inv_t: float) -> None:
    m = z.shape[0]
    _fwd_triton(z, z, z, m, m // 2, True, loss, lse, correct, inv_t)


def ntxent_bwd_triton(grad, z, lse, gz, inv_t: float) -> None:
    m = z.shape[0]
    _bwd_triton(grad, z, z, z, m, m // 2, True, lse, gz, gz, inv_t)
