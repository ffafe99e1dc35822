"""Augmentation recipes: which random ops a view gets, with their settings (docs/METHOD.md section 2).

A ``Recipe`` is an ordered tuple of op specs. The three recipes of the paper are in ``RECIPES``:

    default     RandomResizedCrop(scale 0.2-1) -> ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8 -> Grayscale p 0.2
                -> GaussianBlur(sigma 0.1-2) p 0.5 -> HorizontalFlip p 0.5          (MoCo v2; "Default")
    spatial     RandomResizedCrop(scale 0.2-1) -> HorizontalFlip p 0.5              ("Ventral")
    appearance  ColorJitter p 0.8 -> Grayscale p 0.2 -> GaussianBlur p 0.5 -> Resize + CenterCrop  ("Dorsal")

``get_recipe`` also builds custom recipes from a list of dicts or a compact command-line string. Every setting is
checked when the recipe is built, so a bad recipe fails before any image is read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import ClassVar

from inv_kernels.augment.recipe_string import parse_recipe_string


def _prob(op: str, p: object) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{op}: probability p must be a number in [0, 1], got {p!r}")
    return float(p)


def _range(op: str, name: str, value: object, lo: float, hi: float) -> tuple[float, float]:
    """Checks a (min, max) pair with lo <= min <= max <= hi."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"{op}: {name} must be a pair (min, max), got {value!r}")
    a, b = (float(v) for v in value)
    if not (math.isfinite(a) and math.isfinite(b) and lo <= a <= b <= hi):
        raise ValueError(f"{op}: {name} must satisfy {lo} <= min <= max <= {hi}, got ({a}, {b})")
    return a, b


def _size(op: str, size: object) -> int | None:
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"{op}: size must be a positive int or None (the caller's out_size), got {size!r}")
    return size


@dataclass(frozen=True)
class RandomResizedCropOp:
    """torchvision RandomResizedCrop: a box of area fraction in ``scale`` and aspect (w/h) in ``ratio``."""

    name: ClassVar[str] = "random_resized_crop"
    size: int | None = None  # output side; None: the out_size given at use time (224 in the paper)
    scale: tuple[float, float] = (0.2, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _size(self.name, self.size))
        object.__setattr__(self, "scale", _range(self.name, "scale", self.scale, 1e-12, 1.0))
        object.__setattr__(self, "ratio", _range(self.name, "ratio", self.ratio, 1e-12, math.inf))


@dataclass(frozen=True)
class ResizeCenterCropOp:
    """Resize(size) of the shorter side, then CenterCrop(size): the centred square of side min(H, W)."""

    name: ClassVar[str] = "resize_center_crop"
    size: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _size(self.name, self.size))


@dataclass(frozen=True)
class HorizontalFlipOp:
    name: ClassVar[str] = "horizontal_flip"
    p: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "p", _prob(self.name, self.p))


@dataclass(frozen=True)
class ColorJitterOp:
    """RandomApply(ColorJitter(brightness, contrast, saturation, hue), p): factors 1 +- b/c/s, hue shift +- hue."""

    name: ClassVar[str] = "color_jitter"
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    p: float = 0.8

    def __post_init__(self) -> None:
        for key in ("brightness", "contrast", "saturation", "hue"):
            v = getattr(self, key)
            top = 0.5 if key == "hue" else math.inf
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= top:
                raise ValueError(f"{self.name}: {key} must be a number in [0, {top}], got {v!r}")
            object.__setattr__(self, key, float(v))
        object.__setattr__(self, "p", _prob(self.name, self.p))

    def factor_range(self, key: str) -> tuple[float, float]:
        """The uniform range of one factor, as torchvision's ColorJitter draws it."""
        v = getattr(self, key)
        return (-v, v) if key == "hue" else (max(0.0, 1.0 - v), 1.0 + v)


@dataclass(frozen=True)
class GrayscaleOp:
    name: ClassVar[str] = "grayscale"
    p: float = 0.2

    def __post_init__(self) -> None:
        object.__setattr__(self, "p", _prob(self.name, self.p))


@dataclass(frozen=True)
class GaussianBlurOp:
    """RandomApply(GaussianBlur(sigma ~ U[sigma_min, sigma_max]), p); kernel "from_sigma" or a fixed odd size."""

    name: ClassVar[str] = "gaussian_blur"
    sigma_min: float = 0.1
    sigma_max: float = 2.0
    p: float = 0.5
    kernel: str | int = "from_sigma"

    def __post_init__(self) -> None:
        lo, hi = _range(self.name, "sigma (sigma_min, sigma_max)", (self.sigma_min, self.sigma_max), 0.0, math.inf)
        if lo <= 0:
            raise ValueError(f"{self.name}: sigma_min must be > 0, got {lo}")
        object.__setattr__(self, "sigma_min", lo)
        object.__setattr__(self, "sigma_max", hi)
        object.__setattr__(self, "p", _prob(self.name, self.p))
        k = self.kernel
        if isinstance(k, str) and k.isdigit():
            k = int(k)
        if k != "from_sigma" and (isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0):
            raise ValueError(f"{self.name}: kernel must be 'from_sigma' or an odd positive int, got {self.kernel!r}")
        object.__setattr__(self, "kernel", k)


OpSpec = RandomResizedCropOp | ResizeCenterCropOp | HorizontalFlipOp | ColorJitterOp | GrayscaleOp | GaussianBlurOp
OPS: dict[str, type] = {
    cls.name: cls
    for cls in (RandomResizedCropOp, ResizeCenterCropOp, HorizontalFlipOp, ColorJitterOp, GrayscaleOp, GaussianBlurOp)
}
CROP_OPS = ("random_resized_crop", "resize_center_crop")


@dataclass(frozen=True)
class Recipe:
    """An ordered tuple of op specs; at most one of each op and at most one crop op.

    The order is the recipe's (the torchvision baseline follows it); the fused augmentation applies the ops in its
    own fixed order (crop, flip, jitter, grayscale, blur), see docs/AUGMENT.md.
    """

    name: str
    ops: tuple[OpSpec, ...]

    def __post_init__(self) -> None:
        ops = tuple(self.ops)
        for op in ops:
            if not isinstance(op, tuple(OPS.values())):
                raise ValueError(f"recipe {self.name!r}: {op!r} is not an op spec; valid ops: {', '.join(OPS)}")
        names = [op.name for op in ops]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"recipe {self.name!r}: op(s) {', '.join(dup)} given more than once")
        if all(c in names for c in CROP_OPS):
            raise ValueError(f"recipe {self.name!r}: use one of {' or '.join(CROP_OPS)}, not both")
        object.__setattr__(self, "ops", ops)

    @property
    def op_names(self) -> tuple[str, ...]:
        """The names of the ops, in the recipe's order."""
        return tuple(op.name for op in self.ops)

    def get(self, name: str) -> OpSpec | None:
        """The spec of op ``name``, or None when the recipe does not use it."""
        for op in self.ops:
            if op.name == name:
                return op
        return None

    def out_size(self, out_size: int | None = None) -> int:
        """The output side: the crop op's size, or ``out_size``; raises ValueError when neither or they disagree."""
        crop = self.get("random_resized_crop") or self.get("resize_center_crop")
        size = crop.size if crop is not None else None
        if out_size is not None and (isinstance(out_size, bool) or not isinstance(out_size, int) or out_size <= 0):
            raise ValueError(f"out_size must be a positive int, got {out_size!r}")
        if size is not None and out_size is not None and size != out_size:
            raise ValueError(f"recipe {self.name!r} crops to size {size} but out_size is {out_size}")
        if size is None and out_size is None:
            raise ValueError(f"recipe {self.name!r} sets no size: pass out_size")
        return size if size is not None else out_size

    def to_spec(self) -> list[dict]:
        """The recipe as a JSON-able list of dicts, which ``get_recipe`` reads back."""
        return [
            {"op": op.name, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(op).items()}}
            for op in self.ops
        ]


RECIPES: dict[str, Recipe] = {
    "default": Recipe(
        "default", (RandomResizedCropOp(), ColorJitterOp(), GrayscaleOp(), GaussianBlurOp(), HorizontalFlipOp())
    ),
    "spatial": Recipe("spatial", (RandomResizedCropOp(), HorizontalFlipOp())),
    "appearance": Recipe("appearance", (ColorJitterOp(), GrayscaleOp(), GaussianBlurOp(), ResizeCenterCropOp())),
}
ALIASES = {"moco_v2": "default", "ventral": "spatial", "dorsal": "appearance"}


def _op_from_dict(entry: dict) -> OpSpec:
    if not isinstance(entry, dict):
        raise ValueError(f"a custom recipe entry must be a dict with an 'op' key, got {entry!r}")
    settings = dict(entry)
    name = settings.pop("op", None)
    if name not in OPS:
        raise ValueError(f"unknown recipe op {name!r}; valid ops: {', '.join(OPS)}")
    cls = OPS[name]
    if "sigma" in settings and cls is GaussianBlurOp:
        settings["sigma_min"], settings["sigma_max"] = _range(name, "sigma", settings.pop("sigma"), 0.0, math.inf)
    valid = [f.name for f in fields(cls)]
    unknown = sorted(set(settings) - set(valid))
    if unknown:
        raise ValueError(f"{name}: unknown setting(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    for key in ("scale", "ratio"):
        if key in settings and isinstance(settings[key], list):
            settings[key] = tuple(settings[key])
    return cls(**settings)


def get_recipe(name_or_spec: str | Recipe | Sequence[dict | OpSpec]) -> Recipe:
    """A validated Recipe from a name, a Recipe, a list of dicts / op specs, or a compact string.

    Args:
        name_or_spec: "default" | "spatial" | "appearance" (aliases "moco_v2", "ventral", "dorsal"); a Recipe; a
            list like [{"op": "random_resized_crop", "scale": [0.08, 1]}, {"op": "grayscale", "p": 0.5}]; or a
            string such as "random_resized_crop:scale=0.2-1,horizontal_flip:p=0.5,grayscale:p=0.2".

    Returns:
        The Recipe (custom ones are named "custom").

    Raises:
        ValueError: an unknown recipe or op (the message lists the valid ones), a probability outside [0, 1], a bad
            range or setting, a repeated op, or two crop ops.
        TypeError: ``name_or_spec`` is of none of these types.
    """
    if isinstance(name_or_spec, Recipe):
        return Recipe(name_or_spec.name, name_or_spec.ops)  # re-validates
    if isinstance(name_or_spec, str):
        key = name_or_spec.strip().lower()
        key = ALIASES.get(key, key)
        if key in RECIPES:
            return RECIPES[key]
        if ":" not in key and "," not in key and key not in OPS:
            raise ValueError(
                f"unknown recipe {name_or_spec!r}; named recipes: {', '.join([*RECIPES, *ALIASES])}; "
                f"or give ops (valid ops: {', '.join(OPS)})"
            )
        return Recipe("custom", tuple(_op_from_dict(e) for e in parse_recipe_string(name_or_spec)))
    if isinstance(name_or_spec, Sequence):
        if len(name_or_spec) == 0:
            raise ValueError("a custom recipe needs at least one op")
        ops = tuple(e if isinstance(e, tuple(OPS.values())) else _op_from_dict(e) for e in name_or_spec)
        return Recipe("custom", ops)
    raise TypeError(f"recipe must be a name, a Recipe or a list of op dicts, got {type(name_or_spec).__name__}")
