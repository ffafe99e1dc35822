"""Identity grid values give the clean view, and paper mode differs from corrected mode exactly where docs/METHOD.md 12
says the reference code has a quirk (translation shift size and shear, scale shear, blur kernel, crop location)."""

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from inv_kernels.transforms import FAMILIES, MODES, apply_transform, clean_view

IDENTITIES = [
    ("rotation", "paper", 0),
    ("rotation", "corrected", 0),
    ("translation", "corrected", 136),
    ("shear", "paper", 136),
    ("shear", "corrected", 136),
    ("h_flip", "paper", 0),
    ("v_flip", "paper", 0),
    ("grayscale", "paper", 0),
    ("invert", "paper", 0),
    ("equalize", "paper", 0),
    ("sharpness", "paper", 0),
    ("sharpness", "corrected", 0),
    ("blur", "paper", 0),
    ("blur", "corrected", 0),
]


@pytest.mark.parametrize(("name", "mode", "index"), IDENTITIES)
def test_identity_parameters_give_the_clean_view(name, mode, index):
    images = [torch.rand(3, 45, 61), torch.rand(3, 70, 52)]
    clean = clean_view(images, out_size=28, resize_size=32)
    views = apply_transform(name, images, mode=mode, indices=[index], out_size=28, resize_size=32)[:, 0]
    assert (views - clean).abs().max() <= 1e-6


def test_binary_off_views_are_clean_in_both_modes():
    x = torch.rand(1, 3, 40, 50)
    clean = clean_view(x, out_size=28, resize_size=32)
    for name in ("h_flip", "v_flip", "grayscale", "invert", "equalize"):
        for mode in MODES:
            on_off = apply_transform(name, x, mode=mode, out_size=28, resize_size=32)[0]
            assert torch.equal(on_off[0], clean[0]), (name, mode)
            assert (on_off[1] - clean[0]).abs().max() > 1e-2, (name, mode)


def blob(size=128, centre=(64, 64), radius=10):
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    inside = ((ys - centre[0]) ** 2 + (xs - centre[1]) ** 2) < radius**2
    return inside.float().expand(3, size, size).contiguous()


def centroid_x(view):
    w = view[0]
    return float((w.sum(0) * torch.arange(w.shape[1])).sum() / w.sum())


def test_translation_paper_shift_is_at_raw_resolution_corrected_in_resized_pixels():
    # Raw 128 px, Resize(64) + CenterCrop(56): offsets are linspace(-4, 4, 17)[:16] px of the 64-px image.
    x = blob()[None]
    sizes = {"out_size": 56, "resize_size": 64}
    grid = FAMILIES["translation"].grid("corrected", **sizes)
    index = 8  # tx = -4, ty = 0
    assert grid["translate"][index].tolist() == [-4.0, 0.0]
    base = centroid_x(clean_view(x, **sizes)[0])
    paper = centroid_x(apply_transform("translation", x, mode="paper", indices=[index], **sizes)[0, 0])
    corrected = centroid_x(apply_transform("translation", x, mode="corrected", indices=[index], **sizes)[0, 0])
    assert corrected - base == pytest.approx(-4.0, abs=0.05)  # offsets mean what they say
    assert paper - base == pytest.approx(-2.0, abs=0.1)  # 4 raw px = 2 px after halving: the paper's quirk


def test_paper_translation_and_scale_carry_a_1_degree_shear():
    x = torch.rand(3, 200, 160)  # tall enough that the sheared rows survive the centre crop
    clean = clean_view(x[None])[0]
    paper_zero = apply_transform("translation", x[None], mode="paper", indices=[136])[0, 0]
    assert (paper_zero - clean).abs().max() > 0.1  # (0, 0) is not the identity in paper mode
    sheared = TF.affine(
        x, angle=0.0, translate=[0, 0], scale=1.0, shear=[1.0, 0.0], interpolation=InterpolationMode.NEAREST
    )
    assert (paper_zero - clean_view(sheared[None])[0]).abs().max() <= 1e-4
    scale_paper, scale_corrected = (apply_transform("scale", x[None], mode=m, indices=[255])[0, 0] for m in MODES)
    assert (scale_paper - scale_corrected).abs().max() > 0.1


def test_blur_paper_kernel_truncates_large_sigma():
    x = torch.rand(1, 3, 128, 128)
    paper = apply_transform("blur", x, mode="paper", indices=[255])[0, 0]  # sigma 20 through a 23-px kernel
    corrected = apply_transform("blur", x, mode="corrected", indices=[255])[0, 0]  # through a 121-px kernel
    assert paper.std() > 2 * corrected.std()  # the truncated kernel leaves much more of the noise
    small = [0, 20]  # sigma <= 1.6: both kernels cover +-3 sigma, so the modes agree up to the far tails
    assert (
        apply_transform("blur", x, mode="paper", indices=small)
        - apply_transform("blur", x, mode="corrected", indices=small)
    ).abs().max() <= 2e-3


def pil_box_resize(x, size, box):
    """PIL's bilinear resize of a box of a float image (mode "F"), channel by channel."""
    channels = [
        Image.fromarray(c.numpy().astype(np.float32), mode="F").resize(size, Image.BILINEAR, box=box) for c in x
    ]
    return torch.from_numpy(np.stack([np.array(c) for c in channels]))


def test_resized_crop_paper_cuts_the_raw_top_left_corrected_scales_the_box():
    # A 512-px raw image: paper's 192-px box covers the top-left 37.5 %, corrected's the top-left 75 %.
    x = torch.rand(1, 3, 512, 512)
    paper, corrected = (apply_transform("resized_crop", x, mode=m, indices=[0], out_size=192)[0, 0] for m in MODES)
    assert (paper - TF.resized_crop(x[0], 0, 0, 192, 192, [192, 192], antialias=True)).abs().max() <= 1e-4
    assert (corrected - pil_box_resize(x[0], (192, 192), (0, 0, 384, 384))).abs().max() <= 1e-4


def test_resized_crop_modes_agree_on_a_square_image_of_resize_size_with_integer_boxes():
    # Only the outer rows and columns may differ: corrected mode resamples a box of the image (PIL's
    # resize(box=...), whose edge taps may read just outside the box), paper mode a cut-out crop.
    x = torch.rand(1, 3, 256, 256)
    for index in (0, 255):  # (0, 0, 192, 192) and (64, 64, 64, 64)
        paper, corrected = (apply_transform("resized_crop", x, mode=m, indices=[index])[0, 0] for m in MODES)
        assert (paper - corrected)[:, 2:-2, 2:-2].abs().max() <= 1e-5


def test_resized_crop_paper_pads_small_images_with_black():
    x = torch.rand(1, 3, 32, 32)  # CIFAR-sized: the 256-px boxes leave the image
    view = apply_transform("resized_crop", x, mode="paper", indices=[0])[0, 0]  # box 192 x 192 from (0, 0)
    assert view[:, -100:, -100:].abs().max() == 0
    corrected = apply_transform("resized_crop", x, mode="corrected", indices=[0])[0, 0]
    assert corrected.amin(dim=(1, 2)).min() > 0  # stays inside the image
