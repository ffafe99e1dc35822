"""Photometric ops on one float image in [0, 1], batched over per-view factors.

Each follows torchvision's tensor implementation (``transforms.v2.functional``) on float images, which mirrors PIL's
``ImageEnhance`` / ``ImageOps`` used by the reference code; the differences from PIL are PIL's uint8 rounding after
every step and its luma weights (0.299 vs torchvision's 0.2989, and an integer-rounded mean in ``adjust_contrast``).
``equalize`` and ``posterize`` are defined on uint8 (as PIL): the image is quantised with round(x * 255) first (exact
for images that came from uint8), and the result is returned as float again.

Shapes: ``image`` is (3, H, W); factors are (P,) on the image's device; results are (P, 3, H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from inv_kernels.transforms.resample import fold_reflect


def _col(factor: Tensor, like: Tensor) -> Tensor:
    return factor.to(device=like.device, dtype=like.dtype).view(-1, 1, 1, 1)  # (P, 1, 1, 1)


def rgb_to_gray(image: Tensor) -> Tensor:
    """torchvision's luma, 0.2989 R + 0.587 G + 0.114 B: (..., 3, H, W) -> (..., 1, H, W)."""
    r, g, b = image.unbind(-3)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)


def grayscale(image: Tensor) -> Tensor:
    """``rgb_to_grayscale(image, num_output_channels=3)``: (3, H, W) -> (3, H, W), the luma in every channel."""
    return rgb_to_gray(image).expand_as(image)


def blend(image: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """``clamp(factor * image + (1 - factor) * other, 0, 1)`` per view (torchvision's ``_blend``)."""
    f = _col(factor, image)
    return (f * image + (1 - f) * other).clamp_(0, 1)


def adjust_brightness(image: Tensor, factor: Tensor) -> Tensor:
    """Blend with black."""
    return blend(image, torch.zeros_like(image), factor)


def adjust_contrast(image: Tensor, factor: Tensor) -> Tensor:
    """Blend with the mean luma of the image (one scalar per image)."""
    return blend(image, rgb_to_gray(image).mean(), factor)


def adjust_saturation(image: Tensor, factor: Tensor) -> Tensor:
    """Blend with the luma image."""
    return blend(image, rgb_to_gray(image), factor)


def _rgb_to_hsv(image: Tensor) -> Tensor:
    """(3, H, W) RGB in [0, 1] -> (3, H, W) HSV in [0, 1] (torchvision's ``_rgb_to_hsv``)."""
    r, g, b = image.unbind(-3)
    maxc, minc = image.amax(-3), image.amin(-3)
    eqc = maxc == minc
    cr = maxc - minc
    s = cr / torch.where(eqc, torch.ones_like(maxc), maxc)
    cr_div = torch.where(eqc, torch.ones_like(cr), cr)
    rc, gc, bc = (maxc - r) / cr_div, (maxc - g) / cr_div, (maxc - b) / cr_div
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), -3)


def _hsv_to_rgb(h: Tensor, s: Tensor, v: Tensor) -> Tensor:
    """h (P, H, W), s and v (H, W) -> (P, 3, H, W) RGB.

    The closed form c_n = v - v s clamp(min(k, 4 - k), 0, 1), k = (n + 6 h) mod 6, n = 5, 3, 1 for R, G, B, equals
    torchvision's sector table (``_hsv_to_rgb``) up to float rounding and needs no gather.
    """
    n = torch.tensor([5.0, 3.0, 1.0], dtype=h.dtype, device=h.device).view(1, 3, 1, 1)
    k = (n + 6.0 * h.unsqueeze(1)).remainder(6.0)  # (P, 3, H, W)
    return v - v * s * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)


def adjust_hue(image: Tensor, factor: Tensor) -> Tensor:
    """Rotates the hue by ``factor`` turns (in [-0.5, 0.5]) in HSV space."""
    h, s, v = _rgb_to_hsv(image).unbind(-3)  # (H, W) each
    f = factor.to(device=image.device, dtype=image.dtype).view(-1, 1, 1)
    return _hsv_to_rgb((h + f).remainder(1.0), s, v)


def sharpness_degenerate(image: Tensor) -> Tensor:
    """PIL's SMOOTH filter ([[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13) inside, the image itself on the 1-px border."""
    kernel = torch.ones(3, 3, dtype=image.dtype, device=image.device)
    kernel[1, 1] = 5.0
    kernel = (kernel / 13.0).expand(3, 1, 3, 3)
    out = image.clone()
    out[..., 1:-1, 1:-1] = F.conv2d(image.unsqueeze(0), kernel, groups=3)[0]
    return out


def adjust_sharpness(image: Tensor, factor: Tensor) -> Tensor:
    """Blend with the smoothed image (factor 1 is the identity, > 1 sharpens)."""
    if image.shape[-1] <= 2 or image.shape[-2] <= 2:
        return image.unsqueeze(0).expand(factor.shape[0], *image.shape).clone()
    return blend(image, sharpness_degenerate(image), factor)


def to_uint8(image: Tensor) -> Tensor:
    """round(x * 255) as uint8 (the quantisation used where an op is defined on uint8)."""
    return torch.round(image * 255).clamp_(0, 255).to(torch.uint8)


def equalize(image: Tensor) -> Tensor:
    """PIL's ``ImageOps.equalize`` per channel on uint8 (torchvision v2's batched form): (3, H, W) -> (3, H, W)."""
    flat = to_uint8(image).flatten(-2).to(torch.int64)  # (3, HW)
    hist = torch.zeros(3, 256, dtype=torch.int64, device=image.device).scatter_add_(-1, flat, torch.ones_like(flat))
    cum = hist.cumsum(-1)  # (3, 256)
    top = hist.gather(-1, cum.argmax(-1, keepdim=True))  # count of the largest value present
    step = torch.div(flat.shape[-1] - top, 255, rounding_mode="floor")  # (3, 1)
    valid = step != 0
    step = step.clamp_min(1)
    lut = torch.div(cum[:, :-1] + torch.div(step, 2, rounding_mode="floor"), step, rounding_mode="floor")
    lut = torch.cat([torch.zeros_like(lut[:, :1]), lut.clamp(0, 255)], -1)  # (3, 256): lut[k] from cum[k - 1]
    out = torch.where(valid, lut.gather(-1, flat), flat)  # (3, HW)
    return (out.to(image.dtype) / 255).view_as(image)


def posterize(image: Tensor, bits: Tensor) -> Tensor:
    """Keeps the top ``bits`` bits of each uint8 value: (3, H, W), bits (P,) int -> (P, 3, H, W)."""
    mask = (256 - 2 ** (8 - bits.to(device=image.device, dtype=torch.int64))).to(torch.uint8).view(-1, 1, 1, 1)
    return (to_uint8(image).unsqueeze(0) & mask).to(image.dtype) / 255


def gaussian_kernels(sigma: Tensor, kernel_size: Tensor) -> Tensor:
    """torchvision's 1-D Gaussian kernels, zero-padded to the largest size, centred.

    Args:
        sigma: (P,) float64.
        kernel_size: (P,) odd int64.

    Returns:
        (P, K) float64, K = max(kernel_size); kernel p occupies the central kernel_size[p] taps.
    """
    size = int(kernel_size.max())
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2  # (K,) offsets from the centre
    half = ((kernel_size - 1) / 2).to(torch.float64)[:, None]  # (P, 1)
    pdf = torch.exp(-0.5 * (x / sigma.to(torch.float64)[:, None]) ** 2) * (x.abs() <= half)  # (P, K)
    return pdf / pdf.sum(-1, keepdim=True)


def blur_rows(rows: Tensor, weights: Tensor) -> Tensor:
    """Composes resampling rows with 1-D convolutions that pad with reflect-101 (as torchvision's blur): returns
    ``rows @ B_p`` for each kernel p, B_p the convolution's (N, N) matrix, without forming B_p.

    (rows @ B_p)[o, j] = sum_t w_p[t] G[o, t, j], where G[:, t] = rows shifted by t taps into the padded axis and
    folded back onto the pixels it mirrors. G takes slices and additions, the sum over t one matmul: no atomics,
    so the result is the same on every call.

    Args:
        rows: (O, N) float resampling weights over an axis of N >= 2 pixels.
        weights: (P, K) float kernels, K odd, on rows' device.

    Returns:
        (P, O, N) composed weights, rows' dtype.
    """
    k, n = weights.shape[1], rows.shape[-1]
    # shifted[o, t, q] = rows[o, q - t] on the padded axis q in [0, N + K - 1)
    shifted = F.pad(rows, (k - 1, k - 1)).unfold(-1, n + k - 1, 1).flip(1)  # (O, K, N + K - 1)
    g = fold_reflect(shifted, n, k // 2)  # (O, K, N)
    return torch.einsum("pt,otn->pon", weights.to(rows.dtype), g)
