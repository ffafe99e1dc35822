"""Rendered 3D scenes with known factors of variation: the latents, their meaning, and the public renderer.

The ten latents follow Causal3DIdent (von Kuegelgen et al., NeurIPS 2021; docs/METHOD.md section 5), in its order, each
normalised to [-1, 1]; ``latents_to_raw`` gives the physical values:

====  =================  =================================================================================
 0-2  pos_x, pos_y,      object centre: x = 0.6 u, y = 0.6 u (world units; the object is about 1.7 across,
      pos_z              the view about 3.4 across at depth 0), z = 1.0 u (depth, + is farther away)
 3-5  rot_alpha, beta,   Euler angles pi * u (radians); object-to-world rotation Rz(gamma) Ry(beta) Rx(alpha)
      gamma
 6    spotlight_angle    spotlight on an arc in front of the object: theta = pi/2 * u, at
                         (4.5 sin theta, 4.5 cos theta, -3): left (u = -1), above (0), right (+1)
 7    object_hue         hue (u + 1) / 2 turns, saturation 0.75, value 0.9
 8    spotlight_hue      hue (u + 1) / 2 turns, saturation 0.25 (a tinted white light)
 9    background_hue     hue (u + 1) / 2 turns, saturation 0.55, value 0.7 (darkening to 0.8x toward the bottom)
====  =================  =================================================================================

plus the class: one of ``SHAPE_NAMES`` (seven shapes, as Causal3DIdent's seven objects). Hues are circular: -1 and
+1 are the same colour. ``sample_latents`` draws them independently and uniformly (Causal3DIdent itself adds causal
dependencies between some latents; independent factors make probes easier to read).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from inv_kernels._validate import check_finite, check_tensor
from inv_kernels.data.colour import hsv_to_rgb, srgb_to_linear
from inv_kernels.data.render import render_chunk
from inv_kernels.data.shapes import SHAPE_NAMES, shape_index

Tensor = torch.Tensor

LATENT_NAMES: tuple[str, ...] = (
    "pos_x",
    "pos_y",
    "pos_z",
    "rot_alpha",
    "rot_beta",
    "rot_gamma",
    "spotlight_angle",
    "object_hue",
    "spotlight_hue",
    "background_hue",
)
# Every normalised latent lies in this closed interval.
LATENT_RANGE: tuple[float, float] = (-1.0, 1.0)
# Physical units of latents_to_raw's columns.
RAW_UNITS: tuple[str, ...] = ("world",) * 3 + ("rad",) * 4 + ("turns",) * 3
NUM_LATENTS = len(LATENT_NAMES)
MIN_SIZE, MAX_SIZE = 16, 512

POSITION_SCALE = (0.6, 0.6, 1.0)
LIGHT_RADIUS, LIGHT_DEPTH = 4.5, -3.0
OBJECT_SV, LIGHT_S, BACKGROUND_SV = (0.75, 0.9), 0.25, (0.55, 0.7)
# About one million pixels per rendered chunk bounds the memory (a few hundred MB at most).
_CHUNK_PIXELS = 1 << 20


def check_size(op: str, size: object) -> int:
    """Checks an image size (pixels per side): an int in [MIN_SIZE, MAX_SIZE]; returns it."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"{op}: size must be an int, got {type(size).__name__}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"{op}: size must be in [{MIN_SIZE}, {MAX_SIZE}] pixels, got {size}")
    return size


def euler_matrix(angles: Tensor) -> Tensor:
    """Rotation matrices Rz(gamma) Ry(beta) Rx(alpha) from Euler angles.

    Args:
        angles: (N, 3) angles (alpha, beta, gamma) in radians.

    Returns:
        (N, 3, 3) object-to-world rotation matrices.
    """
    c, s = torch.cos(angles), torch.sin(angles)  # (N, 3)
    one, zero = torch.ones_like(c[:, 0]), torch.zeros_like(c[:, 0])

    def stack(rows):
        return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)

    rx = stack([(one, zero, zero), (zero, c[:, 0], -s[:, 0]), (zero, s[:, 0], c[:, 0])])
    ry = stack([(c[:, 1], zero, s[:, 1]), (zero, one, zero), (-s[:, 1], zero, c[:, 1])])
    rz = stack([(c[:, 2], -s[:, 2], zero), (s[:, 2], c[:, 2], zero), (zero, zero, one)])
    return rz @ ry @ rx


def latents_to_raw(latents: Tensor) -> Tensor:
    """Physical values of normalised latents (see the module docstring for units).

    Args:
        latents: (N, 10) normalised latents in [-1, 1].

    Returns:
        (N, 10) position (world units), three Euler angles and the spotlight angle (radians), three hues (turns).
    """
    scale = torch.tensor(
        [*POSITION_SCALE, math.pi, math.pi, math.pi, math.pi / 2, 0.5, 0.5, 0.5],
        dtype=latents.dtype,
        device=latents.device,
    )
    offset = torch.tensor([0.0] * 7 + [0.5] * 3, dtype=latents.dtype, device=latents.device)
    return latents * scale + offset


def sample_latents(count: int, seed: int, classes: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Draws scenes: latents uniform in [-1, 1]^10 and classes uniform over the shapes, from one CPU generator.

    Args:
        count: number of scenes (>= 0).
        seed: seed of the torch.Generator; the same seed always gives the same scenes.
        classes: (count,) int64 class indices to use instead of random ones.

    Returns:
        latents: (count, 10) float32.
        classes: (count,) int64 in [0, len(SHAPE_NAMES)).
    """
    _check_count("sample_latents", "count", count)
    gen = torch.Generator().manual_seed(int(seed))
    latents = torch.rand(count, NUM_LATENTS, generator=gen) * 2.0 - 1.0
    drawn = torch.randint(len(SHAPE_NAMES), (count,), generator=gen)
    return latents, (drawn if classes is None else _class_tensor("sample_latents", classes, count))


def _check_count(op: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{op}: {name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{op}: {name} must be >= 0, got {value}")
    return value


def _class_tensor(op: str, classes: Tensor | Sequence[int | str], count: int) -> Tensor:
    """Class indices (count,) int64 on the CPU from a tensor or a sequence of indices or shape names."""
    if not isinstance(classes, torch.Tensor):
        classes = torch.tensor([shape_index(c) if isinstance(c, str) else int(c) for c in classes], dtype=torch.long)
    check_tensor(op, "classes", classes, ndim=1, layout="(N,)", dtypes=(torch.int64, torch.int32))
    if classes.shape[0] != count:
        raise ValueError(f"{op}: classes must have {count} entries (one per scene), got {classes.shape[0]}")
    bad = (classes < 0) | (classes >= len(SHAPE_NAMES))
    if bool(bad.any()):
        raise ValueError(
            f"{op}: classes must be in [0, {len(SHAPE_NAMES)}) ({', '.join(SHAPE_NAMES)}), got {int(classes[bad][0])}"
        )
    return classes.to("cpu", torch.long)


def _override(op: str, name: str, value: object, shape: tuple[int, ...], device: torch.device) -> Tensor:
    """Checks an optional per-scene override (a float tensor of exactly ``shape``, finite); returns it as float32."""
    check_tensor(op, name, value, ndim=len(shape), layout=str(shape))
    if tuple(value.shape) != shape:
        raise ValueError(f"{op}: {name} must have shape {shape}, got {tuple(value.shape)}")
    check_finite(op, name, value)
    return value.to(device, torch.float32)


def render_scenes(
    latents: Tensor,
    classes: Tensor | Sequence[int | str],
    *,
    size: int = 64,
    rotation: Tensor | None = None,
    light_rgb: Tensor | None = None,
    background_rgb: Tensor | None = None,
    device: str | torch.device | None = None,
) -> tuple[Tensor, Tensor]:
    """Renders one image per scene, deterministically (the same inputs give the same pixels on a given device).

    Args:
        latents: (N, 10) normalised latents in [-1, 1], ordered as ``LATENT_NAMES``.
        classes: (N,) shape class per scene: an int tensor, or a sequence of indices or names of ``SHAPE_NAMES``.
        size: image height and width in pixels, in [16, 512].
        rotation: (N, 3, 3) object-to-world rotations replacing the Euler-angle latents (turntables use this).
        light_rgb: (N, 3) linear RGB spotlight colours replacing the spotlight-hue latent (colour temperatures).
        background_rgb: (N, 3) sRGB background colours replacing the background-hue latent (the black
            backdrops of COIL and ALOI).
        device: where to render; default the device of ``latents``.

    Returns:
        images: (N, 3, size, size) float32 sRGB in [0, 1], on ``device``.
        masks: (N, size, size) float32 in [0, 1], the object's anti-aliased silhouette; it depends only on shape,
        position and rotation.

    Raises:
        TypeError: wrong types or dtypes. ValueError: wrong shapes, a size outside [16, 512], NaN/Inf latents,
        latents outside [-1, 1], unknown shape names or class indices.
    """
    op = "render_scenes"
    check_tensor(op, "latents", latents, ndim=2, layout="(N, 10)", dtypes=(torch.float32, torch.float64))
    if latents.shape[1] != NUM_LATENTS:
        raise ValueError(
            f"{op}: latents must have {NUM_LATENTS} columns ({', '.join(LATENT_NAMES)}), "
            f"got shape {tuple(latents.shape)}"
        )
    check_finite(op, "latents", latents)
    if latents.numel() and float(latents.abs().max()) > 1.0 + 1e-6:
        raise ValueError(f"{op}: latents must lie in [-1, 1], got values up to {float(latents.abs().max()):.3g}")
    check_size(op, size)
    n = latents.shape[0]
    cls = _class_tensor(op, classes, n)
    device = torch.device(device) if device is not None else latents.device
    lat = latents.to(device, torch.float32)
    raw = latents_to_raw(lat)  # (N, 10)
    rot = euler_matrix(raw[:, 3:6]) if rotation is None else _override(op, "rotation", rotation, (n, 3, 3), device)
    if light_rgb is None:
        light = srgb_to_linear(hsv_to_rgb(raw[:, 8], LIGHT_S, 1.0))
    else:
        light = _override(op, "light_rgb", light_rgb, (n, 3), device)
    if background_rgb is None:
        background = hsv_to_rgb(raw[:, 9], *BACKGROUND_SV)
    else:
        background = _override(op, "background_rgb", background_rgb, (n, 3), device)
    theta = raw[:, 6]
    light_pos = torch.stack(
        [LIGHT_RADIUS * torch.sin(theta), LIGHT_RADIUS * torch.cos(theta), torch.full_like(theta, LIGHT_DEPTH)], 1
    )
    albedo = srgb_to_linear(hsv_to_rgb(raw[:, 7], *OBJECT_SV))

    images = torch.empty(n, 3, size, size, device=device)
    masks = torch.empty(n, size, size, device=device)
    chunk = max(1, _CHUNK_PIXELS // (size * size))
    for k, name in enumerate(SHAPE_NAMES):
        members = (cls == k).nonzero().squeeze(1).to(device)
        for part in members.split(chunk):
            chunk_images, chunk_masks = render_chunk(
                name, raw[part, :3], rot[part], light_pos[part], albedo[part], light[part], background[part], size
            )
            images.index_copy_(0, part, chunk_images)
            masks.index_copy_(0, part, chunk_masks)
    return images, masks


def to_uint8(images: Tensor) -> Tensor:
    """Images (N, 3, H, W) float in [0, 1] -> (N, H, W, 3) uint8 on the CPU, ready for PIL (rounded, not truncated)."""
    return (images.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu()
