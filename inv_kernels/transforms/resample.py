"""Antialiased bilinear resampling written as matrices, and the evaluation preprocessing Resize + CenterCrop.

PIL's bilinear resize (and torch's ``interpolate(..., antialias=True)``, which copies it) is separable: along one axis,
output sample i of a box [start, start + length) of the input is a weighted sum of input samples j with

    scale = length / out,   fs = max(scale, 1),   center_i = start + (i + 0.5) * scale
    w_ij  = tri((j + 0.5 - center_i) / fs),   tri(x) = max(0, 1 - |x|),   normalised to sum 1 over the allowed taps.

So a resize is ``Wy @ X @ Wx^T`` with Wy (out_h, H) and Wx (out_w, W), and a centre crop keeps some rows of Wy and
Wx. Composing other separable linear maps (crop boxes, a Gaussian blur) into Wy and Wx costs nothing extra, which is
how ``resized_crop`` and ``blur`` produce their views without an intermediate full-resolution tensor.

The allowed taps are PIL's: within the image for a resize box (``Image.resize(box=...)``, out-of-image taps are
dropped and the rest renormalised), or within [start, start + length) for a crop that PIL first cuts out (padding
with zeros outside the image) and then resizes (``pad=True``): there the zeros count in the normalisation.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor


def resample_matrix(in_size: int, out_size: int, start: Tensor, length: Tensor, *, pad: bool = False) -> Tensor:
    """Resampling weights of boxes along one axis (float64, CPU).

    Args:
        in_size: the input axis length.
        out_size: the number of output samples per box.
        start: (P,) float64 box starts in input pixels (integers when ``pad``).
        length: (P,) float64 box lengths (> 0; integers when ``pad``).
        pad: PIL crop semantics (zeros outside the image count in the normalisation) instead of resize-box semantics.

    Returns:
        (P, out_size, in_size) float64 weights; each row sums to 1 (less where ``pad`` and the box leaves the image).
    """
    start, length = start.to(torch.float64), length.to(torch.float64)
    scale = length / out_size  # (P,)
    fs = scale.clamp_min(1.0)  # (P,)
    centers = start[:, None] + (torch.arange(out_size, dtype=torch.float64) + 0.5) * scale[:, None]  # (P, out)
    if pad:
        lo = min(0, int(start.min()))
        hi = max(in_size, int((start + length).max()))
    else:
        lo, hi = 0, in_size
    j = torch.arange(lo, hi, dtype=torch.float64)  # (J,) extended input positions
    w = (1 - ((j + 0.5 - centers[..., None]) / fs[:, None, None]).abs()).clamp_min(0)  # (P, out, J)
    if pad:
        inside = (j >= start[:, None]) & (j < (start + length)[:, None])  # (P, J)
        w = w * inside[:, None, :]
    w = w / w.sum(-1, keepdim=True).clamp_min(1e-300)
    return w[..., -lo : -lo + in_size]  # (P, out, in_size)


def resized_shape(height: int, width: int, resize_size: int) -> tuple[int, int]:
    """torchvision's Resize(int) output (h, w): the shorter side becomes resize_size, the longer is truncated."""
    if width <= height:
        return int(resize_size * height / width), resize_size
    return resize_size, int(resize_size * width / height)


def center_crop_start(size: int, out_size: int) -> int:
    """torchvision's CenterCrop offset, Python's round (half to even) included."""
    return int(round((size - out_size) / 2.0))


@lru_cache(maxsize=64)
def _clean_matrices_cpu(height: int, width: int, out_size: int, resize_size: int, crop: bool) -> tuple[Tensor, Tensor]:
    new_h, new_w = resized_shape(height, width, resize_size)
    one = torch.ones(1, dtype=torch.float64)
    wy = resample_matrix(height, new_h, 0 * one, height * one)[0]  # (new_h, H)
    wx = resample_matrix(width, new_w, 0 * one, width * one)[0]  # (new_w, W)
    if crop:
        top, left = center_crop_start(new_h, out_size), center_crop_start(new_w, out_size)
        wy, wx = wy[top : top + out_size], wx[left : left + out_size]
    return wy.to(torch.float32), wx.to(torch.float32)


def clean_matrices(
    height: int, width: int, out_size: int, resize_size: int, *, device: torch.device, crop: bool = True
) -> tuple[Tensor, Tensor]:
    """Wy, Wx of Resize(resize_size) followed (if ``crop``) by CenterCrop(out_size).

    Args:
        height, width: the input image size.
        out_size: the centre crop side (<= resize_size).
        resize_size: the shorter side after the resize.
        device: where the matrices go.
        crop: apply the centre crop (else the full resized image).

    Returns:
        wy: (out_size, height) float32, or (new_h, height) without the crop.
        wx: (out_size, width) float32, or (new_w, width) without the crop.
    """
    wy, wx = _clean_matrices_cpu(height, width, out_size, resize_size, crop)
    return wy.to(device), wx.to(device)


def resample(x: Tensor, wy: Tensor, wx: Tensor) -> Tensor:
    """Applies separable resampling weights: ``wy @ x @ wx^T``.

    Args:
        x: (..., C, H, W) float images.
        wy: (Oh, H) weights, or (P, Oh, H) one per view (then x's leading dims broadcast against P).
        wx: (Ow, W) weights, or (P, Ow, W).

    Returns:
        (..., C, Oh, Ow) with the broadcast leading dims of x and the weights.
    """
    if wy.dim() == 3:
        wy = wy.unsqueeze(-3)  # (P, 1, Oh, H): shared over channels
    if wx.dim() == 3:
        wx = wx.unsqueeze(-3)  # (P, 1, Ow, W)
    height, width = x.shape[-2], x.shape[-1]
    # Contract the longer axis first: it leaves the smaller intermediate.
    if width >= height:
        return wy @ (x @ wx.transpose(-1, -2))  # (..., C, H, Ow) then (..., C, Oh, Ow)
    return (wy @ x) @ wx.transpose(-1, -2)  # (..., C, Oh, W) then (..., C, Oh, Ow)


def clean(x: Tensor, out_size: int, resize_size: int) -> Tensor:
    """Resize(resize_size) + CenterCrop(out_size) of images or views.

    Args:
        x: (..., 3, H, W) float images.

    Returns:
        (..., 3, out_size, out_size).
    """
    wy, wx = clean_matrices(x.shape[-2], x.shape[-1], out_size, resize_size, device=x.device)
    return resample(x, wy.to(x.dtype), wx.to(x.dtype))


def reflect_indices(size: int, pad: int) -> Tensor:
    """Indices of a reflect-101 padding (torch's ``reflect``: the edge pixel is not repeated), any pad, any size >= 2.

    Returns:
        (size + 2 * pad,) int64 indices into [0, size).
    """
    i = torch.arange(-pad, size + pad).abs()
    period = 2 * (size - 1)
    i = i % period
    return torch.where(i >= size, period - i, i)


def fold_reflect(padded: Tensor, size: int, pad: int) -> Tensor:
    """The adjoint of ``reflect_indices`` along the last dim: adds each padded position onto the pixel it mirrors.

    Built from slice additions over the runs where the index map is monotone (a handful), so the result does not
    depend on the order of atomic additions (``index_add_`` on CUDA would).

    Args:
        padded: (..., size + 2 * pad).

    Returns:
        (..., size).
    """
    idx = reflect_indices(size, pad).tolist()
    out = padded.new_zeros(*padded.shape[:-1], size)
    start = 0
    while start < len(idx):
        end, step = start + 1, 1
        if end < len(idx):
            step = idx[end] - idx[start]
            while end < len(idx) and idx[end] - idx[end - 1] == step:
                end += 1
        segment = padded[..., start:end]
        lo = min(idx[start], idx[end - 1])
        out[..., lo : lo + end - start] += segment if step == 1 else segment.flip(-1)
        start = end
    return out


def reflect_pad(x: Tensor, pad_h: int, pad_w: int) -> Tensor:
    """Reflect-101 padding of the last two dims, any pad (``F.pad`` when it allows, index folding otherwise).

    Args:
        x: (N, C, H, W) with H, W >= 2.

    Returns:
        (N, C, H + 2 pad_h, W + 2 pad_w).
    """
    height, width = x.shape[-2:]
    if pad_h < height and pad_w < width:
        return torch.nn.functional.pad(x, (pad_w, pad_w, pad_h, pad_h), mode="reflect")
    x = x.index_select(-2, reflect_indices(height, pad_h).to(x.device))
    return x.index_select(-1, reflect_indices(width, pad_w).to(x.device))
