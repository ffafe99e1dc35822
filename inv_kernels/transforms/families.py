"""The registry of the 18 transform families: name -> TransformFamily (kind, k, grid, apply).

Every ``apply`` takes one float image (3, H, W) in [0, 1] at its raw resolution and a subset of the family's grid
(dict of (P, ...) tensors) and returns the P views after the evaluation preprocessing, (P, 3, out, out). In ``paper``
mode each family follows the reference code (``ManualTransform.T``): the op on the raw image, then
Resize(resize_size) + CenterCrop(out_size), except ``resized_crop`` whose op outputs out x out directly. ``corrected``
mode differs only where docs/METHOD.md 12 lists a quirk; see ``TransformFamily.paper_quirk`` / ``corrected`` and
docs/TRANSFORMS.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from inv_kernels.transforms import colour, deform, geometry
from inv_kernels.transforms.grids import GRIDS, check_mode
from inv_kernels.transforms.resample import clean, clean_matrices, resample

ApplyFn = Callable[[Tensor, dict[str, Tensor], str, int, int], Tensor]


@dataclass(frozen=True)
class TransformFamily:
    """One synthetic transform family.

    Attributes:
        name: the reference's transform name (``--transform``).
        kind: ``"spatial"`` or ``"appearance"``.
        k: the number of grid values (views per image).
        op: the torchvision functional op the reference applies.
        paper_quirk: what ``paper`` mode reproduces that ``corrected`` mode changes ("" when nothing).
        corrected: what ``corrected`` mode does instead ("same as paper" when nothing changes).
    """

    name: str
    kind: str
    k: int
    op: str
    paper_quirk: str
    corrected: str
    _apply: ApplyFn = field(repr=False, compare=False)

    def grid(self, mode: str = "paper", *, out_size: int = 224, resize_size: int = 256) -> dict[str, Tensor]:
        """The parameter grid: dict of CPU tensors, each with first dimension k (see ``grids.py``).

        Raises:
            ValueError: an unknown mode.
        """
        return GRIDS[self.name](check_mode(f"{self.name}.grid", mode), out_size, resize_size)

    def apply(
        self,
        image: Tensor,
        params: dict[str, Tensor],
        *,
        mode: str = "paper",
        out_size: int = 224,
        resize_size: int = 256,
    ) -> Tensor:
        """Views of one image for some grid rows (unvalidated; ``apply_transform`` is the checked entry point).

        Args:
            image: (3, H, W) float32 in [0, 1], H, W >= 2.
            params: the grid's entries restricted to P rows, each (P, ...) on the CPU.
            mode: ``"paper"`` or ``"corrected"``.
            out_size, resize_size: CenterCrop and Resize sizes.

        Returns:
            (P, 3, out_size, out_size) float32 on the image's device.
        """
        return self._apply(image, params, mode, out_size, resize_size)


def _zeros(p: int, *shape: int) -> Tensor:
    return torch.zeros(p, *shape, dtype=torch.float64)


def _rotation(image, params, mode, out, rs):
    return clean(geometry.affine_views(image, geometry.rotation_matrices(params["angle"])), out, rs)


def _translation(image, params, mode, out, rs):
    t = params["translate"]
    p = t.shape[0]
    theta = geometry.inverse_affine_matrices(_zeros(p), t, torch.ones(p), params["shear"])
    if mode == "paper":  # offsets meant for resize_size px, applied at raw resolution
        return clean(geometry.affine_views(image, theta), out, rs)
    wy, wx = clean_matrices(image.shape[-2], image.shape[-1], out, rs, device=image.device, crop=False)
    resized = resample(image, wy, wx)  # (3, h', w'): Resize(rs) without the crop
    return geometry.center_crop(geometry.affine_views(resized, theta), out)


def _scale(image, params, mode, out, rs):
    s = params["scale"]
    theta = geometry.inverse_affine_matrices(_zeros(s.shape[0]), _zeros(s.shape[0], 2), s, params["shear"])
    return clean(geometry.affine_views(image, theta), out, rs)


def _shear(image, params, mode, out, rs):
    sh = params["shear"]
    p = sh.shape[0]
    theta = geometry.inverse_affine_matrices(_zeros(p), _zeros(p, 2), torch.ones(p), sh)
    return clean(geometry.affine_views(image, theta), out, rs)


def _resized_crop(image, params, mode, out, rs):
    height, width = image.shape[-2:]
    box = (params["top"], params["left"], params["height"], params["width"])
    if mode == "paper":  # coordinates for a rs-px image cut from the raw image, PIL rounding and zero padding
        wy, wx = geometry.crop_matrices(geometry.paper_crop_boxes(*box), height, width, out, pad=True)
    else:
        boxes = geometry.corrected_crop_boxes(*box, height, width, rs)
        wy, wx = geometry.crop_matrices(boxes, height, width, out, pad=False)
    return resample(image, wy.to(image.device), wx.to(image.device))


def _select(image: Tensor, on: Tensor, changed: Callable[[Tensor], Tensor]) -> Tensor:
    """(P, 3, H, W): ``changed(image)`` where ``on``, else the image."""
    on = on.to(image.device).view(-1, 1, 1, 1)
    return torch.where(on, changed(image), image)


def _deform(image, params, mode, out, rs):
    views = deform.deform_views(image, params["sigma"], params["points"], params["seed"], mode=mode, resize_size=rs)
    return clean(views, out, rs)


def _binary(changed: Callable[[Tensor], Tensor]) -> ApplyFn:
    def apply(image, params, mode, out, rs):
        return clean(_select(image, params["on"], changed), out, rs)

    return apply


def _factor(op: Callable[[Tensor, Tensor], Tensor], key: str = "factor") -> ApplyFn:
    def apply(image, params, mode, out, rs):
        return clean(op(image, params[key]), out, rs)

    return apply


def _blur(image, params, mode, out, rs):
    # The blur's matrices compose with the resize's: one resampling, no full-resolution views.
    wy, wx = clean_matrices(image.shape[-2], image.shape[-1], out, rs, device=image.device)
    kernels = colour.gaussian_kernels(params["sigma"], params["kernel_size"]).to(image.device, torch.float32)
    return resample(image, colour.blur_rows(wy, kernels), colour.blur_rows(wx, kernels))


def _family(name, kind, k, op, apply, quirk="", corrected="same as paper") -> TransformFamily:
    return TransformFamily(name, kind, k, op, quirk, corrected, apply)


FAMILIES: dict[str, TransformFamily] = {
    f.name: f
    for f in (
        _family("rotation", "spatial", 256, "rotate", _rotation),
        _family(
            "translation",
            "spatial",
            256,
            "affine",
            _translation,
            quirk="offsets meant for the resize_size-px image applied to the raw image (a smaller shift on large "
            "photos, a larger one on small images); 1 degree x-shear",
            corrected="offsets applied after Resize, before CenterCrop; no shear",
        ),
        _family("scale", "spatial", 256, "affine", _scale, quirk="1 degree x-shear", corrected="no shear"),
        _family("shear", "spatial", 256, "affine", _shear),
        _family(
            "resized_crop",
            "spatial",
            256,
            "resized_crop",
            _resized_crop,
            quirk="boxes meant for a resize_size-px image cut from the raw image's top-left (PIL rounding, black "
            "outside the image)",
            corrected="boxes placed in the central resize_size square of the resized image, sampled from the raw "
            "image (fractional, PIL resize-box semantics)",
        ),
        _family("h_flip", "spatial", 2, "hflip", _binary(lambda x: x.flip(-1))),
        _family("v_flip", "spatial", 2, "vflip", _binary(lambda x: x.flip(-2))),
        _family(
            "deform",
            "spatial",
            256,
            "albumentations ElasticTransform",
            _deform,
            quirk="a +-50 raw-px random affine dominates an alpha=1 elastic noise; sigma nearly inert, points "
            "ignored; unseeded (here: deterministic per index)",
            corrected="elasticdeform-style grid: points x points N(0, sigma^2) displacements, sigma in "
            "resize_size-frame pixels, deterministic per index",
        ),
        _family("grayscale", "appearance", 2, "rgb_to_grayscale", _binary(colour.grayscale)),
        _family("brightness", "appearance", 256, "adjust_brightness", _factor(colour.adjust_brightness)),
        _family("contrast", "appearance", 256, "adjust_contrast", _factor(colour.adjust_contrast)),
        _family("saturation", "appearance", 256, "adjust_saturation", _factor(colour.adjust_saturation)),
        _family("hue", "appearance", 256, "adjust_hue", _factor(colour.adjust_hue)),
        _family(
            "blur",
            "appearance",
            256,
            "gaussian_blur",
            _blur,
            quirk="kernel fixed at 1 + out_size // 20 * 2 = 23 px, truncating large sigma",
            corrected="kernel 2 * ceil(3 sigma) + 1 px",
        ),
        _family("sharpness", "appearance", 256, "adjust_sharpness", _factor(colour.adjust_sharpness)),
        _family("invert", "appearance", 2, "invert", _binary(lambda x: 1 - x)),
        _family("equalize", "appearance", 2, "equalize", _binary(colour.equalize)),
        _family("posterize", "appearance", 7, "posterize", _factor(colour.posterize, "bits")),
    )
}

SPATIAL_FAMILIES: tuple[str, ...] = tuple(n for n, f in FAMILIES.items() if f.kind == "spatial")
APPEARANCE_FAMILIES: tuple[str, ...] = tuple(n for n, f in FAMILIES.items() if f.kind == "appearance")
TOTAL_VIEWS: int = sum(f.k for f in FAMILIES.values())  # 3089 views per image
