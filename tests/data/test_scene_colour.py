"""Colour helpers of the renderer against the standard library and physics."""

import colorsys

import numpy as np
import torch

from inv_kernels.data.colour import hsv_to_rgb, kelvin_to_rgb, linear_to_srgb, rgb_to_hue, srgb_to_linear


def test_hsv_to_rgb_matches_colorsys():
    hue, sat, val = torch.rand(200, dtype=torch.float64), torch.rand(200, dtype=torch.float64), torch.rand(200)
    got = hsv_to_rgb(hue, sat, val.double())
    expected = np.array([colorsys.hsv_to_rgb(h, s, v) for h, s, v in zip(hue.tolist(), sat.tolist(), val.tolist())])
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)
    # scalars broadcast, and hue is periodic
    torch.testing.assert_close(hsv_to_rgb(hue + 3.0, 0.5, 0.8), hsv_to_rgb(hue, 0.5, 0.8))


def test_rgb_to_hue_close_to_hexcone_hue():
    hue = torch.rand(500, dtype=torch.float64)
    back = rgb_to_hue(hsv_to_rgb(hue, 0.8, 0.9))
    gap = ((back - hue + 0.5) % 1 - 0.5).abs()
    assert float(gap.max()) < 0.005
    primaries = torch.tensor([[1.0, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1]], dtype=torch.float64)
    torch.testing.assert_close(rgb_to_hue(primaries), torch.arange(6, dtype=torch.float64) / 6)


def test_srgb_round_trip():
    x = torch.rand(100)
    torch.testing.assert_close(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-5, rtol=0)


def test_kelvin_to_rgb_white_point_order_and_smoothness():
    torch.testing.assert_close(kelvin_to_rgb(torch.tensor([6500.0])), torch.ones(1, 3))
    torch.testing.assert_close(kelvin_to_rgb(torch.tensor([3075.0]), 3075.0), torch.ones(1, 3))
    kelvin = torch.linspace(1500.0, 15000.0, 400, dtype=torch.float64)
    rgb = kelvin_to_rgb(kelvin)
    assert float(rgb.max()) <= 1.0 and float(rgb.min()) > 0.0
    blue_over_red = rgb[:, 2] / rgb[:, 0]
    assert bool((blue_over_red.diff() > 0).all())  # hotter is bluer, monotonically
    # smooth: second differences are small against the first
    assert float(blue_over_red.diff().diff().abs().max()) < 0.1 * float(blue_over_red.diff().abs().max())
    # warm light is orange: a 2175 K lamp balanced for 3075 K has more red than green than blue
    r, g, b = kelvin_to_rgb(torch.tensor([2175.0]), 3075.0)[0].tolist()
    assert r == 1.0 and 0.5 < g < 0.9 and 0.2 < b < g
