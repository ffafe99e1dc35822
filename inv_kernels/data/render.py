"""The batched sphere tracer: renders a chunk of images that share one shape class.

Scene: a pinhole camera at (0, 0, -CAMERA_DISTANCE) looks along +z with a vertical field of view of FOV_DEGREES;
one object (an SDF of ``shapes.py``) stands at a centre with a rotation; a point spotlight aimed at it lights it.
Shading is Lambert diffuse plus Blinn-Phong specular from the spotlight, a hemispherical ambient term and a soft
self-shadow, computed in linear light, scaled down where a channel would exceed 1 (so over-exposure never shifts
the hue) and written out as sRGB over a plain background with a faint vertical gradient.

Anti-aliasing is analytic rather than supersampled: each ray keeps the smallest ratio of surface distance to its
pixel's footprint seen while marching (cone tracing), and a pixel's coverage falls linearly from 1 on the silhouette
to 0 one pixel outside it. Coverage is therefore a continuous function of the scene, so sub-pixel motions change
the image smoothly, at the cost of one ray per pixel.

Everything is torch and fully batched (images x pixels): only rays that meet the object's bounding sphere are
marched, for at most MARCH_STEPS steps, and every few steps the rays that have hit the surface or left the bounding
sphere drop out. Each ray's result depends on that ray alone, so images do not depend on how scenes are batched.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from inv_kernels.data.colour import linear_to_srgb
from inv_kernels.data.shapes import BOUNDING_RADIUS, SDFS

Tensor = torch.Tensor

CAMERA_DISTANCE = 6.0
FOV_DEGREES = 32.0
MARCH_STEPS = 28
SHADOW_STEPS = 10
SHININESS = 60.0
SPECULAR = 0.35
AMBIENT = (0.08, 0.25)  # hemispherical ambient: (facing down, facing up), times the light colour
SHADOW_SOFTNESS = 8.0
COMPACT_EVERY = 6  # steps between dropping finished rays
CONVERGED = 1e-3  # a ray within this many pixels of the surface has hit it

# Tetrahedron offsets for SDF gradients (four evaluations instead of six).
_TETRA = ((1.0, -1.0, -1.0), (-1.0, -1.0, 1.0), (-1.0, 1.0, -1.0), (1.0, 1.0, 1.0))


@lru_cache(maxsize=16)
def _pixel_directions(size: int, device: str) -> tuple[Tensor, float]:
    """Unit ray directions (3, size*size) in row-major pixel order, and the angular size of one pixel."""
    tan_half = math.tan(math.radians(FOV_DEGREES) / 2.0)
    c = (torch.arange(size, dtype=torch.float32, device=device) + 0.5) / size * 2.0 - 1.0  # (S,)
    u = (c * tan_half).expand(size, size)  # (S, S): x to the right
    v = (-c * tan_half)[:, None].expand(size, size)  # (S, S): y up
    d = torch.stack([u, v, torch.ones_like(u)]).reshape(3, -1)  # (3, P)
    return d / torch.linalg.vector_norm(d, dim=0), 2.0 * tan_half / size


def _background_gradient(size: int, device: torch.device) -> Tensor:
    """(S,) brightness factor per image row: slightly lighter at the top, like a studio backdrop."""
    rows = (torch.arange(size, dtype=torch.float32, device=device) + 0.5) / size
    return 1.0 - 0.2 * rows


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Dot products of the columns of a and b, (3, M) each -> (M,); row arithmetic is faster than a dim-0 sum."""
    return torch.addcmul(torch.addcmul(a[0] * b[0], a[1], b[1]), a[2], b[2])


def _normalise(a: Tensor) -> Tensor:
    """Columns of a (3, M) scaled to unit length."""
    return a * _dot(a, a).clamp_(min=1e-24).rsqrt_()


def _normals(sdf, p: Tensor, eps: float) -> Tensor:
    """Unit SDF gradients (3, M) at points p (3, M), by the tetrahedron finite-difference stencil."""
    k = torch.tensor(_TETRA, dtype=p.dtype, device=p.device).T  # (3, 4)
    probes = p[:, None, :] + eps * k[:, :, None]  # (3, 4, M)
    values = sdf(probes.reshape(3, -1)).reshape(4, -1)  # (4, M)
    return _normalise(k @ values)  # (3, M)


def _march(
    sdf, origin: Tensor, direction: Tensor, t: Tensor, exit_t: Tensor, steps: int, pixel_angle: float
) -> tuple[Tensor, Tensor]:
    """Sphere-traces rays origin (3, M) + t * direction (3, M) from t (M,) for ``steps`` steps.

    Returns (best, t_best), both (M,): the smallest sdf / t seen (the surface distance over the distance travelled,
    i.e. in units of angle) and the t where it was seen. Every COMPACT_EVERY steps, rays that have converged on the
    surface (best below CONVERGED pixels) or left the bounding sphere (t > exit_t) stop marching; their results
    are final, so this only saves work.
    """
    best = torch.full_like(t, math.inf)  # results for all M rays
    t_best = t.clone()
    live = torch.arange(t.shape[0], device=t.device)  # (A,) rays still marching
    b, tb = best, t_best  # the live rays' running results
    for step in range(steps):
        dist = sdf(torch.addcmul(origin, direction, t))  # (A,)
        ratio = dist / t
        closer = ratio < b
        b = torch.where(closer, ratio, b)
        tb = torch.where(closer, t, tb)
        t = t + dist
        if (step + 1) % COMPACT_EVERY == 0 or step == steps - 1:
            best[live], t_best[live] = b, tb
            keep = ((b > CONVERGED * pixel_angle) & (t < exit_t)).nonzero().squeeze(1)
            if keep.shape[0] == 0:
                break
            live, b, tb, t, exit_t = live[keep], b[keep], tb[keep], t[keep], exit_t[keep]
            origin, direction = origin[:, keep], direction[:, keep]
    return best, t_best


def _soft_shadow(sdf, origin: Tensor, direction: Tensor, steps: int) -> Tensor:
    """Penumbra factor in [0, 1] (1 = fully lit) along rays origin (3, M) + s * direction (3, M)."""
    s = torch.full_like(origin[0], 0.04)  # (M,)
    lit = torch.ones_like(s)
    for _ in range(steps):
        h = sdf(torch.addcmul(origin, direction, s))  # (M,)
        lit = torch.minimum(lit, SHADOW_SOFTNESS * h / s)
        s = s + h.clamp(0.03, 0.3)
    lit = lit.clamp(0.0, 1.0)
    return lit * lit * (3.0 - 2.0 * lit)  # smoothstep


def render_chunk(
    shape: str,
    centre: Tensor,
    rotation: Tensor,
    light_position: Tensor,
    albedo: Tensor,
    light_rgb: Tensor,
    background: Tensor,
    size: int,
    steps: int = MARCH_STEPS,
    shadow_steps: int = SHADOW_STEPS,
) -> tuple[Tensor, Tensor]:
    """Renders B images of one shape class. Inputs are trusted (``scenes.render_scenes`` validates them).

    Args:
        shape: a key of ``shapes.SDFS``.
        centre: (B, 3) object centre in world coordinates.
        rotation: (B, 3, 3) object-to-world rotation matrices.
        light_position: (B, 3) spotlight position in world coordinates.
        albedo: (B, 3) object colour, linear RGB in [0, 1].
        light_rgb: (B, 3) spotlight colour, linear RGB in [0, 1].
        background: (B, 3) background colour, sRGB in [0, 1].
        size: image height and width in pixels.
        steps: sphere-tracing steps per ray.
        shadow_steps: steps of the soft-shadow march toward the light.

    Returns:
        images: (B, 3, size, size) float32 sRGB in [0, 1].
        coverage: (B, size, size) float32 in [0, 1], the object's anti-aliased silhouette (0 = background).
    """
    sdf = SDFS[shape]
    device = centre.device
    b_count = centre.shape[0]
    dirs, pixel_angle = _pixel_directions(size, str(device))  # (3, P)
    n_pix = dirs.shape[1]
    camera = torch.tensor([0.0, 0.0, -CAMERA_DISTANCE], device=device)

    # Bounding-sphere test in world space (distances do not depend on the rotation).
    oc = camera - centre  # (B, 3): camera relative to object centre
    radius = BOUNDING_RADIUS[shape] + 1.5 * pixel_angle * (CAMERA_DISTANCE + 2.0)  # a pixel of margin for coverage
    half_b = oc @ dirs  # (B, P)
    disc = half_b * half_b - ((oc * oc).sum(1) - radius * radius)[:, None]  # (B, P)
    ray = (disc > 0.0).reshape(-1).nonzero().squeeze(1)  # (M,) flat index image * P + pixel
    img = ray // n_pix  # (M,)
    root = disc.reshape(-1)[ray].sqrt()
    t = (-half_b.reshape(-1)[ray] - root).clamp(min=1e-3)  # (M,) entry distance
    exit_t = -half_b.reshape(-1)[ray] + root  # (M,) exit distance

    # Rays in the object's frame: origin R^T (camera - centre), direction R^T d.
    rot_t = rotation.transpose(1, 2)  # (B, 3, 3) world-to-object
    origin = torch.einsum("bij,bj->ib", rot_t, oc)[:, img]  # (3, M)
    direction = (rot_t @ dirs)[img, :, ray - img * n_pix].T.contiguous()  # (3, M)

    best, t_best = _march(sdf, origin, direction, t, exit_t, steps, pixel_angle)
    coverage = (1.0 - best / pixel_angle).clamp(0.0, 1.0)  # (M,)

    # Shade only rays that cover some of their pixel: at the hit or, for near misses, at the closest approach.
    seen = (coverage > 0.0).nonzero().squeeze(1)  # (K,) indices into the M rays
    ray, img, coverage = ray[seen], img[seen], coverage[seen]
    origin, direction, t_best = origin[:, seen], direction[:, seen], t_best[seen]
    p = torch.addcmul(origin, direction, t_best)  # (3, K)
    n = _normals(sdf, p, 1e-3)  # (3, K)
    light_obj = torch.einsum("bij,bj->ib", rot_t, light_position - centre)  # (3, B) light in each object's frame
    to_light = _normalise(light_obj[:, img] - p)  # (3, K)
    half_vec = _normalise(to_light - direction)  # (3, K)
    n_dot_l = _dot(n, to_light).clamp(min=0.0)  # (K,)
    n_dot_h = _dot(n, half_vec).clamp(min=0.0)  # (K,)
    lit = _soft_shadow(sdf, p + 0.02 * n, to_light, shadow_steps) if shadow_steps > 0 else 1.0
    up = rotation[:, 1, :].T[:, img]  # (3, K): world +y in the object's frame
    ambient = AMBIENT[0] + (AMBIENT[1] - AMBIENT[0]) * (0.5 + 0.5 * _dot(n, up))  # (K,)
    diffuse = albedo.T[:, img] * (ambient + n_dot_l * lit)  # (3, K)
    specular = SPECULAR * lit * n_dot_h.pow(SHININESS) * (n_dot_l > 0.0)  # (K,)
    colour = light_rgb.T[:, img] * (diffuse + specular)  # (3, K) linear
    # Hue-preserving exposure: scale over-bright colours down as a whole instead of clipping each channel.
    colour = linear_to_srgb(colour / colour.amax(dim=0).clamp(min=1.0))

    # Background with a faint vertical gradient, then the object composited over it.
    grad = _background_gradient(size, device)  # (S,)
    images = (background[:, :, None, None] * grad[:, None]).expand(b_count, 3, size, size).contiguous()
    flat = images.view(b_count, 3, n_pix)  # (B, 3, P), shares memory with images
    pix = ray - img * n_pix  # (K,)
    flat[img, :, pix] = torch.lerp(flat[img, :, pix], colour.T, coverage[:, None])  # (K, 3)
    mask = torch.zeros(b_count * n_pix, device=device)
    mask[ray] = coverage
    return images, mask.reshape(b_count, size, size)
