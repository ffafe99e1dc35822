"""Signed distance functions of the renderer's seven shape classes, in the object's own frame.

Every function takes points as one (3, M) tensor (rows x, y, z) and returns (M,) distances: negative inside,
positive outside, and never more than the true distance to the surface (exact SDFs, or unions / intersections of
exact ones, which are bounds with Lipschitz constant 1), so sphere tracing with a step of d never overshoots.
Objects sit in a sphere of radius ``BOUNDING_RADIUS[name]`` about the origin and are about 1.7 units across.
The seven classes mirror Causal3DIdent's seven object classes (docs/METHOD.md section 5) with analytic stand-ins.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Tensor = torch.Tensor


def _norm(p: Tensor) -> Tensor:
    # Row arithmetic: several times faster on the CPU than vector_norm's reduction over dim 0.
    return torch.addcmul(torch.addcmul(p[0] * p[0], p[1], p[1]), p[2], p[2]).sqrt_()


def sphere(p: Tensor) -> Tensor:
    """A ball of radius 0.8. p: (3, M) -> (M,)."""
    return _norm(p) - 0.8


def cube(p: Tensor) -> Tensor:
    """A cube of half-side 0.55 with edges rounded to radius 0.06. p: (3, M) -> (M,)."""
    q = p.abs() - (0.55 - 0.06)  # (3, M)
    outside = _norm(q.clamp(min=0.0))
    inside = q.amax(dim=0).clamp(max=0.0)
    return outside + inside - 0.06


def torus(p: Tensor) -> Tensor:
    """A ring about the y axis: major radius 0.6, tube radius 0.25. p: (3, M) -> (M,)."""
    ring = torch.hypot(p[0], p[2]) - 0.6
    return torch.hypot(ring, p[1]) - 0.25


def cylinder(p: Tensor) -> Tensor:
    """A cylinder along y: radius 0.5, half-height 0.6, rims rounded to 0.05. p: (3, M) -> (M,)."""
    dr = torch.hypot(p[0], p[2]) - (0.5 - 0.05)
    dy = p[1].abs() - (0.6 - 0.05)
    inside = torch.maximum(dr, dy).clamp(max=0.0)
    outside = torch.hypot(dr.clamp(min=0.0), dy.clamp(min=0.0))
    return inside + outside - 0.05


def cone(p: Tensor) -> Tensor:
    """A cone along y: base radius 0.62 at y = -0.57, apex at y = +0.67, edges rounded to 0.03. p: (3, M) -> (M,).

    Exact capped-cone distance (Inigo Quilez's formula) with bottom radius r1, top radius r2 and half-height h.
    """
    r1, r2, h, rr = 0.62, 0.0, 0.62, 0.03
    qx = torch.hypot(p[0], p[2])
    qy = p[1] - 0.05
    k2x, k2y = r2 - r1, 2.0 * h
    # Distance to the flat caps.
    cax = qx - torch.minimum(qx, torch.where(qy < 0.0, r1, r2))
    cay = qy.abs() - h
    # Distance to the slanted side.
    f = (((r2 - qx) * k2x + (h - qy) * k2y) / (k2x * k2x + k2y * k2y)).clamp(0.0, 1.0)
    cbx = qx - r2 + k2x * f
    cby = qy - h + k2y * f
    sign = torch.where((cbx < 0.0) & (cay < 0.0), -1.0, 1.0)
    return sign * torch.minimum(cax * cax + cay * cay, cbx * cbx + cby * cby).sqrt() - rr


def capsule(p: Tensor) -> Tensor:
    """A capsule along y: segment half-length 0.45, radius 0.38. p: (3, M) -> (M,)."""
    dy = p[1] - p[1].clamp(-0.45, 0.45)
    return torch.addcmul(torch.addcmul(p[0] * p[0], dy, dy), p[2], p[2]).sqrt_() - 0.38


_SPOUT_A = (0.40, -0.12, 0.0)
_SPOUT_B = (0.82, 0.26, 0.0)


def teapot(p: Tensor) -> Tensor:
    """A composite teapot: flattened ball body, lid knob, ring handle and straight spout. p: (3, M) -> (M,)."""
    x, y, z = p[0], p[1], p[2]
    body = torch.maximum(_norm(p) - 0.58, (y + 0.02).abs() - 0.42)
    knob = torch.sqrt(x * x + (y - 0.46).square() + z * z) - 0.1
    handle = torch.hypot(torch.hypot(x + 0.58, y - 0.02) - 0.24, z) - 0.055
    # Spout: distance to the segment A-B, minus its radius.
    bax, bay = _SPOUT_B[0] - _SPOUT_A[0], _SPOUT_B[1] - _SPOUT_A[1]
    pax, pay = x - _SPOUT_A[0], y - _SPOUT_A[1]
    s = ((pax * bax + pay * bay) / (bax * bax + bay * bay)).clamp(0.0, 1.0)
    spout = torch.sqrt((pax - bax * s).square() + (pay - bay * s).square() + z * z) - 0.075
    return torch.minimum(torch.minimum(body, knob), torch.minimum(handle, spout))


SDFS: dict[str, Callable[[Tensor], Tensor]] = {
    "sphere": sphere,
    "cube": cube,
    "torus": torus,
    "cylinder": cylinder,
    "cone": cone,
    "capsule": capsule,
    "teapot": teapot,
}

# Class index i is SHAPE_NAMES[i]; folder and latent-file numbering follow this order.
SHAPE_NAMES: tuple[str, ...] = tuple(SDFS)

# Radius of a sphere about the object's origin that contains the whole shape.
BOUNDING_RADIUS: dict[str, float] = {
    "sphere": 0.8,
    "cube": 0.55 * 3**0.5,
    "torus": 0.85,
    "cylinder": (0.5**2 + 0.6**2) ** 0.5,
    "cone": 0.9,
    "capsule": 0.83,
    "teapot": 0.96,
}


def shape_index(name: str) -> int:
    """The class index of shape ``name``; raises ValueError naming the known shapes for an unknown one."""
    if not isinstance(name, str):
        raise TypeError(f"shape must be a str, got {type(name).__name__}")
    try:
        return SHAPE_NAMES.index(name)
    except ValueError:
        raise ValueError(f"unknown shape {name!r}; expected one of {', '.join(SHAPE_NAMES)}") from None
