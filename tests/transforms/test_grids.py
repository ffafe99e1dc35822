"""The registry and the parameter grids: every family's k, kind and values exactly as docs/METHOD.md 4.2 (and the reference
code's float32 construction), in both modes."""

import math
from itertools import product

import pytest
import torch

from inv_kernels.transforms import APPEARANCE_FAMILIES, FAMILIES, MODES, SPATIAL_FAMILIES, TOTAL_VIEWS

PAPER_K = {
    **dict.fromkeys(
        [
            "rotation",
            "translation",
            "scale",
            "shear",
            "resized_crop",
            "deform",
            "brightness",
            "contrast",
            "saturation",
            "hue",
            "blur",
            "sharpness",
        ],
        256,
    ),
    **dict.fromkeys(["h_flip", "v_flip", "grayscale", "invert", "equalize"], 2),
    "posterize": 7,
}
SPATIAL = {"rotation", "translation", "scale", "shear", "resized_crop", "h_flip", "v_flip", "deform"}


def f32(values):
    """The reference's float32 numbers as Python floats."""
    return torch.as_tensor(values, dtype=torch.float32).tolist()


def test_registry_has_the_18_families_with_paper_k():
    assert {name: f.k for name, f in FAMILIES.items()} == PAPER_K
    ks = sorted(f.k for f in FAMILIES.values())
    assert ks.count(256) == 12 and ks.count(2) == 5 and ks.count(7) == 1
    assert TOTAL_VIEWS == 3089


def test_kind_tags():
    assert set(SPATIAL_FAMILIES) == SPATIAL
    assert set(APPEARANCE_FAMILIES) == set(FAMILIES) - SPATIAL
    assert all(FAMILIES[n].kind == ("spatial" if n in SPATIAL else "appearance") for n in FAMILIES)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_grid_has_k_rows(name, mode):
    grid = FAMILIES[name].grid(mode)
    assert grid, name
    for key, value in grid.items():
        assert value.shape[0] == FAMILIES[name].k, (name, key, tuple(value.shape))


def test_rotation_grid():
    angle = FAMILIES["rotation"].grid()["angle"]
    assert angle.tolist() == f32(torch.linspace(0, 360, 257)[:256])
    assert angle[0] == 0 and angle[1] == pytest.approx(1.40625) and angle[-1] == pytest.approx(358.59375)


@pytest.mark.parametrize("mode", MODES)
def test_translation_grid(mode):
    grid = FAMILIES["translation"].grid(mode)
    a = list(range(-16, 16, 2))  # linspace(-s, s, 17)[:16] * 256 with s = 0.0625
    assert grid["translate"].tolist() == [[float(x), float(y)] for x, y in product(a, a)]
    assert grid["translate"][136].tolist() == [0.0, 0.0]  # the identity offset
    assert grid["shear"].tolist() == [[1.0 if mode == "paper" else 0.0, 0.0]] * 256


def test_translation_offsets_follow_the_sizes():
    grid = FAMILIES["translation"].grid("paper", out_size=112, resize_size=128)
    assert sorted(set(grid["translate"][:, 0].tolist())) == [float(x) for x in range(-8, 8)]


@pytest.mark.parametrize("mode", MODES)
def test_scale_grid(mode):
    grid = FAMILIES["scale"].grid(mode)
    assert grid["scale"].tolist() == f32(torch.linspace(0.25, 2.0, 256))
    assert grid["scale"][109] == pytest.approx(0.998, abs=1e-3)
    assert grid["shear"].tolist() == [[1.0 if mode == "paper" else 0.0, 0.0]] * 256


@pytest.mark.parametrize("mode", MODES)
def test_shear_grid(mode):
    a = [float(x) for x in range(-160, 160, 20)]
    shear = FAMILIES["shear"].grid(mode)["shear"]
    assert shear.tolist() == [[x, y] for x, y in product(a, a)]
    assert shear[136].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("mode", MODES)
def test_resized_crop_grid(mode):
    grid = FAMILIES["resized_crop"].grid(mode)
    a = f32(torch.linspace(0, 0.25, 4) * 256)  # 0, 21.33, 42.67, 64
    b = f32(torch.linspace(0.75, 0.25, 4) * 256)  # 192, 149.33, 106.67, 64
    rows = list(zip(*(grid[k].tolist() for k in ("top", "left", "height", "width"))))
    assert rows == list(product(a, a, b, b))  # top varies slowest
    assert a[0] == 0 and a[-1] == 64 and b[0] == 192 and b[-1] == 64
    assert len(set(rows)) == 256


@pytest.mark.parametrize("mode", MODES)
def test_deform_grid(mode):
    grid = FAMILIES["deform"].grid(mode)
    assert grid["sigma"].tolist() == [10, 15, 21, 27, 32, 38, 44, 50] * 32
    assert grid["points"].tolist() == [p for p in range(2, 10) for _ in range(32)]
    assert len(set(grid["seed"].tolist())) == 256


def test_blur_grid_paper_kernel_is_fixed():
    grid = FAMILIES["blur"].grid("paper")
    assert grid["sigma"].tolist() == f32(torch.linspace(1e-5, 20.0, 256))
    assert set(grid["kernel_size"].tolist()) == {23}
    assert set(FAMILIES["blur"].grid("paper", out_size=112, resize_size=128)["kernel_size"].tolist()) == {11}


def test_blur_grid_corrected_kernel_grows_with_sigma():
    grid = FAMILIES["blur"].grid("corrected")
    sizes = grid["kernel_size"]
    assert sizes.tolist() == [2 * math.ceil(3 * s) + 1 for s in grid["sigma"].tolist()]
    assert sizes[0] == 3 and sizes[-1] == 121 and bool((sizes % 2 == 1).all()) and bool((sizes.diff() >= 0).all())


@pytest.mark.parametrize(
    ("name", "start", "end"),
    [
        ("brightness", 0.25, 5.0),
        ("contrast", 0.25, 5.0),
        ("saturation", 0.25, 5.0),
        ("hue", -0.5, 0.5),
        ("sharpness", 1.0, 30.0),
    ],
)
def test_factor_grids(name, start, end):
    for mode in MODES:
        assert FAMILIES[name].grid(mode)["factor"].tolist() == f32(torch.linspace(start, end, 256))


def test_binary_and_posterize_grids():
    for name in ("h_flip", "v_flip", "grayscale", "invert", "equalize"):
        assert FAMILIES[name].grid()["on"].tolist() == [False, True]
    assert FAMILIES["posterize"].grid()["bits"].tolist() == [1, 2, 3, 4, 5, 6, 7]


def test_grids_are_fresh_copies():
    grid = FAMILIES["rotation"].grid()
    grid["angle"][0] = 99.0
    assert FAMILIES["rotation"].grid()["angle"][0] == 0
