"""A contact sheet of the generated scenes: examples of every shape class, then one object on a turntable, under
eight light directions and under ALOI's twelve light colour temperatures. For looking at, and for the docs."""

from __future__ import annotations

import torch
from PIL import Image, ImageDraw

from inv_kernels.data.scenes import euler_matrix, latents_to_raw, render_scenes, sample_latents, to_uint8
from inv_kernels.data.shapes import SHAPE_NAMES
from inv_kernels.data.writers import ALOI_KELVIN, BACKDROP_RGB, aloi_temperature_rgb, sub_seed, turntable_rotations

COLUMNS = 12
LABEL_WIDTH = 110
_BACKDROP = (24, 24, 24)


def _rows(size: int, seed: int, device: torch.device | None) -> list[tuple[str, torch.Tensor]]:
    """(label, (COLUMNS, 3, size, size) images) per row of the sheet."""
    rows = []
    for c, shape in enumerate(SHAPE_NAMES):
        latents, classes = sample_latents(COLUMNS, sub_seed(seed, "sheet", shape), torch.full((COLUMNS,), c))
        rows.append((shape, render_scenes(latents, classes, size=size, device=device)[0]))

    # One teapot, centred and tilted a little toward the camera, for the group strips (white light, black backdrop,
    # as the COIL and ALOI sets).
    latent, _ = sample_latents(1, sub_seed(seed, "sheet", "groups"))
    latent[0, :3] = torch.tensor([0.0, 0.0, -1.0])  # centred and near, as in the coil and aloi sets
    latent[0, 3:6] = torch.tensor([0.15, 0.0, 0.05])
    latent[0, 6] = 0.0  # light from above
    latent[0, 7] = 0.2  # a light blue, on which the warm light temperatures show well
    base = euler_matrix(latents_to_raw(latent)[:, 3:6])[0]  # (3, 3)
    latents = latent.expand(COLUMNS, -1).clone()  # (12, 10)
    teapot = torch.full((COLUMNS,), SHAPE_NAMES.index("teapot"))
    white, fixed = torch.ones(COLUMNS, 3), base.expand(COLUMNS, 3, 3)

    def strip(lat, rotation, light):
        backdrop = BACKDROP_RGB.expand(len(lat), 3)
        return render_scenes(
            lat,
            teapot[: len(lat)],
            size=size,
            rotation=rotation,
            light_rgb=light,
            background_rgb=backdrop,
            device=device,
        )[0]

    turns = turntable_rotations(base, [30.0 * k for k in range(COLUMNS)])
    rows.append(("turntable, 30deg", strip(latents, turns, white)))
    lights = latents[:8].clone()
    lights[:, 6] = torch.linspace(-1.0, 1.0, 8)
    rows.append(("8 light angles", strip(lights, fixed[:8], white[:8])))
    kelvin = f"{ALOI_KELVIN[0]:.0f}-{ALOI_KELVIN[-1]:.0f} K"
    rows.append((kelvin, strip(latents, fixed, aloi_temperature_rgb())))
    return rows


def contact_sheet(size: int = 96, seed: int = 0, device: str | torch.device | None = None) -> Image.Image:
    """Renders the contact sheet.

    Args:
        size: side of one thumbnail in pixels, in [16, 512].
        seed: seed of the examples.
        device: where to render (default: the CPU).

    Returns:
        An RGB PIL image, (LABEL_WIDTH + 12 * (size + 2)) wide and (10 * (size + 2)) high.
    """
    rows = _rows(size, seed, torch.device(device) if device is not None else None)
    pad = 2
    cell = size + pad
    sheet = Image.new("RGB", (LABEL_WIDTH + COLUMNS * cell, len(rows) * cell), _BACKDROP)
    draw = ImageDraw.Draw(sheet)
    for r, (label, images) in enumerate(rows):
        draw.text((6, r * cell + size // 2 - 6), label, fill=(230, 230, 230))
        for k, pixels in enumerate(to_uint8(images).numpy()):
            sheet.paste(Image.fromarray(pixels), (LABEL_WIDTH + k * cell, r * cell))
    return sheet
