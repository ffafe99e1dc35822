"""Data: image folders and the one rule for which images are used, and the built-in generated dataset of rendered 3D
scenes with known factors.

- ``render_scenes(latents, classes, size=...)``: images (N, 3, S, S) and silhouettes of scenes given their ten
  Causal3DIdent-style latents (``LATENT_NAMES``) and shape classes (``SHAPE_NAMES``); ``sample_latents`` draws them.
- ``generated_dataset(kind, size=..., count=..., seed=...)``: the folder of a cached generated set
  (classification, coil, aloi or latents), made on first use. ``python -m pipelines.generate`` makes them too.
- ``ImageFolderIndex(root)``: the (path, label) lists of root/<class>/**/<image>; ``load_image`` decodes a file by the
  rule every loader follows, raising ``UnusableImageError`` for a file the loaders skip (``data.folders``).
- ``data.clean_views``: the evaluation views of image files, as measurement, the kNN monitor and the probes read them.
"""

from inv_kernels.data.cache import cache_root
from inv_kernels.data.colour import hsv_to_rgb, kelvin_to_rgb, rgb_to_hue
from inv_kernels.data.folders import ImageFolderIndex, UnusableImageError, load_image, split_folders
from inv_kernels.data.generated import DEFAULT_COUNTS, KINDS, generated_dataset, write_dataset
from inv_kernels.data.scenes import (
    LATENT_NAMES,
    LATENT_RANGE,
    euler_matrix,
    latents_to_raw,
    render_scenes,
    sample_latents,
    to_uint8,
)
from inv_kernels.data.shapes import SHAPE_NAMES

__all__ = [
    "DEFAULT_COUNTS",
    "ImageFolderIndex",
    "KINDS",
    "LATENT_NAMES",
    "LATENT_RANGE",
    "SHAPE_NAMES",
    "UnusableImageError",
    "cache_root",
    "euler_matrix",
    "generated_dataset",
    "hsv_to_rgb",
    "kelvin_to_rgb",
    "latents_to_raw",
    "load_image",
    "render_scenes",
    "rgb_to_hue",
    "sample_latents",
    "split_folders",
    "to_uint8",
    "write_dataset",
]
