"""Parameter sampling: rates and ranges over 10,000 views per recipe, the crop rule against torchvision's
RandomResizedCrop.get_params, the centre box, replay, and AugmentParams' helpers and checks."""

import json
import math

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.transforms import RandomResizedCrop

from inv_kernels.augment import AugmentParams, centre_square_box, get_recipe, sample_augment_params

N = 10_000
RATE_TOL = 0.02


def _sample(recipe, sizes, seed=None, n=N):
    seed = int(torch.randint(0, 2**31, ())) if seed is None else seed
    return sample_augment_params(recipe, torch.tensor([sizes] * n), torch.Generator().manual_seed(seed))


def _check_box_inside(p, h, w):
    top, left, ch, cw = (t.long() for t in (p.crop_top, p.crop_left, p.crop_height, p.crop_width))
    assert bool((top >= 0).all() and (left >= 0).all() and (ch >= 1).all() and (cw >= 1).all())
    assert bool((top + ch <= h).all() and (left + cw <= w).all())


def _check_jitter(p, applied_rate):
    a = p.jitter_applied
    assert abs(a.float().mean().item() - applied_rate) <= RATE_TOL
    for name in ("brightness", "contrast", "saturation"):
        f = getattr(p, name)
        assert bool((f[a] >= 0.6).all() and (f[a] <= 1.4).all()), name
        assert bool((f[~a] == 1).all()), name
        assert abs(f[a].mean().item() - 1.0) < 0.01 and f[a].std().item() > 0.2  # U[0.6, 1.4]: sd 0.23
    assert bool((p.hue[a].abs() <= 0.1).all() and (p.hue[~a] == 0).all())
    assert abs(p.hue[a].mean().item()) < 0.003
    assert bool((p.jitter_order.sort(dim=1).values == torch.arange(4)).all())  # always a permutation
    # every op comes first about a quarter of the time
    first = torch.bincount(p.jitter_order[:, 0], minlength=4).float() / len(p)
    assert bool(((first - 0.25).abs() <= RATE_TOL).all()), first


def _check_blur(p, rate):
    b = p.blur_applied
    assert abs(b.float().mean().item() - rate) <= RATE_TOL
    s = p.blur_sigma
    assert bool((s[b] >= 0.1).all() and (s[b] <= 2.0).all() and (s[~b] == 0).all())
    assert abs(s[b].mean().item() - 1.05) < 0.04


def test_default_recipe_statistics():
    h, w = 375, 500
    p = _sample("default", (h, w))
    assert len(p) == N
    _check_box_inside(p, h, w)
    area = (p.crop_height * p.crop_width).double() / (h * w)
    ratio = p.crop_width.double() / p.crop_height.double()
    # rounding h and w to whole pixels moves the area and the ratio by at most about 1 / side
    assert area.min().item() >= 0.2 - 2 / 150 and area.max().item() <= 1.0
    assert ratio.min().item() >= 3 / 4 - 0.02 and ratio.max().item() <= 4 / 3 + 0.02
    assert abs(p.flip.float().mean().item() - 0.5) <= RATE_TOL
    _check_jitter(p, 0.8)
    assert abs(p.grayscale.float().mean().item() - 0.2) <= RATE_TOL
    _check_blur(p, 0.5)


def test_spatial_recipe_never_touches_appearance():
    p = _sample("spatial", (64, 48))
    _check_box_inside(p, 64, 48)
    assert abs(p.flip.float().mean().item() - 0.5) <= RATE_TOL
    assert not bool(p.jitter_applied.any() or p.grayscale.any() or p.blur_applied.any())
    assert bool((p.brightness == 1).all() and (p.hue == 0).all() and (p.blur_sigma == 0).all())


@pytest.mark.parametrize("h,w", [(64, 64), (48, 80), (90, 33)])
def test_appearance_recipe_never_flips_and_takes_the_centre_box(h, w):
    p = _sample("appearance", (h, w))
    assert not bool(p.flip.any())
    side = min(h, w)
    expected = (round((h - side) / 2), round((w - side) / 2), side, side)
    boxes = torch.stack([p.crop_top, p.crop_left, p.crop_height, p.crop_width], dim=1)
    assert bool((boxes == torch.tensor(expected, dtype=torch.int32)).all())
    _check_jitter(p, 0.8)
    assert abs(p.grayscale.float().mean().item() - 0.2) <= RATE_TOL
    _check_blur(p, 0.5)


def test_custom_recipe_rates_and_only_named_ops():
    recipe = get_recipe("random_resized_crop:scale=0.08-1,grayscale:p=0.5,horizontal_flip:p=0.9")
    p = _sample(recipe, (100, 100))
    area = (p.crop_height * p.crop_width).double() / 1e4
    assert area.min().item() < 0.2 and area.min().item() >= 0.08 - 0.02  # the custom scale is used
    assert abs(p.grayscale.float().mean().item() - 0.5) <= RATE_TOL
    assert abs(p.flip.float().mean().item() - 0.9) <= RATE_TOL
    assert not bool(p.jitter_applied.any() or p.blur_applied.any())
    always = _sample(get_recipe("color_jitter:p=1,gaussian_blur:p=0,grayscale:p=1"), (10, 10), n=500)
    assert bool(always.jitter_applied.all() and always.grayscale.all()) and not bool(always.blur_applied.any())


@pytest.mark.parametrize("h,w", [(40, 100), (64, 64), (300, 200)])
def test_crop_distribution_matches_torchvision(h, w):
    n = 3000
    img = torch.zeros(1, h, w)
    tv = np.array([RandomResizedCrop.get_params(img, [0.2, 1.0], [3 / 4, 4 / 3]) for _ in range(n)])
    p = _sample("spatial", (h, w), n=n)
    ours = torch.stack([p.crop_top, p.crop_left, p.crop_height, p.crop_width], 1).numpy()
    for k, name in enumerate(("top", "left", "height", "width")):
        # discrete values make KS conservative; p < 1e-4 would mean a clearly different distribution
        pvalue = scipy.stats.ks_2samp(tv[:, k], ours[:, k]).pvalue
        assert pvalue > 1e-4, (name, pvalue, tv[:, k].mean(), ours[:, k].mean())
        assert abs(np.median(tv[:, k]) - np.median(ours[:, k])) <= max(2, 0.05 * max(h, w)), name


@pytest.mark.parametrize(
    "h,w,scale,ratio",
    [(8, 200, (0.2, 1.0), (3 / 4, 4 / 3)), (200, 8, (0.2, 1.0), (3 / 4, 4 / 3)), (30, 30, (0.9, 1.0), (3.0, 4.0))],
)
def test_crop_fallback_is_torchvision_centre_box(h, w, scale, ratio):
    # every attempt fails for these, so torchvision's answer is deterministic
    expected = RandomResizedCrop.get_params(torch.zeros(1, h, w), list(scale), list(ratio))
    recipe = get_recipe([{"op": "random_resized_crop", "scale": scale, "ratio": ratio}])
    p = _sample(recipe, (h, w), n=50)
    boxes = torch.stack([p.crop_top, p.crop_left, p.crop_height, p.crop_width], dim=1)
    assert bool((boxes == torch.tensor(expected, dtype=torch.int32)).all()), (boxes[0].tolist(), expected)


@settings(max_examples=30, deadline=None)
@given(
    h=st.integers(1, 300),
    w=st.integers(1, 300),
    lo=st.floats(0.01, 1.0),
    span=st.floats(0, 1),
    r0=st.floats(0.2, 2.0),
    r_span=st.floats(0, 3.0),
    seed=st.integers(0, 2**31),
)
def test_boxes_always_fit(h, w, lo, span, r0, r_span, seed):
    recipe = get_recipe([{"op": "random_resized_crop", "scale": (lo, min(1.0, lo + span)), "ratio": (r0, r0 + r_span)}])
    _check_box_inside(_sample(recipe, (h, w), seed=seed, n=64), h, w)


def test_mixed_sizes_and_replay():
    sizes = torch.tensor([[32, 32], [17, 90], [64, 40]])
    a = sample_augment_params("default", sizes, torch.Generator().manual_seed(5))
    b = sample_augment_params("default", sizes, torch.Generator().manual_seed(5))
    c = sample_augment_params("default", sizes, torch.Generator().manual_seed(6))
    assert a.as_dict() == b.as_dict() and a.as_dict() != c.as_dict()
    for i, (h, w) in enumerate(sizes.tolist()):
        _check_box_inside(a[i], h, w)
    # the fixed draw layout: the same generator state gives default and spatial the same crop boxes
    s = sample_augment_params("spatial", sizes, torch.Generator().manual_seed(5))
    assert s.crop_top.tolist() == a.crop_top.tolist() and s.crop_width.tolist() == a.crop_width.tolist()


def test_centre_square_box():
    top, left, h, w = centre_square_box(torch.tensor([[10, 10], [10, 15], [16, 10], [4, 7]]))
    assert top.tolist() == [0, 0, 3, 0] and left.tolist() == [0, 2, 0, 2]
    assert h.tolist() == w.tolist() == [10, 10, 10, 4]


def test_augment_params_helpers():
    p = _sample("default", (40, 30), n=6)
    assert len(p[2]) == 1 and p[-1].as_dict() == p[5].as_dict() and len(p[1:4]) == 3
    assert len(p[torch.tensor([0, 2])]) == 2
    assert AugmentParams.cat([p[:2], p[2:]]).as_dict() == p.as_dict()
    round_trip = AugmentParams.from_dict(json.loads(json.dumps(p.as_dict())))
    for name, value in p.as_dict().items():
        assert getattr(round_trip, name).dtype == getattr(p, name).dtype
        np.testing.assert_array_equal(np.asarray(getattr(round_trip, name)), np.asarray(value))
    assert p.to("cpu").crop_top.device.type == "cpu"
    ident = AugmentParams.identity(torch.tensor([[5, 7]]))
    assert ident.crop_height.tolist() == [5] and ident.crop_width.tolist() == [7] and not ident.flip.item()
    with pytest.raises(IndexError, match="out of range"):
        p[6]
    with pytest.raises(ValueError, match="need at least one"):
        AugmentParams.cat([])
    with pytest.raises(ValueError, match=r"missing fields \['flip'\]"):
        AugmentParams.from_dict({k: v for k, v in p.as_dict().items() if k != "flip"})


def test_augment_params_checks():
    fields = _sample("default", (40, 30), n=3).__dict__.copy()
    bad = dict(fields, flip=fields["flip"].int())
    with pytest.raises(TypeError, match=r"AugmentParams: flip must have a dtype in \(bool\)"):
        AugmentParams(**bad)
    bad = dict(fields, hue=torch.zeros(2))
    with pytest.raises(ValueError, match=r"hue has shape \(2,\), expected \(3,\)"):
        AugmentParams(**bad)
    bad = dict(fields, jitter_order=torch.zeros(3, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="jitter_order has shape"):
        AugmentParams(**bad)


@pytest.mark.parametrize(
    "sizes,error,message",
    [
        (torch.tensor([[32.0, 32.0]]), TypeError, "image_sizes must have a dtype in"),
        (torch.tensor([32, 32]), ValueError, "image_sizes must be 2-D"),
        (torch.tensor([[32, 32, 3]]), ValueError, r"must be \(B, 2\) with B >= 1"),
        (torch.zeros(0, 2, dtype=torch.int64), ValueError, r"must be \(B, 2\) with B >= 1"),
        (torch.tensor([[0, 32]]), ValueError, "image sizes must be positive"),
        ([[32, 32]], TypeError, "image_sizes must be a torch.Tensor"),
    ],
)
def test_sample_errors(sizes, error, message):
    with pytest.raises(error, match=message):
        sample_augment_params("default", sizes, torch.Generator())


def test_sample_bad_recipe_fails_first():
    with pytest.raises(ValueError, match="unknown recipe op"):
        sample_augment_params([{"op": "rotate"}], torch.tensor([[8, 8]]))
    assert math.isclose(sample_augment_params("default", torch.tensor([[8, 8]])).blur_sigma.shape[0], 1)
