"""Writers of the generated image sets, each in the folder layout of the real dataset it stands in for.

Each ``write_<kind>(folder, size=, count=, seed=)`` renders its scenes and writes them under ``folder`` (which it
creates), and returns a dict of counts for the manifest. They write in place; ``cache.build_atomically`` makes the
whole set appear at once. Layouts (docs/METHOD.md sections 4.3 and 5):

- classification: ``train/<shape>/<index>.jpg`` and ``test/<shape>/<index>.jpg`` (torchvision ImageFolder);
  class = shape, every latent random.
- coil: ``obj<o>__<angle>.png``, o = 1..count, angle = 0, 5, ..., 355 (COIL-100): one object on a turntable.
- aloi: ``illumination/<o>/<o>_l<l>c1.png`` (8 spotlight directions), ``temperature/<o>/<o>_i<code>.png`` (12 light
  colour temperatures, ALOI's codes i110..i250 = 2175..3075 K) and ``viewpoint/<o>/<o>_r<angle>.png`` (72 views).
- latents: ``trainset/images_<c>/<index>.png`` with ``trainset/latents_<c>.npy`` (normalised, (n, 10) float32)
  and ``raw_latents_<c>.npy`` (physical units), the same under ``testset/`` (Causal3DIdent).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from inv_kernels.data.colour import kelvin_to_rgb
from inv_kernels.data.scenes import (
    euler_matrix,
    latents_to_raw,
    render_scenes,
    sample_latents,
    to_uint8,
)
from inv_kernels.data.shapes import SHAPE_NAMES

Tensor = torch.Tensor

JPEG_QUALITY = 95
TURNTABLE_ANGLES: tuple[int, ...] = tuple(range(0, 360, 5))  # 72 views, as COIL-100 and ALOI
ALOI_LIGHTS = 8
# ALOI's illumination-colour codes and the colour temperature each stands for (linear between 2175 and 3075 K).
ALOI_TEMPERATURE_CODES: tuple[int, ...] = (110, 120, 130, 140, 150, 160, 170, 180, 190, 210, 230, 250)
ALOI_KELVIN: tuple[float, ...] = tuple(2175.0 + (c - 110) * 900.0 / 140.0 for c in ALOI_TEMPERATURE_CODES)
_RENDER_BATCH = 1024  # scenes rendered per call while writing
# The photographed sets (COIL, ALOI): white light instead of the spotlight-hue latent, and a black backdrop.
_WHITE = torch.ones(3)
BACKDROP_RGB = torch.tensor([0.04, 0.04, 0.04])


def sub_seed(seed: int, *names: str) -> int:
    """A seed for one part of a set, derived from the set's seed and the part's names (stable across runs)."""
    return zlib.crc32(":".join([str(int(seed)), *names]).encode()) & 0x7FFFFFFF


def default_device() -> torch.device:
    """The GPU when torch sees one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _save(pixels: np.ndarray, path: Path) -> None:
    image = Image.fromarray(pixels)
    if path.suffix == ".jpg":
        image.save(path, quality=JPEG_QUALITY)
    else:
        image.save(path, compress_level=1)


def render_to_files(
    paths: Sequence[Path],
    latents: Tensor,
    classes: Tensor,
    *,
    size: int,
    rotation: Tensor | None = None,
    light_rgb: Tensor | None = None,
    background_rgb: Tensor | None = None,
    device: torch.device | None = None,
    bar: tqdm | None = None,
) -> None:
    """Renders scene i to ``paths[i]`` (format from the suffix), in batches, creating parent folders.

    Args:
        paths: N file paths ending in .jpg or .png.
        latents: (N, 10) normalised latents. classes: (N,) int64 class indices.
        size: image side in pixels. rotation, light_rgb, background_rgb: optional overrides (N, 3, 3), (N, 3),
            (N, 3), as in ``render_scenes``.
        device: where to render (default: ``default_device()``). bar: a tqdm bar advanced per image.
    """
    device = device or default_device()
    for folder in sorted({p.parent for p in paths}):
        folder.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(paths), _RENDER_BATCH):
        part = slice(start, start + _RENDER_BATCH)
        images, _ = render_scenes(
            latents[part],
            classes[part],
            size=size,
            rotation=None if rotation is None else rotation[part],
            light_rgb=None if light_rgb is None else light_rgb[part],
            background_rgb=None if background_rgb is None else background_rgb[part],
            device=device,
        )
        for pixels, path in zip(to_uint8(images).numpy(), paths[part]):
            _save(pixels, path)
        if bar is not None:
            bar.update(len(paths[part]))


def _balanced_classes(per_class: int) -> Tensor:
    return torch.arange(len(SHAPE_NAMES)).repeat_interleave(per_class)  # (C * per_class,)


def _split_sizes(count: int) -> dict[str, int]:
    return {"train": count, "test": max(1, count // 4) if count else 0}


def write_classification(
    folder: Path, *, size: int, count: int, seed: int, bar: tqdm | None = None, device: torch.device | None = None
) -> dict:
    """Writes ``count`` training and ``max(1, count // 4)`` test JPEGs per shape class (ImageFolder layout)."""
    counts = {}
    for split, per_class in _split_sizes(count).items():
        latents, classes = sample_latents(
            per_class * len(SHAPE_NAMES), sub_seed(seed, "classification", split), _balanced_classes(per_class)
        )
        paths = [folder / split / SHAPE_NAMES[c] / f"{i % per_class:05d}.jpg" for i, c in enumerate(classes.tolist())]
        render_to_files(paths, latents, classes, size=size, bar=bar, device=device)
        counts[split] = len(paths)
    return counts


def write_latents(
    folder: Path, *, size: int, count: int, seed: int, bar: tqdm | None = None, device: torch.device | None = None
) -> dict:
    """Writes ``count`` training and ``max(1, count // 4)`` test PNGs per class with their latents (Causal3DIdent)."""
    counts = {}
    for split, per_class in _split_sizes(count).items():
        name = {"train": "trainset", "test": "testset"}[split]
        for c, shape in enumerate(SHAPE_NAMES):
            latents, classes = sample_latents(
                per_class, sub_seed(seed, "latents", split, shape), torch.full((per_class,), c, dtype=torch.long)
            )
            paths = [folder / name / f"images_{c}" / f"{i:06d}.png" for i in range(per_class)]
            (folder / name / f"images_{c}").mkdir(parents=True, exist_ok=True)
            render_to_files(paths, latents, classes, size=size, bar=bar, device=device)
            np.save(folder / name / f"latents_{c}.npy", latents.numpy().astype(np.float32))
            np.save(folder / name / f"raw_latents_{c}.npy", latents_to_raw(latents).numpy().astype(np.float32))
        counts[name] = per_class * len(SHAPE_NAMES)
    return counts


def _objects(count: int, seed: int, kind: str) -> tuple[Tensor, Tensor, Tensor]:
    """Per object: latents (count, 10) with the object centred, classes (count,) cycling through the shapes, and a
    random resting pose (count, 3, 3)."""
    latents, _ = sample_latents(count, sub_seed(seed, kind, "objects"))
    latents[:, 0:2] = 0.0  # centred and near the camera, filling the frame like the photographed objects
    latents[:, 2] = -1.0
    classes = torch.arange(count) % len(SHAPE_NAMES)
    base = euler_matrix(latents_to_raw(latents)[:, 3:6])
    return latents, classes, base


def turntable_rotations(base: Tensor, degrees: Sequence[float]) -> Tensor:
    """The object turned about the world's vertical axis: Ry(angle) @ base for each angle.

    Args:
        base: (3, 3) the object's rotation at angle 0. degrees: K angles in degrees.

    Returns:
        (K, 3, 3) rotations.
    """
    angles = torch.zeros(len(degrees), 3)
    angles[:, 1] = torch.tensor([math.radians(d) for d in degrees])
    return euler_matrix(angles) @ base


def aloi_temperature_rgb() -> Tensor:
    """(12, 3) linear RGB light colours of ALOI's 12 temperatures, white balanced at the hottest (3075 K), as the
    ALOI camera was: from orange (2175 K) to white."""
    return kelvin_to_rgb(torch.tensor(ALOI_KELVIN, dtype=torch.float64), ALOI_KELVIN[-1]).float()


def write_coil(
    folder: Path, *, size: int, count: int, seed: int, bar: tqdm | None = None, device: torch.device | None = None
) -> dict:
    """Writes ``count`` objects x 72 turntable views as ``obj<o>__<angle>.png`` (COIL-100)."""
    latents, classes, base = _objects(count, seed, "coil")
    k = len(TURNTABLE_ANGLES)
    paths = [folder / f"obj{o + 1}__{a}.png" for o in range(count) for a in TURNTABLE_ANGLES]
    rotation = torch.cat([turntable_rotations(base[o], TURNTABLE_ANGLES) for o in range(count)]) if count else None
    render_to_files(
        paths,
        latents.repeat_interleave(k, 0),
        classes.repeat_interleave(k),
        size=size,
        rotation=rotation,
        light_rgb=_WHITE.expand(len(paths), 3),
        background_rgb=BACKDROP_RGB.expand(len(paths), 3),
        bar=bar,
        device=device,
    )
    return {"objects": count, "views_per_object": k, "images": len(paths)}


def write_aloi(
    folder: Path, *, size: int, count: int, seed: int, bar: tqdm | None = None, device: torch.device | None = None
) -> dict:
    """Writes ``count`` objects, each under 8 light directions, 12 light colour temperatures and 72 viewpoints."""
    latents, classes, base = _objects(count, seed, "aloi")
    temperature = aloi_temperature_rgb()  # (12, 3)
    light_angles = torch.linspace(-1.0, 1.0, ALOI_LIGHTS)  # spotlight_angle latent per light
    views = []  # (path, object, spotlight_angle latent or None, rotation, light colour)
    for o in range(count):
        name = str(o + 1)
        for l, angle in enumerate(light_angles.tolist(), start=1):
            views.append((folder / "illumination" / name / f"{name}_l{l}c1.png", o, angle, base[o], None))
        for code, rgb in zip(ALOI_TEMPERATURE_CODES, temperature):
            views.append((folder / "temperature" / name / f"{name}_i{code}.png", o, 0.0, base[o], rgb))
        for a, rotation in zip(TURNTABLE_ANGLES, turntable_rotations(base[o], TURNTABLE_ANGLES)):
            views.append((folder / "viewpoint" / name / f"{name}_r{a}.png", o, None, rotation, None))
    if views:
        objects = torch.tensor([v[1] for v in views])
        lat = latents[objects].clone()  # (V, 10)
        for i, (_, _, angle, _, _) in enumerate(views):
            if angle is not None:
                lat[i, 6] = angle
        light = torch.stack([_WHITE if v[4] is None else v[4] for v in views])  # (V, 3)
        render_to_files(
            [v[0] for v in views],
            lat,
            classes[objects],
            size=size,
            rotation=torch.stack([v[3] for v in views]),
            light_rgb=light,
            background_rgb=BACKDROP_RGB.expand(len(views), 3),
            bar=bar,
            device=device,
        )
    return {
        "objects": count,
        "illumination": count * ALOI_LIGHTS,
        "temperature": count * len(ALOI_KELVIN),
        "viewpoint": count * len(TURNTABLE_ANGLES),
        "images": len(views),
    }


WRITERS = {"classification": write_classification, "coil": write_coil, "aloi": write_aloi, "latents": write_latents}


def images_per_set(kind: str, count: int) -> int:
    """How many images ``WRITERS[kind]`` writes for ``count`` (for progress bars)."""
    c, test = len(SHAPE_NAMES), _split_sizes(count)["test"]
    per_object = {"coil": len(TURNTABLE_ANGLES), "aloi": ALOI_LIGHTS + len(ALOI_KELVIN) + len(TURNTABLE_ANGLES)}
    return count * per_object[kind] if kind in per_object else c * (count + test)
