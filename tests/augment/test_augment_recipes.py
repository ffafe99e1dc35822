"""Recipes: the paper's three (docs/METHOD.md section 2), custom ones from dicts and strings, and every validation error."""

import json
import math

import pytest

from inv_kernels.augment import (
    OPS,
    RECIPES,
    ColorJitterOp,
    GaussianBlurOp,
    GrayscaleOp,
    HorizontalFlipOp,
    RandomResizedCropOp,
    Recipe,
    ResizeCenterCropOp,
    get_recipe,
    parse_recipe_string,
)


def test_paper_recipes_exact_settings_and_order():
    default = RECIPES["default"]
    assert default.op_names == ("random_resized_crop", "color_jitter", "grayscale", "gaussian_blur", "horizontal_flip")
    assert default.get("random_resized_crop") == RandomResizedCropOp(None, (0.2, 1.0), (3 / 4, 4 / 3))
    assert default.get("color_jitter") == ColorJitterOp(0.4, 0.4, 0.4, 0.1, p=0.8)
    assert default.get("grayscale").p == 0.2
    blur = default.get("gaussian_blur")
    assert (blur.sigma_min, blur.sigma_max, blur.p, blur.kernel) == (0.1, 2.0, 0.5, "from_sigma")
    assert default.get("horizontal_flip").p == 0.5
    assert RECIPES["spatial"].op_names == ("random_resized_crop", "horizontal_flip")
    appearance = RECIPES["appearance"]
    assert appearance.op_names == ("color_jitter", "grayscale", "gaussian_blur", "resize_center_crop")
    assert appearance.get("horizontal_flip") is None and appearance.get("random_resized_crop") is None


@pytest.mark.parametrize(
    "alias,name", [("ventral", "spatial"), ("Dorsal", "appearance"), ("moco_v2", "default"), (" default ", "default")]
)
def test_aliases(alias, name):
    assert get_recipe(alias) is RECIPES[name]


def test_custom_list_of_dicts():
    r = get_recipe(
        [
            {"op": "random_resized_crop", "scale": [0.08, 1]},
            {"op": "grayscale", "p": 0.5},
            {"op": "gaussian_blur", "sigma": [0.5, 1.5], "kernel": 23},
        ]
    )
    assert r.name == "custom" and r.op_names == ("random_resized_crop", "grayscale", "gaussian_blur")
    assert r.get("random_resized_crop").scale == (0.08, 1.0)
    assert r.get("gaussian_blur") == GaussianBlurOp(0.5, 1.5, 0.5, 23)
    assert get_recipe(r) == r
    assert get_recipe([GrayscaleOp(0.3)]).get("grayscale").p == 0.3


def test_compact_string_forms():
    r = get_recipe("random_resized_crop:scale=0.2-1,horizontal_flip:p=0.5,grayscale:p=0.2")
    assert r.op_names == ("random_resized_crop", "horizontal_flip", "grayscale")
    assert r.get("random_resized_crop").scale == (0.2, 1.0) and r.get("grayscale").p == 0.2
    r = get_recipe(
        "random_resized_crop:ratio=3/4-4/3:size=32,color_jitter:brightness=0.2,hue=0.05,p=1,"
        "gaussian_blur:sigma=0.1-2:kernel=23,horizontal_flip"
    )
    assert r.get("random_resized_crop").ratio == (0.75, 4 / 3) and r.get("random_resized_crop").size == 32
    assert r.get("color_jitter") == ColorJitterOp(brightness=0.2, hue=0.05, p=1.0)
    assert r.get("gaussian_blur").kernel == 23 and r.get("horizontal_flip") == HorizontalFlipOp()
    assert get_recipe("grayscale").op_names == ("grayscale",)
    assert parse_recipe_string("grayscale:p=0.5") == [{"op": "grayscale", "p": 0.5}]


@pytest.mark.parametrize("name", ["default", "spatial", "appearance"])
def test_to_spec_round_trips_through_json(name):
    spec = json.loads(json.dumps(RECIPES[name].to_spec()))
    assert get_recipe(spec).ops == RECIPES[name].ops


def test_out_size_resolution():
    assert RECIPES["default"].out_size(32) == 32
    sized = Recipe("s", (RandomResizedCropOp(size=64),))
    assert sized.out_size() == 64 and sized.out_size(64) == 64
    with pytest.raises(ValueError, match="crops to size 64 but out_size is 32"):
        sized.out_size(32)
    with pytest.raises(ValueError, match="sets no size: pass out_size"):
        RECIPES["spatial"].out_size()
    with pytest.raises(ValueError, match="out_size must be a positive int"):
        RECIPES["spatial"].out_size(0)


@pytest.mark.parametrize(
    "spec,message",
    [
        (
            [{"op": "rotate"}],
            "unknown recipe op 'rotate'; valid ops: random_resized_crop, resize_center_crop, "
            "horizontal_flip, color_jitter, grayscale, gaussian_blur",
        ),
        ("solarize:p=0.2", "unknown recipe op 'solarize'; valid ops"),
        ("nonsense", "unknown recipe 'nonsense'; named recipes: default, spatial, appearance"),
        ([{"op": "grayscale", "p": 1.5}], r"grayscale: probability p must be a number in \[0, 1\], got 1.5"),
        ("horizontal_flip:p=-0.1", r"horizontal_flip: probability p must be a number in \[0, 1\], got -0.1"),
        ([{"op": "color_jitter", "p": math.nan}], r"color_jitter: probability p must be a number in \[0, 1\]"),
        ([{"op": "gaussian_blur", "p": 2}], r"gaussian_blur: probability p must be a number in \[0, 1\]"),
        ([{"op": "random_resized_crop", "scale": [0.9, 0.2]}], r"scale must satisfy .* got \(0.9, 0.2\)"),
        ([{"op": "random_resized_crop", "scale": [0.2, 1.5]}], "scale must satisfy"),
        ([{"op": "random_resized_crop", "ratio": [1.5]}], r"ratio must be a pair \(min, max\)"),
        ([{"op": "random_resized_crop", "size": -3}], "size must be a positive int or None"),
        ([{"op": "gaussian_blur", "sigma": [2, 1]}], "sigma must satisfy"),
        ([{"op": "gaussian_blur", "sigma_min": 0}], "sigma_min must be > 0"),
        ([{"op": "gaussian_blur", "kernel": 22}], "kernel must be 'from_sigma' or an odd positive int"),
        ([{"op": "color_jitter", "hue": 0.7}], r"hue must be a number in \[0, 0.5\]"),
        ([{"op": "color_jitter", "brightness": -1}], "brightness must be a number"),
        ([{"op": "grayscale", "prob": 0.2}], "grayscale: unknown setting.s. prob; valid: p"),
        ([{"op": "grayscale"}, {"op": "grayscale"}], "op.s. grayscale given more than once"),
        ([{"op": "random_resized_crop"}, {"op": "resize_center_crop"}], "not both"),
        ([], "needs at least one op"),
        (["grayscale"], "must be a dict with an 'op' key"),
        ("grayscale:p", "expected key=value"),
        ("p=0.5,grayscale", "comes before any op"),
        ("random_resized_crop:scale=0.2", "ranges are written min-max"),
        ("grayscale:p=abc", "cannot read setting p='abc'"),
    ],
)
def test_validation_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        get_recipe(spec)


def test_type_errors_and_direct_construction():
    with pytest.raises(TypeError, match="recipe must be a name, a Recipe or a list"):
        get_recipe(3)
    with pytest.raises(ValueError, match="probability p"):
        GrayscaleOp(p=True)
    with pytest.raises(ValueError, match="is not an op spec"):
        Recipe("r", ("grayscale",))
    assert set(OPS) == {
        "random_resized_crop",
        "resize_center_crop",
        "horizontal_flip",
        "color_jitter",
        "grayscale",
        "gaussian_blur",
    }
    assert ResizeCenterCropOp(size=8).size == 8
