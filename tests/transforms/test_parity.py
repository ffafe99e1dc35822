"""Parity of every family (deform: see test_deform.py) with torchvision's functional ops applied per image and per
grid value to a float tensor, followed by torchvision's Resize(256, antialias=True) + CenterCrop(224): the reference
code's pipeline on torchvision's tensor path. Resampling is also checked against PIL itself (mode "F", float pixels).

Tolerance: max |ours - torchvision| <= 1e-4 on [0, 1] images. Both sides run float32; the measured gap is ~2e-6 when
the resize upsamples and ~2e-5 when it downsamples (torch's antialiased interpolate forms its weights in float32,
ours come from float64), and nearest-neighbour picks agree exactly because the sampling grid is built as torchvision
builds it. Indices are fixed so that the geometry (hence any nearest-neighbour tie) does not change between runs;
the images are fresh random ones.
"""

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from inv_kernels.transforms import FAMILIES, MODES, apply_transform, clean_view
from inv_kernels.transforms.geometry import corrected_crop_boxes

ATOL = 1e-4
NEAREST = InterpolationMode.NEAREST
INDICES = {
    "rotation": [0, 1, 64, 100, 255],
    "translation": [0, 8, 136, 255],
    "scale": [0, 109, 200, 255],
    "shear": [0, 60, 136, 255],
    "resized_crop": [0, 27, 200, 255],
    "brightness": [0, 40, 128, 255],
    "contrast": [0, 40, 128, 255],
    "saturation": [0, 40, 128, 255],
    "hue": [0, 127, 128, 255],
    "blur": [0, 13, 60, 150],  # corrected kernels up to 93 px: torchvision's reflect pad needs pad < side
    "sharpness": [0, 40, 128, 255],
    "posterize": [0, 3, 6],
}
SMALL, LARGE = (48, 64), (300, 280)  # upsampled and downsampled by Resize(256)
# Where the raw resolution matters (geometry at raw scale, kernels in raw pixels), also a downsampled image.
RESOLUTION_DEPENDENT = {"rotation", "translation", "scale", "shear", "resized_crop", "blur", "contrast"}
CASES = [
    (name, mode, size)
    for name in FAMILIES
    if name != "deform"
    for mode in MODES
    if not (name == "resized_crop" and mode == "corrected")  # fractional boxes: checked against PIL below
    for size in ([SMALL, LARGE] if name in RESOLUTION_DEPENDENT else [SMALL])
]


def tv_clean(y):
    return TF.center_crop(TF.resize(y, [256], antialias=True), [224])


def quantised(x):
    return (x * 255).round().to(torch.uint8)


def oracle(name, x, p, mode):
    """One view by torchvision: the reference's op on the raw image, then Resize + CenterCrop."""
    if name == "rotation":
        return tv_clean(TF.rotate(x, float(p["angle"]), interpolation=NEAREST))
    if name in ("translation", "scale", "shear"):
        kwargs = {
            "angle": 0.0,
            "translate": [0.0, 0.0],
            "scale": 1.0,
            "shear": p["shear"].tolist(),
            "interpolation": NEAREST,
        }
        if name == "translation":
            kwargs["translate"] = p["translate"].tolist()
            if mode == "corrected":  # offsets in the resized image, before the crop
                return TF.center_crop(TF.affine(TF.resize(x, [256], antialias=True), **kwargs), [224])
        if name == "scale":
            kwargs["scale"] = float(p["scale"])
        return tv_clean(TF.affine(x, **kwargs))
    if name == "resized_crop":  # PIL crop rounds each box edge, then resizes to 224 x 224
        t, l, h, w = (float(p[k]) for k in ("top", "left", "height", "width"))
        y0, x0 = round(t), round(l)
        return TF.resized_crop(x, y0, x0, round(t + h) - y0, round(l + w) - x0, [224, 224], antialias=True)
    if name in ("h_flip", "v_flip", "grayscale", "invert", "equalize"):
        if not p["on"]:
            return tv_clean(x)
        if name == "equalize":
            return tv_clean(TF.equalize(quantised(x)).float() / 255)
        op = {
            "h_flip": TF.horizontal_flip,
            "v_flip": TF.vertical_flip,
            "invert": TF.invert,
            "grayscale": lambda y: TF.rgb_to_grayscale(y, num_output_channels=3),
        }[name]
        return tv_clean(op(x))
    if name == "posterize":
        return tv_clean(TF.posterize(quantised(x), int(p["bits"])).float() / 255)
    if name == "blur":
        k, s = int(p["kernel_size"]), float(p["sigma"])
        return tv_clean(TF.gaussian_blur(x, [k, k], [s, s]))
    op = {
        "brightness": TF.adjust_brightness,
        "contrast": TF.adjust_contrast,
        "saturation": TF.adjust_saturation,
        "hue": TF.adjust_hue,
        "sharpness": TF.adjust_sharpness,
    }[name]
    return tv_clean(op(x, float(p["factor"])))


def assert_close(ours, ref, what):
    diff = (ours - ref).abs()
    assert diff.max() <= ATOL, f"{what}: max |diff| {diff.max():.3e} (mean {diff.mean():.3e}) > {ATOL}"


@pytest.mark.parametrize(("name", "mode", "size"), CASES)
def test_family_matches_torchvision(name, mode, size):
    x = torch.rand(3, *size)
    indices = INDICES.get(name, list(range(FAMILIES[name].k)))
    grid = FAMILIES[name].grid(mode)
    ours = apply_transform(name, x[None], mode=mode, indices=indices)[0]  # (p, 3, 224, 224)
    for j, i in enumerate(indices):
        ref = oracle(name, x, {k: v[i] for k, v in grid.items()}, mode)
        assert_close(ours[j], ref, f"{name} {mode} index {i}")


def test_equalize_matches_pil():
    from PIL import ImageOps

    x = quantised(torch.rand(3, 40, 56) ** 2)  # a skewed histogram
    ours = apply_transform("equalize", x[None], indices=[1], out_size=40, resize_size=40)[0, 0]
    pil = ImageOps.equalize(Image.fromarray(x.permute(1, 2, 0).numpy()))
    ref = torch.from_numpy(np.array(pil)).permute(2, 0, 1).float() / 255
    ref = TF.center_crop(ref, [40])
    assert torch.equal(ours, ref)


def pil_resize(channel, size, box=None):
    """PIL's own bilinear resize of a float image (mode "F", no uint8 rounding)."""
    image = Image.fromarray(channel.numpy().astype(np.float32), mode="F")
    return torch.from_numpy(np.array(image.resize(size, Image.BILINEAR, box=box)))


@pytest.mark.parametrize("size", [(300, 401), (48, 64), (256, 256), (37, 300), (256, 30)])
def test_clean_view_matches_torchvision_and_pil(size):
    h, w = size
    x = torch.rand(3, h, w)
    ours = clean_view(x[None])[0]
    assert_close(ours, tv_clean(x), f"clean view {size} vs torchvision")
    nh, nw = (256, int(256 * w / h)) if h <= w else (int(256 * h / w), 256)
    top, left = int(round((nh - 224) / 2)), int(round((nw - 224) / 2))
    full = torch.stack([pil_resize(x[c], (nw, nh)) for c in range(3)])
    assert (ours - full[:, top : top + 224, left : left + 224]).abs().max() <= 1e-5


@pytest.mark.parametrize("size", [(300, 401), (48, 64), (37, 300)])
def test_corrected_resized_crop_matches_pil_box_resize(size):
    h, w = size
    x = torch.rand(3, h, w)
    indices = [0, 77, 200, 255]
    grid = FAMILIES["resized_crop"].grid("corrected")
    ours = apply_transform("resized_crop", x[None], mode="corrected", indices=indices)[0]
    for j, i in enumerate(indices):
        top, left, height, width = corrected_crop_boxes(
            *(grid[k][i : i + 1] for k in ("top", "left", "height", "width")), h, w, 256
        )
        box = (float(left), float(top), float(left + width), float(top + height))
        assert 0 <= box[0] < box[2] <= w + 1e-6 and 0 <= box[1] < box[3] <= h + 1e-6, box
        ref = torch.stack([pil_resize(x[c], (224, 224), box) for c in range(3)])
        assert_close(ours[j], ref, f"corrected resized_crop index {i}")
