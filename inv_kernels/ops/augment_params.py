"""The per-view augmentation parameters that the fused augmentation op takes: ``AugmentParams``, one flat tensor per
random choice of each view. Drawing them is the augmentation layer's job (``inv_kernels.augment.sample_augment_params``);
the op, its torch reference and DALI only read them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from inv_kernels._validate import check_tensor

_DTYPES = {
    "crop_top": torch.int32,
    "crop_left": torch.int32,
    "crop_height": torch.int32,
    "crop_width": torch.int32,
    "flip": torch.bool,
    "jitter_applied": torch.bool,
    "brightness": torch.float32,
    "contrast": torch.float32,
    "saturation": torch.float32,
    "hue": torch.float32,
    "jitter_order": torch.int64,
    "grayscale": torch.bool,
    "blur_applied": torch.bool,
    "blur_sigma": torch.float32,
}


@dataclass(frozen=True)
class AugmentParams:
    """The random choices of B views, one flat tensor per field (all on one device).

    Fields (B = number of views):
        crop_top, crop_left, crop_height, crop_width: (B,) int32, the crop box in source pixels.
        flip: (B,) bool, horizontal flip.
        jitter_applied: (B,) bool, whether colour jitter is applied.
        brightness, contrast, saturation: (B,) float32 factors (1 when not applied); hue: (B,) float32 shift
            in [-0.5, 0.5] (0 when not applied).
        jitter_order: (B, 4) int64, a permutation of 0..3 = brightness, contrast, saturation, hue: the order of the
            four jitter ops, as torchvision's ColorJitter.get_params draws it.
        grayscale: (B,) bool.
        blur_applied: (B,) bool; blur_sigma: (B,) float32 (0 when not applied).
    """

    crop_top: Tensor
    crop_left: Tensor
    crop_height: Tensor
    crop_width: Tensor
    flip: Tensor
    jitter_applied: Tensor
    brightness: Tensor
    contrast: Tensor
    saturation: Tensor
    hue: Tensor
    jitter_order: Tensor
    grayscale: Tensor
    blur_applied: Tensor
    blur_sigma: Tensor

    def __post_init__(self) -> None:
        b = None
        for name, dtype in _DTYPES.items():
            value = getattr(self, name)
            ndim = 2 if name == "jitter_order" else 1
            check_tensor(
                "AugmentParams", name, value, ndim=ndim, layout="(B, 4)" if ndim == 2 else "(B,)", dtypes=(dtype,)
            )
            b = value.shape[0] if b is None else b
            if value.shape[0] != b or (ndim == 2 and value.shape[1] != 4):
                raise ValueError(
                    f"AugmentParams: {name} has shape {tuple(value.shape)}, expected "
                    f"{(b, 4) if ndim == 2 else (b,)} (B = {b} from crop_top)"
                )
            if value.device != self.crop_top.device:
                raise ValueError(f"AugmentParams: {name} is on {value.device}, crop_top on {self.crop_top.device}")

    def __len__(self) -> int:
        return self.crop_top.shape[0]

    def _map(self, fn) -> AugmentParams:
        return AugmentParams(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    def to(self, device: torch.device | str) -> AugmentParams:
        """A copy on ``device``."""
        return self._map(lambda t: t.to(device))

    def __getitem__(self, index: int | slice | Tensor) -> AugmentParams:
        """The views at ``index`` (an int keeps a batch of one)."""
        if isinstance(index, int):
            n = len(self)
            if not -n <= index < n:
                raise IndexError(f"AugmentParams: index {index} out of range for {n} views")
            index = slice(index % n, index % n + 1)
        return self._map(lambda t: t[index])

    @staticmethod
    def cat(params: list[AugmentParams]) -> AugmentParams:
        """Concatenates batches of views (in order); raises ValueError for an empty list."""
        if not params:
            raise ValueError("AugmentParams.cat: need at least one AugmentParams")
        return AugmentParams(**{name: torch.cat([getattr(p, name) for p in params]) for name in _DTYPES})

    def as_dict(self) -> dict[str, list]:
        """Plain lists (JSON-able): {field: [per-view values]}."""
        return {name: getattr(self, name).tolist() for name in _DTYPES}

    @staticmethod
    def from_dict(data: dict[str, list]) -> AugmentParams:
        """Inverse of ``as_dict``; raises ValueError naming missing or unknown fields."""
        missing, unknown = sorted(set(_DTYPES) - set(data)), sorted(set(data) - set(_DTYPES))
        if missing or unknown:
            raise ValueError(f"AugmentParams.from_dict: missing fields {missing}, unknown fields {unknown}")
        return AugmentParams(**{name: torch.as_tensor(data[name], dtype=dt) for name, dt in _DTYPES.items()})

    @staticmethod
    def identity(image_sizes: Tensor) -> AugmentParams:
        """Parameters that change nothing but the framing: full-image box, no flip, jitter, grayscale or blur.

        Args:
            image_sizes: (B, 2) int tensor of (H, W).
        """
        sizes = check_image_sizes("AugmentParams.identity", image_sizes)
        b = sizes.shape[0]
        zeros, ones, false = torch.zeros(b), torch.ones(b), torch.zeros(b, dtype=torch.bool)
        return AugmentParams(
            torch.zeros(b, dtype=torch.int32),
            torch.zeros(b, dtype=torch.int32),
            sizes[:, 0].to(torch.int32),
            sizes[:, 1].to(torch.int32),
            false,
            false.clone(),
            ones,
            ones.clone(),
            ones.clone(),
            zeros,
            torch.arange(4).repeat(b, 1),
            false.clone(),
            false.clone(),
            zeros.clone(),
        )


def check_image_sizes(op: str, image_sizes: object) -> Tensor:
    """``image_sizes`` as a (B, 2) int64 CPU tensor of (H, W); raises TypeError / ValueError naming ``op``."""
    sizes = check_tensor(
        op,
        "image_sizes",
        image_sizes,
        ndim=2,
        layout="(B, 2) of (H, W)",
        dtypes=(torch.int32, torch.int64, torch.int16, torch.uint8),
    )
    if sizes.shape[1] != 2 or sizes.shape[0] == 0:
        raise ValueError(f"{op}: image_sizes must be (B, 2) with B >= 1, got {tuple(sizes.shape)}")
    if bool((sizes <= 0).any()):
        raise ValueError(f"{op}: image sizes must be positive, got {sizes.tolist()}")
    return sizes.to("cpu", torch.int64)
