"""The ``deform`` family: elastic deformations, deterministic per grid index, in torch on any device.

What the reference code does (``eval_synthetic_invariance.py`` L30-36, docs/METHOD.md 4.2 and 12): it calls albumentations
1.0.3 ``ElasticTransform(sigma=s, always_apply=True, approximate=True)``, so alpha = 1, alpha_affine = 50 and borders
reflect-101. That op (i) warps the image by a random affine that moves three points at the centre +-min(H, W) // 3
by U(-50, 50) raw pixels each, then (ii) displaces every pixel by ``alpha * blur17(U(-1, 1) noise, sigma)`` (a
fixed 17x17 Gaussian kernel in approximate mode). With alpha = 1 the displacement (ii) is a small fraction of a
pixel, so the random affine dominates and sigma barely matters; python's ``random`` is never seeded, so no two runs
agree. The ``points`` values (2..9) the reference builds are ignored.

``paper`` mode reproduces that op deterministically: view j draws the affine jitter and both noise fields from its
own seed (``grids.DEFORM_SEED_BASE + j``), so the same index gives the same view in every call and on every device.
Differences from albumentations: the two resamplings (warpAffine, then remap) are composed into one bilinear
lookup, sharper by one interpolation; the noise comes from a counter-based hash (identical on CPU and GPU), not
numpy's generator; images under 3 px on a side get no affine (cv2 would fail on the degenerate points).

``corrected`` mode reads the reference's ``deform(img, points, sigma)`` as the signature it copies,
``elasticdeform.deform_random_grid(X, sigma, points)``: a points x points grid of control points spanning the image
(corners on the corner pixels) gets N(0, sigma^2) displacements, upsampled to every pixel (bicubic), and the image is
sampled bilinearly at p + d(p) with black outside (elasticdeform uses cubic spline sampling). sigma is in pixels of
the Resize(resize_size) frame the model sees (raw pixels = sigma * min(H, W) / resize_size), so the strength does
not depend on the raw resolution. Larger sigma moves pixels further; more points make the field rougher.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from inv_kernels.transforms.resample import reflect_pad

PAPER_ALPHA = 1.0
PAPER_ALPHA_AFFINE = 50.0
PAPER_KERNEL = 17
_MASK32 = 0xFFFFFFFF


def _mix32(value: int) -> int:
    """A 32-bit key from an integer (splitmix64's finaliser, on Python ints)."""
    z = (value + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) & _MASK32


def hash_uniform(seeds: list[int], numel: int, device: torch.device) -> Tensor:
    """Counter-based uniform numbers in [0, 1), one stream per seed: the same on every device.

    Returns:
        (len(seeds), numel) float32.
    """
    keys = torch.tensor([_mix32(int(s)) for s in seeds], dtype=torch.int64, device=device)[:, None]
    # int64 arithmetic: every product stays below 2**63 (a 32-bit value times a 31-bit constant).
    x = (torch.arange(numel, dtype=torch.int64, device=device) * 0x27D4EB2F + keys) & _MASK32  # (S, numel)
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x2C1B3C6D) & _MASK32
    x = x ^ (x >> 16)
    return (x >> 8).to(torch.float32) * (1.0 / (1 << 24))


def _fold(coord: Tensor, size: int) -> Tensor:
    """Reflect-101 of continuous pixel coordinates into [0, size - 1] (exact for linear interpolation)."""
    period = 2 * (size - 1)
    c = coord.remainder(period)
    return (size - 1) - (c - (size - 1)).abs()


def paper_noise(seeds: Tensor, sigma: Tensor, height: int, width: int, device: torch.device) -> Tensor:
    """albumentations' approximate displacement: alpha * GaussianBlur17(U(-1, 1), sigma), reflect-101 borders.

    Args:
        seeds: (P,) int64 view seeds.
        sigma: (P,) Gaussian sigmas in pixels.

    Returns:
        (P, 2, H, W) float32 displacement (dx, dy) in pixels.
    """
    p = seeds.shape[0]
    streams = [2 * s + c for s in seeds.tolist() for c in (0, 1)]  # dx, dy per view
    noise = hash_uniform(streams, height * width, device).view(1, 2 * p, height, width) * 2 - 1
    x = torch.arange(PAPER_KERNEL, dtype=torch.float64) - PAPER_KERNEL // 2
    g = torch.exp(-(x**2) / (2 * sigma.to(torch.float64)[:, None] ** 2))  # (P, 17): cv2.getGaussianKernel
    g = (g / g.sum(-1, keepdim=True)).repeat_interleave(2, 0).to(device=device, dtype=torch.float32)  # (2P, 17)
    pad = PAPER_KERNEL // 2
    noise = reflect_pad(noise, pad, pad)  # (1, 2P, H + 16, W + 16)
    noise = F.conv2d(noise, g.view(2 * p, 1, PAPER_KERNEL, 1), groups=2 * p)
    noise = F.conv2d(noise, g.view(2 * p, 1, 1, PAPER_KERNEL), groups=2 * p)
    return PAPER_ALPHA * noise.view(p, 2, height, width)


def paper_affine(seed: int, height: int, width: int) -> Tensor:
    """The inverse of albumentations' random affine for one view, in cv2 pixel coordinates (centres on integers).

    Returns:
        (2, 3) float64 mapping an output pixel (x, y, 1) to the input pixel it samples.
    """
    square = min(height, width) // 3
    if square == 0:
        return torch.eye(2, 3, dtype=torch.float64)
    c0, c1 = height // 2, width // 2  # albumentations' centre_square (its (h, w) order, used as (x, y))
    pts1 = torch.tensor(
        [[c0 + square, c1 + square], [c0 + square, c1 - square], [c0 - square, c1 - square]], dtype=torch.float64
    )
    gen = torch.Generator().manual_seed(int(seed))
    pts2 = pts1 + (torch.rand(3, 2, generator=gen, dtype=torch.float64) * 2 - 1) * PAPER_ALPHA_AFFINE
    ones = torch.ones(3, 1, dtype=torch.float64)
    forward = torch.linalg.solve(torch.cat([pts1, ones], 1), pts2).T  # (2, 3): pts1 -> pts2 (cv2.getAffineTransform)
    full = torch.cat([forward, torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)])
    return torch.linalg.inv(full)[:2]  # warpAffine samples the source at M^-1 (x, y)


def corrected_displacement(seed: int, points: int, sigma_px: float, height: int, width: int, device) -> Tensor:
    """elasticdeform-style field: N(0, sigma_px^2) at points x points control points, bicubic to every pixel.

    Returns:
        (2, H, W) float32 displacement (dx, dy) in raw pixels.
    """
    gen = torch.Generator().manual_seed(int(seed))
    coarse = torch.randn(1, 2, points, points, generator=gen, dtype=torch.float64) * sigma_px
    coarse = coarse.to(device=device, dtype=torch.float32)
    return F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)[0]


def _pixel_grid(height: int, width: int, device: torch.device) -> tuple[Tensor, Tensor]:
    ys = torch.arange(height, dtype=torch.float32, device=device)[:, None].expand(height, width)
    xs = torch.arange(width, dtype=torch.float32, device=device)[None, :].expand(height, width)
    return xs, ys


def _normalised(x: Tensor, y: Tensor, height: int, width: int) -> Tensor:
    """Pixel-centre coordinates -> grid_sample's [-1, 1] with align_corners=True: (...) x 2 -> (..., 2)."""
    return torch.stack([x * (2.0 / (width - 1)) - 1, y * (2.0 / (height - 1)) - 1], -1)


def deform_views(image: Tensor, sigma: Tensor, points: Tensor, seeds: Tensor, *, mode: str, resize_size: int) -> Tensor:
    """Deformed views of one image, each from its own seed.

    Args:
        image: (3, H, W) float image, H, W >= 2.
        sigma: (P,) int64 sigma values of the grid.
        points: (P,) int64 control-point counts (corrected mode).
        seeds: (P,) int64 view seeds.
        mode: ``"paper"`` or ``"corrected"``.
        resize_size: the evaluation resize (corrected mode's sigma frame).

    Returns:
        (P, 3, H, W) float32 views at the image's resolution.
    """
    height, width = image.shape[-2:]
    device = image.device
    xs, ys = _pixel_grid(height, width, device)  # (H, W) each
    if mode == "paper":
        d = paper_noise(seeds, sigma, height, width, device)  # (P, 2, H, W)
        qx, qy = _fold(xs + d[:, 0], width), _fold(ys + d[:, 1], height)  # remap, reflect-101
        inv = torch.stack([paper_affine(int(s), height, width) for s in seeds.tolist()])
        inv = inv.to(device=device, dtype=torch.float32)[:, :, :, None, None]  # (P, 2, 3, 1, 1)
        rx = inv[:, 0, 0] * qx + inv[:, 0, 1] * qy + inv[:, 0, 2]  # (P, H, W): warpAffine's source pixel
        ry = inv[:, 1, 0] * qx + inv[:, 1, 1] * qy + inv[:, 1, 2]
        grid = _normalised(_fold(rx, width), _fold(ry, height), height, width)
        padding = "border"  # folded coordinates are inside; border only guards rounding at the edge
    else:
        sigma_px = sigma.to(torch.float64) * (min(height, width) / resize_size)
        d = torch.stack(
            [
                corrected_displacement(int(s), int(n), float(sp), height, width, device)
                for s, n, sp in zip(seeds.tolist(), points.tolist(), sigma_px.tolist())
            ]
        )  # (P, 2, H, W)
        grid = _normalised(xs + d[:, 0], ys + d[:, 1], height, width)
        padding = "zeros"
    src = image.unsqueeze(0).expand(seeds.shape[0], *image.shape)
    return F.grid_sample(src, grid, mode="bilinear", padding_mode=padding, align_corners=True)
