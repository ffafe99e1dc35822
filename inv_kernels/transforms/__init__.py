"""Synthetic transforms of the invariance protocol (docs/METHOD.md 4.1-4.2): 18 families with the reference code's
parameter grids, batched on tensors on any device, in ``paper`` mode (the reference's quirks) or ``corrected`` mode.

    views = apply_transform("rotation", images, mode="paper")   # (n, 256, 3, 224, 224) float32 in [0, 1]
    clean = clean_view(images)                                  # (n, 3, 224, 224): Resize(256) + CenterCrop(224)
    for image_idx, rows, chunk in iter_views("blur", images):   # stream (p, 3, 224, 224) chunks into a model
        ...

See docs/TRANSFORMS.md for the table of families, grids and mode differences.
"""

from inv_kernels.transforms.families import (
    APPEARANCE_FAMILIES,
    FAMILIES,
    SPATIAL_FAMILIES,
    TOTAL_VIEWS,
    TransformFamily,
)
from inv_kernels.transforms.grids import MODES
from inv_kernels.transforms.views import apply_transform, clean_view, get_family, iter_views

__all__ = [
    "APPEARANCE_FAMILIES",
    "FAMILIES",
    "MODES",
    "SPATIAL_FAMILIES",
    "TOTAL_VIEWS",
    "TransformFamily",
    "apply_transform",
    "clean_view",
    "get_family",
    "iter_views",
]
