"""Per-view augmentation parameters, drawn apart from the arithmetic (CONTRIBUTING.md, "Randomness apart from
arithmetic").

``sample_augment_params`` draws every random choice of a view from a torch.Generator, vectorised over views, into
``AugmentParams``: flat per-view tensors that the torch reference, a fused kernel or DALI consume alike.

Draw layout (fixed, whatever the recipe, so two recipes given the same generator state share e.g. their crop boxes):
per view, in this order of calls: crop area (B, 10), crop log-ratio (B, 10), crop top (B,), crop left (B,), flip (B,),
jitter apply (B,), jitter factors (B, 4), jitter order keys (B, 4), grayscale (B,), blur apply (B,), blur sigma (B,),
all float64 uniforms in [0, 1). An op the recipe lacks is masked to its identity.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from inv_kernels.augment.recipes import Recipe, get_recipe
from inv_kernels.ops.augment_params import AugmentParams, check_image_sizes

ATTEMPTS = 10  # torchvision RandomResizedCrop.get_params tries 10 boxes before the centre fallback
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")  # jitter_order indexes these


def centre_square_box(sizes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The box that Resize(S) (shorter side) + CenterCrop(S) keeps, in source pixels: the centred square of side
    min(H, W), offsets rounded as CenterCrop rounds them. Exact for square images; otherwise the torchvision
    pipeline's box differs by about one view pixel at most (Resize truncates the longer side to
    int(S * long / short) and CenterCrop rounds its offset; e.g. 0.4 source pixels for 375 x 500 at S = 224).

    Args:
        sizes: (B, 2) int64 (H, W).

    Returns:
        top, left, height, width: (B,) int64 each.
    """
    h, w = sizes[:, 0], sizes[:, 1]
    side = torch.minimum(h, w)
    top = torch.round((h - side).double() / 2).long()
    left = torch.round((w - side).double() / 2).long()
    return top, left, side, side.clone()


def _random_resized_crop(sizes: Tensor, scale, ratio, u_area, u_logr, u_top, u_left):
    """torchvision RandomResizedCrop.get_params, with its 10 attempts vectorised.

    sizes (B, 2); u_area, u_logr (B, 10); u_top, u_left (B,) float64 uniforms. Returns top, left, h, w (B,) int64.
    """
    height, width = sizes[:, 0:1].double(), sizes[:, 1:2].double()  # (B, 1)
    target = height * width * (scale[0] + (scale[1] - scale[0]) * u_area)  # (B, 10)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u_logr)  # (B, 10)
    w = torch.round(torch.sqrt(target * aspect))  # half to even, as Python's round
    h = torch.round(torch.sqrt(target / aspect))
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)  # (B, 10)
    first = ok.to(torch.uint8).argmax(dim=1, keepdim=True)  # (B, 1): the first attempt that fits
    found = ok.any(dim=1)  # (B,)
    w_try, h_try = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0]  # (B,)
    top_try = torch.floor(u_top * (height[:, 0] - h_try + 1)).clamp_max(height[:, 0] - h_try)
    left_try = torch.floor(u_left * (width[:, 0] - w_try + 1)).clamp_max(width[:, 0] - w_try)
    # Fallback: the centred box of the whole image with its aspect clipped into ratio.
    H, W = height[:, 0], width[:, 0]
    in_ratio = W / H
    # (clamped to >= 1 pixel: for a 1-pixel side torchvision's rounding can give an empty box)
    w_fb = torch.where(in_ratio > ratio[1], torch.round(H * ratio[1]), W).clamp_min(1)
    h_fb = torch.where(in_ratio < ratio[0], torch.round(W / ratio[0]), H).clamp_min(1)
    top_fb, left_fb = torch.floor((H - h_fb) / 2), torch.floor((W - w_fb) / 2)
    pick = lambda a, b: torch.where(found, a, b).long()  # noqa: E731
    return pick(top_try, top_fb), pick(left_try, left_fb), pick(h_try, h_fb), pick(w_try, w_fb)


def sample_augment_params(
    recipe: str | Recipe | list, image_sizes: Tensor, generator: torch.Generator | None = None
) -> AugmentParams:
    """Draws the random choices of one view per row of ``image_sizes``.

    Args:
        recipe: a Recipe or anything ``get_recipe`` accepts ("default", "spatial", "appearance", a custom list).
        image_sizes: (B, 2) int tensor of each source image's (H, W).
        generator: a CPU torch.Generator (None: torch's global generator).

    Returns:
        AugmentParams of B views, on the CPU. Without random_resized_crop the box is the centre square
        (``centre_square_box``: Resize + CenterCrop, what the paper's code appends when no crop is chosen).

    Raises:
        ValueError: a bad recipe (see ``get_recipe``), or image_sizes not (B >= 1, 2) of positive sizes.
        TypeError: image_sizes not an int tensor, or a generator on a non-CPU device.
    """
    recipe = get_recipe(recipe)
    sizes = check_image_sizes("sample_augment_params", image_sizes)
    if generator is not None and generator.device.type != "cpu":
        raise TypeError(f"sample_augment_params: generator must be a CPU torch.Generator, got {generator.device}")
    b = sizes.shape[0]
    u = lambda *shape: torch.rand(*shape, generator=generator, dtype=torch.float64)  # noqa: E731
    u_area, u_logr, u_top, u_left = u(b, ATTEMPTS), u(b, ATTEMPTS), u(b), u(b)
    u_flip, u_jit, u_fac, u_order = u(b), u(b), u(b, 4), u(b, 4)
    u_gray, u_blur, u_sigma = u(b), u(b), u(b)

    crop = recipe.get("random_resized_crop")
    if crop is not None:
        box = _random_resized_crop(sizes, crop.scale, crop.ratio, u_area, u_logr, u_top, u_left)
    else:
        box = centre_square_box(sizes)

    flip_op, jit, gray, blur = (
        recipe.get(n) for n in ("horizontal_flip", "color_jitter", "grayscale", "gaussian_blur")
    )
    flip = u_flip < (flip_op.p if flip_op else 0.0)
    applied = u_jit < (jit.p if jit else 0.0)
    factors = []
    for k, key in enumerate(JITTER_OPS):
        lo, hi = jit.factor_range(key) if jit else (0.0, 0.0)
        value = lo + (hi - lo) * u_fac[:, k]
        factors.append(torch.where(applied, value, 0.0 if key == "hue" else 1.0).float())
    order = torch.argsort(u_order, dim=1)  # a uniform random permutation, as torch.randperm(4)
    blurred = u_blur < (blur.p if blur else 0.0)
    sigma = blur.sigma_min + (blur.sigma_max - blur.sigma_min) * u_sigma if blur else torch.zeros(b)
    return AugmentParams(
        *(t.to(torch.int32) for t in box),
        flip,
        applied,
        *factors,
        order,
        u_gray < (gray.p if gray else 0.0),
        blurred,
        torch.where(blurred, sigma, 0.0).float(),
    )
