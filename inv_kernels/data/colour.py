"""Colour helpers for the scene renderer: HSV hue to RGB, sRGB <-> linear, and light colour from a temperature.

All functions are vectorised torch code and work on any device.
"""

from __future__ import annotations

import torch

# Wavelengths (micrometres) standing in for the red, green and blue channels in ``kelvin_to_rgb``.
_RGB_WAVELENGTHS_UM = (0.610, 0.550, 0.465)
# Second radiation constant h*c/k in micrometre-kelvin.
_C2_UM_K = 14387.77
# The temperature that maps to white in ``kelvin_to_rgb`` unless another reference is given (daylight, D65-like).
WHITE_KELVIN = 6500.0


def hsv_to_rgb(hue: torch.Tensor, saturation: float | torch.Tensor, value: float | torch.Tensor) -> torch.Tensor:
    """Converts HSV colours to RGB (the standard hexcone model: continuous and periodic in hue).

    Args:
        hue: (...) hue in turns; any real value, taken modulo 1.
        saturation: a scalar or a tensor broadcastable to ``hue``, in [0, 1].
        value: a scalar or a tensor broadcastable to ``hue``, in [0, 1].

    Returns:
        (..., 3) RGB in [0, 1], same dtype and device as ``hue``.
    """
    h6 = torch.remainder(hue, 1.0).unsqueeze(-1) * 6.0  # (..., 1)
    offsets = torch.tensor([5.0, 3.0, 1.0], dtype=hue.dtype, device=hue.device)  # R, G, B
    k = torch.remainder(offsets + h6, 6.0)  # (..., 3)
    ramp = torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)  # (..., 3)
    s = saturation.unsqueeze(-1) if torch.is_tensor(saturation) else saturation
    v = value.unsqueeze(-1) if torch.is_tensor(value) else value
    return v - v * s * ramp


def rgb_to_hue(rgb: torch.Tensor) -> torch.Tensor:
    """Hue of RGB colours in its circular (atan2) form, for measuring hue.

    It equals the hexcone hue of ``hsv_to_rgb`` at the six primaries and secondaries and differs from it by less
    than 0.005 turns elsewhere; unlike the hexcone formula it is smooth away from grey.

    Args:
        rgb: (..., 3) RGB values (any non-negative scale).

    Returns:
        (...) hue in turns in [0, 1); 0 for grey colours.
    """
    r, g, b = rgb.unbind(-1)
    # atan2 form of the hue angle: smooth, and equal to the hexcone hue at the six primaries and secondaries.
    angle = torch.atan2(3.0**0.5 * (g - b), 2.0 * r - g - b)
    return torch.remainder(angle / (2.0 * torch.pi), 1.0)


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded values in [0, 1] to linear light, with the simple 2.2 power law. Shape is kept."""
    return rgb.clamp(0.0, 1.0).pow(2.2)


def linear_to_srgb(rgb: torch.Tensor) -> torch.Tensor:
    """Linear light to sRGB-encoded values in [0, 1] (2.2 power law, clipped). Shape is kept."""
    return rgb.clamp(0.0, 1.0).pow(1.0 / 2.2)


def kelvin_to_rgb(kelvin: torch.Tensor, reference_kelvin: float = WHITE_KELVIN) -> torch.Tensor:
    """Linear RGB colour of a black-body light of temperature ``kelvin``, white balanced at ``reference_kelvin``.

    The approximation: Planck's law evaluated at one wavelength per channel (610, 550 and 465 nm), divided by the
    same at the reference temperature (so the reference maps to white), then scaled so the largest channel is 1.
    It is smooth (infinitely differentiable) in the temperature and monotone per channel: lower temperatures are
    redder, higher ones bluer. Accurate to a few percent in chromaticity against CIE-integrated tables between
    about 1500 K and 15000 K, which is all the renderer needs.

    Args:
        kelvin: (...) temperatures in kelvin, > 0.
        reference_kelvin: the temperature rendered as white.

    Returns:
        (..., 3) linear RGB with max channel 1, same dtype and device as ``kelvin``.
    """
    lam = torch.tensor(_RGB_WAVELENGTHS_UM, dtype=torch.float64, device=kelvin.device)  # (3,)
    t = kelvin.to(torch.float64).unsqueeze(-1)  # (..., 1)
    # B(lambda, T) / B(lambda, T_ref): the lambda^-5 factor cancels.
    ratio = torch.expm1(_C2_UM_K / (lam * reference_kelvin)) / torch.expm1(_C2_UM_K / (lam * t))  # (..., 3)
    rgb = ratio / ratio.amax(dim=-1, keepdim=True)
    return rgb.to(kelvin.dtype)
