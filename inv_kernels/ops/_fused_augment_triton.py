"""Triton backend of ``fused_augment`` (arithmetic and packed layout: csrc/augment/fused_augment.h).

Four launches over a 1D grid of (view, output tile) programs, each tile BLOCK_H x BLOCK_W pixels of the S x S view:

    _fused_augment_mean_kernel   views whose jitter has a contrast factor != 1: the tile's sum of gray(x) at the
                                 contrast op's place in the order (crop + resize + the jitter ops before it),
                                 into partial (V, n_tiles); the mean is their sum / S^2 (fixed order: deterministic)
    _fused_augment_fwd_kernel    crop + antialiased resize (direct taps, gathered from the uint8 source), flip,
                                 the jitter ops in order, grayscale; normalised into out, or for a blurred view
                                 into the float32 workspace ws (V, 3, S, S)
    _fused_augment_blur_kernel   blurred views only, separable: rows of ws -> ws2, then columns of ws2 -> out,
                                 normalised (VERTICAL selects the pass)

The mean pass recomputes the resize rather than keeping the pre-contrast view in memory (arithmetic on cached
source bytes instead of a float32 write and read of every view); unblurred views touch neither workspace.
Triton has no explicit shared memory, so the resize reads its taps directly (about ceil(2 h / S) x ceil(2 w / S)
gathers per pixel) rather than as two separable passes; on a GPU the taps of neighbouring pixels hit the same cache
lines.
"""

from __future__ import annotations

import torch
from torch import Tensor

from inv_kernels._triton import tl, triton, triton_interpreting

if triton is not None:

    @triton.jit
    def _gray(r, g, b):
        # torchvision's rgb_to_grayscale weights
        return r * 0.2989 + g * 0.587 + b * 0.114

    @triton.jit
    def _clamp01(x):
        return tl.minimum(tl.maximum(x, 0.0), 1.0)

    @triton.jit
    def _axis_taps(out_idx, n_in, S):
        """Antialiased bilinear taps of resized indices out_idx (1D) along an axis of n_in source pixels:
        (first tap, end of taps, centre, 1 / support)."""
        scale = n_in.to(tl.float32) / S
        support = tl.maximum(scale, 1.0)
        inv_support = 1.0 / support
        centre = scale * (out_idx.to(tl.float32) + 0.5)
        first = tl.maximum((centre - support + 0.5).to(tl.int32), 0)  # truncation toward zero, as torch
        end = tl.minimum((centre + support + 0.5).to(tl.int32), n_in)
        return first, end, centre, inv_support

    @triton.jit
    def _tap_weight(j, end, centre, inv_support):
        """Unnormalised triangle weight of source index j (0 outside [first, end))."""
        w = tl.maximum(1.0 - tl.abs((j.to(tl.float32) - centre + 0.5) * inv_support), 0.0)
        return tl.where(j < end, w, 0.0)

    @triton.jit
    def _resize_tile(img_ptr, s_c, s_h, s_w, top, left, h, w, rows, cols, S):
        """Pixels (rows x cols) of the h x w crop at (top, left) of img_ptr resized to S x S, as float32 in [0, 1]:
        three (BLOCK_H, BLOCK_W) tensors. Every load lies inside the crop (masked by the tap ranges)."""
        y0, y1, cy, inv_y = _axis_taps(rows, h, S)
        x0, x1, cx, inv_x = _axis_taps(cols, w, S)
        # the tile's widest tap range (at most ceil(2 support): 2 when upscaling)
        n_ty = tl.max(y1 - y0, axis=0)
        n_tx = tl.max(x1 - x0, axis=0)
        total_y = tl.zeros(rows.shape, tl.float32)
        for t in range(n_ty):
            total_y += _tap_weight(y0 + t, y1, cy, inv_y)
        total_x = tl.zeros(cols.shape, tl.float32)
        for t in range(n_tx):
            total_x += _tap_weight(x0 + t, x1, cx, inv_x)
        total_y = tl.where(total_y > 0.0, total_y, 1.0)
        total_x = tl.where(total_x > 0.0, total_x, 1.0)
        acc_r = tl.zeros([rows.shape[0], cols.shape[0]], tl.float32)
        acc_g = tl.zeros([rows.shape[0], cols.shape[0]], tl.float32)
        acc_b = tl.zeros([rows.shape[0], cols.shape[0]], tl.float32)
        for ty in range(n_ty):
            y = y0 + ty
            wy = _tap_weight(y, y1, cy, inv_y) / total_y
            row_off = (top + y) * s_h
            row_ok = y < y1
            # horizontal taps of this source row, then its vertical weight (torch's separable order)
            h_r = tl.zeros([rows.shape[0], cols.shape[0]], tl.float32)
            h_g = tl.zeros([rows.shape[0], cols.shape[0]], tl.float32)
            h_b = tl.zeros([rows.shape[0], cols.shape[0]], tl.float32)
            for tx in range(n_tx):
                x = x0 + tx
                wx = (_tap_weight(x, x1, cx, inv_x) / total_x)[None, :]
                ptrs = img_ptr + row_off[:, None] + ((left + x) * s_w)[None, :]
                ok = row_ok[:, None] & (x < x1)[None, :]
                h_r += wx * tl.load(ptrs, mask=ok, other=0).to(tl.float32)
                h_g += wx * tl.load(ptrs + s_c, mask=ok, other=0).to(tl.float32)
                h_b += wx * tl.load(ptrs + 2 * s_c, mask=ok, other=0).to(tl.float32)
            acc_r += wy[:, None] * h_r
            acc_g += wy[:, None] * h_g
            acc_b += wy[:, None] * h_b
        return acc_r / 255.0, acc_g / 255.0, acc_b / 255.0

    @triton.jit
    def _adjust_hue(r, g, b, shift):
        """torchvision's adjust_hue: _rgb_to_hsv, h = (h + shift) mod 1, _hsv_to_rgb (same operation order)."""
        maxc = tl.maximum(tl.maximum(r, g), b)
        minc = tl.minimum(tl.minimum(r, g), b)
        eqc = maxc == minc
        span = maxc - minc
        s = span / tl.where(eqc, 1.0, maxc)
        div = tl.where(eqc, 1.0, span)
        rc = (maxc - r) / div
        gc = (maxc - g) / div
        bc = (maxc - b) / div
        is_r = maxc == r
        is_g = (maxc == g) & (maxc != r)
        is_b = (maxc != r) & (maxc != g)
        h = tl.where(is_r, bc - gc, 0.0) + tl.where(is_g, (rc + 2.0) - bc, 0.0)
        h = h + tl.where(is_b, (gc + 4.0) - rc, 0.0)
        h = h * (1.0 / 6.0) + 1.0
        h = h - tl.floor(h)  # fmod(h, 1) for h >= 0
        h = h + shift
        h = h - tl.floor(h)  # python-style remainder (may round up to 1.0, as torch's does)
        v = maxc
        h6 = h * 6.0
        i6 = tl.floor(h6)
        f = h6 - i6
        sector = i6.to(tl.int32) % 6
        sxf = s * f
        one_minus_s = 1.0 - s
        q = _clamp01((1.0 - sxf) * v)
        t = _clamp01((sxf + one_minus_s) * v)
        p = _clamp01(one_minus_s * v)
        # sector 0..5 -> (r, g, b) = (v,t,p) (q,v,p) (p,v,t) (p,q,v) (t,p,v) (v,p,q)
        r2 = tl.where((sector == 0) | (sector == 5), v, tl.where(sector == 1, q, tl.where(sector == 4, t, p)))
        g2 = tl.where((sector == 1) | (sector == 2), v, tl.where(sector == 0, t, tl.where(sector == 3, q, p)))
        b2 = tl.where((sector == 3) | (sector == 4), v, tl.where(sector == 2, t, tl.where(sector == 5, q, p)))
        return r2, g2, b2

    @triton.jit
    def _jitter_op(r, g, b, op, brightness, contrast, saturation, hue, mean):
        """One colour-jitter op (0 brightness, 1 contrast with the view's gray mean, 2 saturation, 3 hue)."""
        if op == 0:
            r = _clamp01(r * brightness)
            g = _clamp01(g * brightness)
            b = _clamp01(b * brightness)
        elif op == 1:
            m = mean * (1.0 - contrast)
            r = _clamp01(r * contrast + m)
            g = _clamp01(g * contrast + m)
            b = _clamp01(b * contrast + m)
        elif op == 2:
            gray = _gray(r, g, b) * (1.0 - saturation)
            r = _clamp01(r * saturation + gray)
            g = _clamp01(g * saturation + gray)
            b = _clamp01(b * saturation + gray)
        else:
            r, g, b = _adjust_hue(r, g, b, hue)
        return r, g, b

    @triton.jit
    def _fused_augment_mean_kernel(
        src_ptr,  # uint8 padded batch, element strides s_b, s_c, s_h, s_w
        s_b,
        s_c,
        s_h,
        s_w,
        iparams_ptr,  # (V, 13) int32
        fparams_ptr,  # (V, 5) float32
        partial_ptr,  # (V, n_tiles) float32: per-tile sums of gray(x) before the contrast op
        S,
        n_tiles_w,  # tiles per row of the view
        n_tiles,
        BLOCK_H: tl.constexpr,
        BLOCK_W: tl.constexpr,
    ):
        v = tl.program_id(0) // n_tiles
        tile = tl.program_id(0) % n_tiles
        ip = iparams_ptr + v * 13
        fp = fparams_ptr + v * 5
        contrast = tl.load(fp + 1)
        if (tl.load(ip + 6) != 0) & (contrast != 1.0):
            rows = (tile // n_tiles_w) * BLOCK_H + tl.arange(0, BLOCK_H)
            cols = (tile % n_tiles_w) * BLOCK_W + tl.arange(0, BLOCK_W)
            img_ptr = src_ptr + tl.load(ip).to(tl.int64) * s_b
            # the flip is left out: it does not change the mean
            r, g, b = _resize_tile(
                img_ptr,
                s_c,
                s_h,
                s_w,
                tl.load(ip + 1),
                tl.load(ip + 2),
                tl.load(ip + 3),
                tl.load(ip + 4),
                rows,
                cols,
                S,
            )
            brightness = tl.load(fp)
            saturation = tl.load(fp + 2)
            hue = tl.load(fp + 3)
            before = tl.load(ip + 7) != 1
            for k in tl.static_range(4):
                op = tl.load(ip + 7 + k)
                before = before & (op != 1)
                if before:
                    r, g, b = _jitter_op(r, g, b, op, brightness, contrast, saturation, hue, 0.0)
            inside = (rows < S)[:, None] & (cols < S)[None, :]
            gray = tl.where(inside, _gray(r, g, b), 0.0)
            tl.store(partial_ptr + v * n_tiles + tile, tl.sum(tl.sum(gray, axis=1), axis=0))

    @triton.jit
    def _fused_augment_fwd_kernel(
        src_ptr,  # uint8 padded batch, element strides s_b, s_c, s_h, s_w
        s_b,
        s_c,
        s_h,
        s_w,
        iparams_ptr,  # (V, 13) int32
        fparams_ptr,  # (V, 5) float32
        norm_ptr,  # (6,) float32 mean[3], std[3]
        partial_ptr,  # (V, n_tiles) float32 from _fused_augment_mean_kernel
        ws_ptr,  # (V, 3, S, S) float32: the pre-blur view of blurred views
        out_ptr,  # (V, 3, S, S) output dtype: normalised unblurred views
        S,
        n_tiles_w,
        n_tiles,
        BLOCK_H: tl.constexpr,
        BLOCK_W: tl.constexpr,
        BLOCK_T: tl.constexpr,  # tiles per step of the sum of the partial means
    ):
        v = tl.program_id(0) // n_tiles
        tile = tl.program_id(0) % n_tiles
        ip = iparams_ptr + v * 13
        fp = fparams_ptr + v * 5
        rows = (tile // n_tiles_w) * BLOCK_H + tl.arange(0, BLOCK_H)
        cols = (tile % n_tiles_w) * BLOCK_W + tl.arange(0, BLOCK_W)
        resized_cols = tl.where(tl.load(ip + 5) != 0, S - 1 - cols, cols)
        img_ptr = src_ptr + tl.load(ip).to(tl.int64) * s_b
        r, g, b = _resize_tile(
            img_ptr,
            s_c,
            s_h,
            s_w,
            tl.load(ip + 1),
            tl.load(ip + 2),
            tl.load(ip + 3),
            tl.load(ip + 4),
            rows,
            resized_cols,
            S,
        )
        if tl.load(ip + 6) != 0:
            brightness = tl.load(fp)
            contrast = tl.load(fp + 1)
            saturation = tl.load(fp + 2)
            hue = tl.load(fp + 3)
            # the partial sums exist only where the mean kernel ran; elsewhere contrast is 1 and the mean unused
            n_partial = tl.where(contrast != 1.0, n_tiles, 0)
            total = tl.zeros([BLOCK_T], tl.float32)
            for t0 in range(0, n_tiles, BLOCK_T):
                t = t0 + tl.arange(0, BLOCK_T)
                total += tl.load(partial_ptr + v * n_tiles + t, mask=t < n_partial, other=0.0)
            mean = tl.sum(total, axis=0) / (S * S * 1.0)
            for k in tl.static_range(4):
                r, g, b = _jitter_op(r, g, b, tl.load(ip + 7 + k), brightness, contrast, saturation, hue, mean)
        if tl.load(ip + 11) != 0:
            r = _gray(r, g, b)
            g = r
            b = r
        inside = (rows < S)[:, None] & (cols < S)[None, :]
        plane = S * S
        offs = v.to(tl.int64) * 3 * plane + (rows * S)[:, None] + cols[None, :]
        if tl.load(ip + 12) > 0:
            tl.store(ws_ptr + offs, r, mask=inside)
            tl.store(ws_ptr + offs + plane, g, mask=inside)
            tl.store(ws_ptr + offs + 2 * plane, b, mask=inside)
        else:
            dtype = out_ptr.dtype.element_ty
            tl.store(out_ptr + offs, ((r - tl.load(norm_ptr)) / tl.load(norm_ptr + 3)).to(dtype), mask=inside)
            tl.store(
                out_ptr + offs + plane, ((g - tl.load(norm_ptr + 1)) / tl.load(norm_ptr + 4)).to(dtype), mask=inside
            )
            tl.store(
                out_ptr + offs + 2 * plane, ((b - tl.load(norm_ptr + 2)) / tl.load(norm_ptr + 5)).to(dtype), mask=inside
            )

    @triton.jit
    def _fused_augment_blur_kernel(
        in_ptr,  # (V, 3, S, S) float32
        out_ptr,  # (V, 3, S, S): float32 workspace (horizontal pass) or the output (vertical pass, normalised)
        iparams_ptr,  # (V, 13) int32
        fparams_ptr,  # (V, 5) float32
        norm_ptr,  # (6,) float32 mean[3], std[3]
        S,
        n_tiles_w,
        n_tiles,
        BLOCK_H: tl.constexpr,
        BLOCK_W: tl.constexpr,
        VERTICAL: tl.constexpr,  # False: blur along rows into out; True: along columns, then normalise
    ):
        # out[i] = sum_t w_t in[reflect(i + t)] / sum_t w_t, t = -k/2 .. k/2, w_t = exp(-0.5 (t / sigma)^2),
        # reflect(-1) = 1, reflect(S) = S - 2 (k <= 2 S - 1 keeps every tap within one reflection)
        v = tl.program_id(0) // n_tiles
        tile = tl.program_id(0) % n_tiles
        k = tl.load(iparams_ptr + v * 13 + 12)
        if k > 0:
            sigma = tl.load(fparams_ptr + v * 5 + 4)
            rows = (tile // n_tiles_w) * BLOCK_H + tl.arange(0, BLOCK_H)
            cols = (tile % n_tiles_w) * BLOCK_W + tl.arange(0, BLOCK_W)
            inside = (rows < S)[:, None] & (cols < S)[None, :]
            plane = S * S
            base = v.to(tl.int64) * 3 * plane
            acc_r = tl.zeros([BLOCK_H, BLOCK_W], tl.float32)
            acc_g = tl.zeros([BLOCK_H, BLOCK_W], tl.float32)
            acc_b = tl.zeros([BLOCK_H, BLOCK_W], tl.float32)
            w_sum = 0.0
            half = k // 2
            for t in range(k):
                d = t - half
                w = tl.exp(-0.5 * (d.to(tl.float32) / sigma) * (d.to(tl.float32) / sigma))
                w_sum += w
                if VERTICAL:
                    src = rows + d
                    src = tl.where(src < 0, -src, src)
                    src = tl.where(src >= S, 2 * (S - 1) - src, src)
                    offs = (src * S)[:, None] + cols[None, :]
                else:
                    src = cols + d
                    src = tl.where(src < 0, -src, src)
                    src = tl.where(src >= S, 2 * (S - 1) - src, src)
                    offs = (rows * S)[:, None] + src[None, :]
                acc_r += w * tl.load(in_ptr + base + offs, mask=inside, other=0.0)
                acc_g += w * tl.load(in_ptr + base + plane + offs, mask=inside, other=0.0)
                acc_b += w * tl.load(in_ptr + base + 2 * plane + offs, mask=inside, other=0.0)
            acc_r = acc_r / w_sum
            acc_g = acc_g / w_sum
            acc_b = acc_b / w_sum
            offs = base + (rows * S)[:, None] + cols[None, :]
            if VERTICAL:
                dtype = out_ptr.dtype.element_ty
                acc_r = ((acc_r - tl.load(norm_ptr)) / tl.load(norm_ptr + 3)).to(dtype)
                acc_g = ((acc_g - tl.load(norm_ptr + 1)) / tl.load(norm_ptr + 4)).to(dtype)
                acc_b = ((acc_b - tl.load(norm_ptr + 2)) / tl.load(norm_ptr + 5)).to(dtype)
            tl.store(out_ptr + offs, acc_r, mask=inside)
            tl.store(out_ptr + offs + plane, acc_g, mask=inside)
            tl.store(out_ptr + offs + 2 * plane, acc_b, mask=inside)


def _blocks(size: int) -> tuple[int, int]:
    """(BLOCK_H, BLOCK_W): 16 x 32 pixels per program on a GPU (224 = 7 x 32: no idle lanes at the usual size);
    up to 64 x 64 in the interpreter, where each program and each loop step is slow."""
    side = triton.next_power_of_2(size)
    if triton_interpreting():
        return min(side, 64), min(side, 64)
    return min(side, 16), min(side, 32)


def fused_augment_triton(
    batch: Tensor,
    sizes32: Tensor,
    iparams: Tensor,
    fparams: Tensor,
    norm: Tensor,
    out: Tensor,
    *,
    block: tuple[int, int] | None = None,
) -> None:
    """Writes the V augmented, normalised views into ``out`` (packed layout: csrc/augment/fused_augment.h).

    Args:
        batch: (B_src, 3, Hmax, Wmax) uint8, any strides (an NHWC batch as a permuted view).
        sizes32: (B_src, 2) int32 (H, W) of each source. The kernels do not read it: the dispatcher has checked
            every crop box against it, and every load lies inside its view's crop box.
        iparams: (V, 13) int32 contiguous: source, top, left, h, w, flip, jitter_applied, order[4], grayscale,
            blur_ksize (0: no blur).
        fparams: (V, 5) float32 contiguous: brightness, contrast, saturation, hue, blur sigma.
        norm: (6,) float32: mean[3], std[3].
        out: (V, 3, S, S) contiguous float32 / bfloat16 / float16, written in place.
        block: (BLOCK_H, BLOCK_W) powers of two, the output tile of one program (default: ``_blocks(S)``).

    Returns:
        None.
    """
    del sizes32
    n_views, _, size, _ = out.shape
    block_h, block_w = block if block is not None else _blocks(size)
    n_tiles_w = triton.cdiv(size, block_w)
    n_tiles = triton.cdiv(size, block_h) * n_tiles_w
    device = out.device
    partial = torch.empty((n_views, n_tiles), dtype=torch.float32, device=device)  # (V, n_tiles)
    ws = torch.empty((2, n_views, 3, size, size), dtype=torch.float32, device=device)  # pre-blur, row-blurred
    grid = (n_views * n_tiles,)  # a view's tiles side by side: neighbours share source rows in cache
    strides = batch.stride()
    _fused_augment_mean_kernel[grid](
        batch,
        *strides,
        iparams,
        fparams,
        partial,
        size,
        n_tiles_w,
        n_tiles,
        BLOCK_H=block_h,
        BLOCK_W=block_w,
        num_warps=4,
    )
    _fused_augment_fwd_kernel[grid](
        batch,
        *strides,
        iparams,
        fparams,
        norm,
        partial,
        ws[0],
        out,
        size,
        n_tiles_w,
        n_tiles,
        BLOCK_H=block_h,
        BLOCK_W=block_w,
        BLOCK_T=64,
        num_warps=4,
    )
    _fused_augment_blur_kernel[grid](
        ws[0],
        ws[1],
        iparams,
        fparams,
        norm,
        size,
        n_tiles_w,
        n_tiles,
        BLOCK_H=block_h,
        BLOCK_W=block_w,
        VERTICAL=False,
        num_warps=4,
    )
    _fused_augment_blur_kernel[grid](
        ws[1],
        out,
        iparams,
        fparams,
        norm,
        size,
        n_tiles_w,
        n_tiles,
        BLOCK_H=block_h,
        BLOCK_W=block_w,
        VERTICAL=True,
        num_warps=4,
    )
