"""Geometric ops on tensors, batched over views: torchvision's affine / rotate (one ``grid_sample`` for all views)
and the crop boxes of ``resized_crop``.

Conventions are torchvision's (and PIL's, which agree): pixel (i, j) covers [j, j + 1) x [i, i + 1), the centre of
rotation, scale and shear is the image centre (W / 2, H / 2), positive ``affine`` angles turn clockwise and positive
``rotate`` angles counter-clockwise, corners outside the image are black. The sampling grid is built as torchvision's
``_gen_affine_grid`` does (float32 pixel grid times the inverse matrix), so nearest-neighbour picks agree with
torchvision's tensor path. Interpolation is nearest, torchvision's default, which the reference code used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from inv_kernels.transforms.resample import center_crop_start, resample_matrix, resized_shape


def inverse_affine_matrices(angle: Tensor, translate: Tensor, scale: Tensor, shear: Tensor) -> Tensor:
    """torchvision's ``_get_inverse_affine_matrix`` about the image centre, batched.

    Args:
        angle: (P,) degrees, clockwise (torchvision ``affine``; ``rotate(a)`` is ``affine(-a)``).
        translate: (P, 2) pixels (tx, ty).
        scale: (P,) factors.
        shear: (P, 2) degrees (sx, sy).

    Returns:
        (P, 2, 3) float64: output pixel (x, y, 1), centred coordinates, -> input pixel (x, y), centred coordinates.
    """
    rot = torch.deg2rad(angle.to(torch.float64))
    sx, sy = torch.deg2rad(shear.to(torch.float64)).unbind(-1)
    tx, ty = translate.to(torch.float64).unbind(-1)
    scale = scale.to(torch.float64)
    # RSS = R(a) S(s) SHy(sy) SHx(sx) without the scale; det([[a, b], [c, d]]) = 1.
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -torch.cos(rot - sy) * torch.tan(sx) / torch.cos(sy) - torch.sin(rot)
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = -torch.sin(rot - sy) * torch.tan(sx) / torch.cos(sy) + torch.cos(rot)
    m00, m01, m10, m11 = d / scale, -b / scale, -c / scale, a / scale
    m02 = m00 * -tx + m01 * -ty  # the centre offsets cancel: the grid is already centred
    m12 = m10 * -tx + m11 * -ty
    return torch.stack([torch.stack([m00, m01, m02], -1), torch.stack([m10, m11, m12], -1)], -2)  # (P, 2, 3)


def affine_grid(theta: Tensor, height: int, width: int, device: torch.device) -> Tensor:
    """torchvision's ``_gen_affine_grid``: normalised sampling positions, align_corners=False.

    Args:
        theta: (P, 2, 3) inverse matrices from ``inverse_affine_matrices``.

    Returns:
        (P, height, width, 2) float32 grid for ``grid_sample``.
    """
    base = torch.empty(height, width, 3, dtype=torch.float32, device=device)
    base[..., 0] = torch.linspace(-width * 0.5 + 0.5, width * 0.5 - 0.5, width, device=device)
    base[..., 1] = torch.linspace(-height * 0.5 + 0.5, height * 0.5 - 0.5, height, device=device)[:, None]
    base[..., 2] = 1.0
    norm = torch.tensor([0.5 * width, 0.5 * height], dtype=torch.float32, device=device)
    rescaled = theta.to(device=device, dtype=torch.float32).transpose(1, 2) / norm  # (P, 3, 2)
    return (base.view(1, height * width, 3) @ rescaled).view(-1, height, width, 2)  # (P, H*W, 2) -> (P, H, W, 2)


def affine_views(image: Tensor, theta: Tensor, *, interpolation: str = "nearest") -> Tensor:
    """Warps one image once per inverse matrix (black outside).

    Args:
        image: (C, H, W) float image.
        theta: (P, 2, 3) inverse matrices.
        interpolation: ``"nearest"`` or ``"bilinear"``.

    Returns:
        (P, C, H, W) float views.
    """
    height, width = image.shape[-2:]
    grid = affine_grid(theta, height, width, image.device)  # (P, H, W, 2)
    src = image.unsqueeze(0).expand(theta.shape[0], *image.shape)  # (P, C, H, W) without a copy
    return F.grid_sample(src, grid, mode=interpolation, padding_mode="zeros", align_corners=False)


def rotation_matrices(angle: Tensor) -> Tensor:
    """Inverse matrices of torchvision ``rotate(angle)`` (counter-clockwise degrees), (P,) -> (P, 2, 3)."""
    p = angle.shape[0]
    zeros = torch.zeros(p, dtype=torch.float64)
    return inverse_affine_matrices(-angle, torch.zeros(p, 2), torch.ones(p), torch.stack([zeros, zeros], -1))


def paper_crop_boxes(top: Tensor, left: Tensor, height: Tensor, width: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The integer boxes PIL cuts for ``crop(img, top, left, height, width)`` with float arguments: it rounds each
    edge (``img.crop((left, top, left + width, top + height))``), half to even.

    Args:
        top, left, height, width: (P,) float64.

    Returns:
        top, left, height, width: (P,) float64 holding integers.
    """
    y0, x0 = torch.round(top), torch.round(left)  # torch.round rounds half to even, as Python's round
    return y0, x0, torch.round(top + height) - y0, torch.round(left + width) - x0


def corrected_crop_boxes(
    top: Tensor, left: Tensor, height: Tensor, width: Tensor, image_h: int, image_w: int, resize_size: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Boxes given in the central resize_size x resize_size square of the Resize(resize_size) image, mapped to raw
    pixels (fractional): the frame the reference's coordinates were designed for.

    Args:
        top, left, height, width: (P,) float64 in resized pixels.
        image_h, image_w: raw image size.

    Returns:
        top, left, height, width: (P,) float64 in raw pixels.
    """
    new_h, new_w = resized_shape(image_h, image_w, resize_size)
    sy, sx = image_h / new_h, image_w / new_w  # raw pixels per resized pixel
    oy, ox = (new_h - resize_size) / 2.0, (new_w - resize_size) / 2.0  # the square's corner, resized pixels
    return (top + oy) * sy, (left + ox) * sx, height * sy, width * sx


def crop_matrices(
    boxes: tuple[Tensor, Tensor, Tensor, Tensor], image_h: int, image_w: int, out_size: int, *, pad: bool
) -> tuple[Tensor, Tensor]:
    """Resampling weights that cut each box and resize it to out_size x out_size.

    Args:
        boxes: top, left, height, width, each (P,) float64 in raw pixels.
        pad: PIL crop semantics (zeros outside the image), for integer boxes; else resize-box semantics.

    Returns:
        wy: (P, out_size, image_h) float32.
        wx: (P, out_size, image_w) float32.
    """
    top, left, height, width = boxes
    wy = resample_matrix(image_h, out_size, top, height, pad=pad)
    wx = resample_matrix(image_w, out_size, left, width, pad=pad)
    return wy.to(torch.float32), wx.to(torch.float32)


def center_crop(x: Tensor, out_size: int) -> Tensor:
    """torchvision's CenterCrop for images at least out_size on each side: (..., H, W) -> (..., out, out)."""
    top, left = center_crop_start(x.shape[-2], out_size), center_crop_start(x.shape[-1], out_size)
    return x[..., top : top + out_size, left : left + out_size]
