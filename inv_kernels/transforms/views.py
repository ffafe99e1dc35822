"""Public entry points: the clean view, all views of a family (``apply_transform``) and a streaming form
(``iter_views``) for feeding a model chunk by chunk. Validation lives here; the families assume checked input.

Images are a uint8 or floating (n, 3, H, W) batch, or a list of (3, H_i, W_i) tensors of different sizes (raw
photographs are full resolution in the paper). uint8 is read as x / 255; floating images must lie in [0, 1]. All work
runs on the images' device in float32; outputs are float32 in [0, 1], not normalised (ImageNet normalisation is the
model's business).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from inv_kernels._validate import FLOAT_DTYPES, check_finite, check_positive
from inv_kernels.transforms.families import FAMILIES, TransformFamily
from inv_kernels.transforms.grids import check_mode
from inv_kernels.transforms.resample import clean

IMAGE_DTYPES: tuple[torch.dtype, ...] = (torch.uint8, *FLOAT_DTYPES)
# Views per internal batch are capped so that one batch of raw-resolution views holds at most this many elements
# (256 MiB of float32): a 500 x 375 ImageNet photo allows 119 views, a 4000 x 3000 one a single view.
MAX_RAW_ELEMENTS = 1 << 26

ImagesLike = Tensor | Sequence[Tensor]


def get_family(name: str, op: str = "get_family") -> TransformFamily:
    """The registered family called ``name``.

    Raises:
        TypeError: name is not a string.
        ValueError: no such family (the message lists the valid names).
    """
    if not isinstance(name, str):
        raise TypeError(f"{op}: name must be a str, got {type(name).__name__}")
    if name not in FAMILIES:
        raise ValueError(f"{op}: unknown transform family {name!r}; expected one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def _check_int(op: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{op}: {name} must be an int, got {type(value).__name__}")
    check_positive(op, name, value)
    return value


def _check_sizes(op: str, out_size: object, resize_size: object) -> tuple[int, int]:
    out, rs = _check_int(op, "out_size", out_size), _check_int(op, "resize_size", resize_size)
    if out > rs:
        raise ValueError(f"{op}: out_size must be <= resize_size ({rs}), got {out}")
    return out, rs


def _check_image(op: str, name: str, image: object, ndim: int) -> Tensor:
    if not isinstance(image, Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(image).__name__}")
    if image.dtype not in IMAGE_DTYPES:
        names = ", ".join(str(d).removeprefix("torch.") for d in IMAGE_DTYPES)
        raise TypeError(f"{op}: {name} must have a dtype in ({names}), got {image.dtype}")
    layout = "(n, 3, H, W)" if ndim == 4 else "(3, H, W)"
    if image.dim() != ndim:
        raise ValueError(
            f"{op}: {name} must be {ndim}-D {layout}, got a {image.dim()}-D tensor of shape {tuple(image.shape)}"
        )
    if image.shape[-3] != 3:
        raise ValueError(f"{op}: {name} must have 3 (RGB) channels in dim {ndim - 3}, got shape {tuple(image.shape)}")
    if ndim == 4 and image.shape[0] == 0:
        raise ValueError(f"{op}: {name} must not be empty, got shape {tuple(image.shape)}")
    if image.shape[-2] < 2 or image.shape[-1] < 2:
        raise ValueError(f"{op}: {name} must be at least 2 x 2 pixels, got shape {tuple(image.shape)}")
    if image.is_floating_point():
        check_finite(op, name, image)
        lo, hi = float(image.min()), float(image.max())
        if lo < 0 or hi > 1:
            raise ValueError(f"{op}: {name} must hold values in [0, 1] (floating images), got [{lo:g}, {hi:g}]")
    return image


def check_images(op: str, images: object) -> list[Tensor]:
    """Validates a batch or a list of images; returns them as a list of (3, H_i, W_i) tensors (not yet converted).

    Raises:
        TypeError: not a tensor or a list/tuple of tensors; a dtype other than uint8 or floating.
        ValueError: an empty batch, a wrong rank, not 3 channels, smaller than 2 x 2, values outside [0, 1] or not
            finite (floating), images on different devices.
    """
    if isinstance(images, Tensor):
        return list(_check_image(op, "images", images, 4).unbind(0))
    if not isinstance(images, (list, tuple)):
        raise TypeError(f"{op}: images must be a torch.Tensor or a list of tensors, got {type(images).__name__}")
    if len(images) == 0:
        raise ValueError(f"{op}: images must not be empty, got an empty {type(images).__name__}")
    out = [_check_image(op, f"images[{i}]", image, 3) for i, image in enumerate(images)]
    for i, image in enumerate(out[1:], 1):
        if image.device != out[0].device:
            raise ValueError(
                f"{op}: images[{i}] must be on the device of images[0] ({out[0].device}), got {image.device}"
            )
    return out


def check_indices(op: str, indices: object, k: int, name: str) -> Tensor:
    """Grid rows to produce: None (all k) or a non-empty sequence / 1-D integer tensor of values in [0, k).

    Returns:
        (p,) int64 CPU tensor.
    """
    if indices is None:
        return torch.arange(k)
    if isinstance(indices, Tensor):
        if indices.dtype.is_floating_point or indices.dtype.is_complex or indices.dtype == torch.bool:
            raise TypeError(f"{op}: indices must be an integer tensor, got {indices.dtype}")
        if indices.dim() != 1:
            raise ValueError(f"{op}: indices must be 1-D, got shape {tuple(indices.shape)}")
        idx = indices.to("cpu", torch.int64)
    else:
        if isinstance(indices, (str, bytes)) or not isinstance(indices, Sequence):
            raise TypeError(
                f"{op}: indices must be None, a sequence of ints or a 1-D tensor, got {type(indices).__name__}"
            )
        if any(isinstance(i, bool) or not isinstance(i, int) for i in indices):
            raise TypeError(f"{op}: indices must hold ints, got {[type(i).__name__ for i in indices][:5]}")
        idx = torch.tensor(list(indices), dtype=torch.int64)
    if idx.numel() == 0:
        raise ValueError(f"{op}: indices must not be empty")
    bad = (idx < 0) | (idx >= k)
    if bool(bad.any()):
        raise ValueError(f"{op}: indices must lie in [0, {k}) for {name!r} (k={k}), got {idx[bad].tolist()[:5]}")
    return idx


def _as_float(image: Tensor) -> Tensor:
    if image.dtype == torch.uint8:
        return image.to(torch.float32) / 255
    return image.to(torch.float32)


def clean_view(images: ImagesLike, *, out_size: int = 224, resize_size: int = 256) -> Tensor:
    """The evaluation preprocessing alone: Resize(resize_size) (shorter side, antialiased bilinear as PIL) and
    CenterCrop(out_size).

    Args:
        images: (n, 3, H, W) uint8 or float in [0, 1], or a list of n (3, H_i, W_i) tensors on one device.
        out_size: the crop side (<= resize_size).
        resize_size: the shorter side after resizing.

    Returns:
        (n, 3, out_size, out_size) float32 in [0, 1] on the images' device.

    Raises:
        TypeError, ValueError: see ``check_images``; sizes not positive ints or out_size > resize_size.
    """
    op = "clean_view"
    out, rs = _check_sizes(op, out_size, resize_size)
    return torch.stack([clean(_as_float(image), out, rs) for image in check_images(op, images)])


def iter_views(
    name: str,
    images: ImagesLike,
    *,
    mode: str = "paper",
    indices: Sequence[int] | Tensor | None = None,
    chunk: int = 64,
    out_size: int = 224,
    resize_size: int = 256,
) -> Iterator[tuple[int, Tensor, Tensor]]:
    """Streams the transformed views image by image, at most ``chunk`` views at a time (fewer for very large images,
    see ``MAX_RAW_ELEMENTS``). Arguments are checked before the first view is made.

    Args:
        name: the family (``FAMILIES``).
        images: (n, 3, H, W) uint8 or float in [0, 1], or a list of (3, H_i, W_i) tensors on one device.
        mode: ``"paper"`` (the reference code's behaviour) or ``"corrected"``.
        indices: grid rows to produce (None: all k), in the order given.
        chunk: the largest number of views per yield.
        out_size, resize_size: CenterCrop and Resize sizes.

    Yields:
        (image_index, rows, views): rows (p,) int64 grid indices (CPU); views (p, 3, out, out) float32 in [0, 1].

    Raises:
        TypeError, ValueError: a bad name (the message lists the valid ones), mode, indices, chunk, sizes or images.
    """
    prepared = _prepare("iter_views", name, images, mode, indices, chunk, out_size, resize_size)
    return ((i, rows, views) for i, _, rows, views in _generate(*prepared))


def _prepare(op, name, images, mode, indices, chunk, out_size, resize_size):
    family = get_family(name, op)
    mode = check_mode(op, mode)
    out, rs = _check_sizes(op, out_size, resize_size)
    chunk = _check_int(op, "chunk", chunk)
    idx = check_indices(op, indices, family.k, name)
    image_list = check_images(op, images)
    grid = family.grid(mode, out_size=out, resize_size=rs)
    return family, grid, image_list, idx, mode, chunk, out, rs


def _generate(family, grid, image_list, idx, mode, chunk, out, rs) -> Iterator[tuple[int, int, Tensor, Tensor]]:
    """Yields (image_index, start, rows, views): rows = idx[start : start + p]."""
    for i, raw in enumerate(image_list):
        image = _as_float(raw)  # (3, H, W)
        step = max(1, min(chunk, MAX_RAW_ELEMENTS // image.numel()))
        for start in range(0, idx.numel(), step):
            rows = idx[start : start + step]
            params = {key: value[rows] for key, value in grid.items()}
            with torch.no_grad():  # closed before the yield: the caller's grad mode is left alone
                views = family.apply(image, params, mode=mode, out_size=out, resize_size=rs)
            yield i, start, rows, views


def apply_transform(
    name: str,
    images: ImagesLike,
    *,
    mode: str = "paper",
    indices: Sequence[int] | Tensor | None = None,
    out_size: int = 224,
    resize_size: int = 256,
    chunk: int = 64,
) -> Tensor:
    """All views of a family for every image: the transform (on the raw image in paper mode), then Resize +
    CenterCrop (resized_crop outputs out_size directly).

    Args:
        name: the family (``FAMILIES``).
        images: (n, 3, H, W) uint8 or float in [0, 1], or a list of n (3, H_i, W_i) tensors on one device.
        mode: ``"paper"`` or ``"corrected"``.
        indices: grid rows to produce (None: all k).
        out_size, resize_size: CenterCrop and Resize sizes (the grids depend on them as in the reference).
        chunk: views per internal batch (memory).

    Returns:
        (n, p, 3, out_size, out_size) float32 in [0, 1] on the images' device, p = len(indices) or k.

    Raises:
        TypeError, ValueError: as ``iter_views``.
    """
    prepared = _prepare("apply_transform", name, images, mode, indices, chunk, out_size, resize_size)
    image_list, idx, out = prepared[2], prepared[3], prepared[6]
    result = torch.empty(len(image_list), idx.numel(), 3, out, out, device=image_list[0].device)
    for i, start, rows, views in _generate(*prepared):
        result[i, start : start + rows.numel()] = views
    return result
