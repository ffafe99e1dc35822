"""The parameter grids of the 18 synthetic transform families (docs/METHOD.md 4.2), read off the reference code's
``ManualTransform`` (``eval_synthetic_invariance.py`` L41-194) and built the same way, so every value is the float32
number the reference handed to torchvision.

A grid is a dict of tensors whose first dimension is k (one row per view). Float parameters are float64 tensors
holding the reference's float32 values exactly; flags are bool; counts and seeds are int64. ``out_size`` and
``resize_size`` are the reference's ``crop_size`` (224) and ``resize`` (256): the translation offsets, the crop boxes
and the paper-mode blur kernel depend on them.

Modes (docs/METHOD.md 12): ``paper`` keeps the reference's values, quirks included (the 1 degree x-shear of translation and
scale, the fixed blur kernel ``1 + out_size // 20 * 2`` = 23); ``corrected`` drops the stray shear and sizes the blur
kernel from sigma (``2 * ceil(3 sigma) + 1``). Where a quirk lies in how a value is applied rather than in the value
(translation and resized_crop coordinates, deform), the grids are the same in both modes and ``families.py`` differs.
"""

from __future__ import annotations

import math
from itertools import product

import torch
from torch import Tensor

MODES: tuple[str, ...] = ("paper", "corrected")

# Seeds of the deform family: view j draws its randomness from DEFORM_SEED_BASE + j, nothing else.
DEFORM_SEED_BASE = 0x1E1A5_000
# The reference's sigma values 10..50 (torch.linspace(10, 50, 8).to(int)), tiled 32 times; points 2..9 interleaved.
DEFORM_SIGMAS: tuple[int, ...] = (10, 15, 21, 27, 32, 38, 44, 50)


def check_mode(op: str, mode: object) -> str:
    """Returns ``mode`` if it is one of MODES.

    Raises:
        ValueError: any other value (the message lists the valid ones).
    """
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"{op}: mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    return mode


def _f32(values: Tensor) -> Tensor:
    """float32 values (the reference's tensors) widened to float64 without changing them."""
    return values.to(torch.float32).to(torch.float64)


def _linspace32(start: float, end: float, steps: int) -> Tensor:
    return _f32(torch.linspace(start, end, steps, dtype=torch.float32))


def _binary() -> dict[str, Tensor]:
    return {"on": torch.tensor([False, True])}


def _square_side(k: int, name: str) -> int:
    side = math.isqrt(k)
    if side * side != k:
        raise ValueError(f"{name}: k must be a perfect square, got {k}")
    return side


def rotation_grid(mode: str, out_size: int, resize_size: int) -> dict[str, Tensor]:
    """angle (256,) degrees counter-clockwise: linspace(0, 360, 257)[:256]."""
    return {"angle": _f32(torch.linspace(0, 360, 257, dtype=torch.float32)[:256])}


def translation_offsets(out_size: int, resize_size: int, k: int = 256) -> Tensor:
    """The 16 offsets per axis in pixels: linspace(-s, s, 17)[:16] * resize_size, s = (1 - out/resize) / 2."""
    side = _square_side(k, "translation")
    space = (1 - (out_size / resize_size)) / 2
    a = torch.linspace(-space, space, side + 1, dtype=torch.float32)[:side]
    return _f32(a * resize_size)  # float32 product, as float(a * resize) in the reference


def degenerate_reason(name: str, out_size: int, resize_size: int, mode: str | None = None) -> str | None:
    """Why every view of a family's grid leaves the clean image unchanged at these sizes (so its score would say
    nothing about invariance), or None when the grid varies the image.

    Translation moves the image within the margin that cropping ``out_size`` from ``resize_size`` leaves; when the
    two are equal every offset is 0 px (in paper mode the views differ only by the stray 1 degree shear). Paper-mode
    blur has a fixed kernel of ``1 + out_size // 20 * 2`` px: 1 px, no blur at all, below a crop of 20 px (checked
    when ``mode`` is given).
    """
    if name == "translation" and not bool(translation_offsets(out_size, resize_size).abs().gt(0).any()):
        return f"every offset is 0 px: the crop size ({out_size}) equals the resize size ({resize_size})"
    if name == "blur" and mode is not None:
        sizes = blur_grid(check_mode("degenerate_reason", mode), out_size, resize_size)["kernel_size"]
        if bool(sizes.eq(1).all()):
            return f"the {mode}-mode blur kernel is 1 px wide at a crop size of {out_size} (1 + {out_size} // 20 * 2)"
    return None


def translation_grid(mode: str, out_size: int, resize_size: int) -> dict[str, Tensor]:
    """translate (256, 2) (tx, ty) pixels, tx varying slowest; shear (256, 2) degrees: (1, 0) in paper mode."""
    a = translation_offsets(out_size, resize_size).tolist()
    translate = torch.tensor(list(product(a, a)), dtype=torch.float64)  # (256, 2)
    shear = torch.zeros(256, 2, dtype=torch.float64)
    if mode == "paper":
        shear[:, 0] = 1.0  # the reference passes shear=1.0, i.e. a 1 degree x-shear
    return {"translate": translate, "shear": shear}


def scale_grid(mode: str, out_size: int, resize_size: int) -> dict[str, Tensor]:
    """scale (256,): linspace(0.25, 2, 256); shear (256, 2) degrees: (1, 0) in paper mode."""
    shear = torch.zeros(256, 2, dtype=torch.float64)
    if mode == "paper":
        shear[:, 0] = 1.0
    return {"scale": _linspace32(0.25, 2.0, 256), "shear": shear}


def shear_grid(mode: str, out_size: int, resize_size: int) -> dict[str, Tensor]:
    """shear (256, 2) (sx, sy) degrees over {-160, -140, ..., 140}, sx varying slowest."""
    a = _f32(torch.linspace(-160, 160, 17, dtype=torch.float32)[:16]).tolist()
    return {"shear": torch.tensor(list(product(a, a)), dtype=torch.float64)}


def resized_crop_grid(mode: str, out_size: int, resize_size: int) -> dict[str, Tensor]:
    """top, left, height, width (256,) each, in pixels of a resize_size-px image; product order top, left, height,
    width (top slowest). top, left in linspace(0, 0.25, 4) * resize; height, width in linspace(0.75, 0.25, 4) * resize.
    """
    n = 4
    a = _f32(torch.linspace(0, 0.25, n, dtype=torch.float32) * resize_size).tolist()
    b = _f32(torch.linspace(0.75, 0.25, n, dtype=torch.float32) * resize_size).tolist()
    top, left, height, width = (torch.tensor(col, dtype=torch.float64) for col in zip(*product(a, a, b, b)))
    return {"top": top, "left": left, "height": height, "width": width}


def deform_grid(mode: str, out_size: int, resize_size: int) -> dict[str, Tensor]:
    """sigma (256,) int64: (10, 15, 21, 27, 32, 38, 44, 50) tiled 32 times; points (256,) int64: 2..9 each repeated
    32 times (the reference builds but ignores it; corrected mode uses it); seed (256,) int64 per view."""
    sigma = torch.linspace(10, 50, 8, dtype=torch.float32).to(torch.int64).repeat(32)
    points = torch.repeat_interleave(torch.arange(2, 10), 32)
    return {"sigma": sigma, "points": points, "seed": DEFORM_SEED_BASE + torch.arange(256)}


def blur_kernel_sizes(sigma: Tensor, mode: str, out_size: int) -> Tensor:
    """Kernel sizes (k,) int64: ``1 + out_size // 20 * 2`` (23) in paper mode; ``2 * ceil(3 sigma) + 1`` otherwise."""
    if mode == "paper":
        return torch.full(sigma.shape, 1 + out_size // 20 * 2, dtype=torch.int64)
    return (2 * torch.ceil(3 * sigma) + 1).to(torch.int64)


def blur_grid(mode: str, out_size: int, resize_size: int) -> dict[str, Tensor]:
    """sigma (256,): linspace(1e-5, 20, 256); kernel_size (256,) int64 (see ``blur_kernel_sizes``)."""
    sigma = _linspace32(1e-5, 20.0, 256)
    return {"sigma": sigma, "kernel_size": blur_kernel_sizes(sigma, mode, out_size)}


def _factor_grid(start: float, end: float):
    def grid(mode: str, out_size: int, resize_size: int) -> dict[str, Tensor]:
        return {"factor": _linspace32(start, end, 256)}

    grid.__doc__ = f"factor (256,): linspace({start}, {end}, 256)."
    return grid


def binary_grid(mode: str, out_size: int, resize_size: int) -> dict[str, Tensor]:
    """on (2,) bool: (False, True); the off view is the clean view."""
    return _binary()


def posterize_grid(mode: str, out_size: int, resize_size: int) -> dict[str, Tensor]:
    """bits (7,) int64: 1..7."""
    return {"bits": torch.arange(1, 8)}


GRIDS = {
    "rotation": rotation_grid,
    "translation": translation_grid,
    "scale": scale_grid,
    "shear": shear_grid,
    "resized_crop": resized_crop_grid,
    "h_flip": binary_grid,
    "v_flip": binary_grid,
    "deform": deform_grid,
    "grayscale": binary_grid,
    "brightness": _factor_grid(0.25, 5.0),
    "contrast": _factor_grid(0.25, 5.0),
    "saturation": _factor_grid(0.25, 5.0),
    "hue": _factor_grid(-0.5, 0.5),
    "blur": blur_grid,
    "sharpness": _factor_grid(1.0, 30.0),
    "invert": binary_grid,
    "equalize": binary_grid,
    "posterize": posterize_grid,
}
