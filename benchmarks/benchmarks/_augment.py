"""Shared pieces of the fused_augment benchmarks (the asv suite and benchmarks/gpu_report.py): which backends can run,
the inputs (two views of each of B uint8 source images) and the baseline (torchvision.transforms.v2 composed per image
on tensors, the same recipe). The bytes and FLOPs of a case are in _workloads."""

from __future__ import annotations

import importlib.util

import torch
from torchvision.transforms import v2

from inv_kernels import _ext
from inv_kernels.augment import IMAGENET_MEAN, IMAGENET_STD, get_recipe, sample_augment_params
from inv_kernels.ops.fused_augment_ref import blur_kernel_size

from ._common import require_backend

BASELINE = "torchvision"


def require_fused_backend(backend: str, device: str) -> torch.device:
    """The device to run fused_augment's ``backend`` (or the torchvision baseline) on; NotImplementedError (asv: skip)
    when its launcher is missing (the compiled and Triton kernels may be absent from a build)."""
    if backend == BASELINE:
        return require_backend("reference", device)
    dev = require_backend(backend, device)
    if backend == "cpu" and not hasattr(_ext.C.cpu, "fused_augment"):
        raise NotImplementedError("inv_kernels._C was built without the cpu fused_augment kernel")
    if backend == "cuda" and not hasattr(_ext.C.cuda, "fused_augment"):
        raise NotImplementedError("inv_kernels._C was built without the cuda fused_augment kernel")
    if backend == "triton" and importlib.util.find_spec("inv_kernels.ops._fused_augment_triton") is None:
        raise NotImplementedError("inv_kernels.ops._fused_augment_triton is missing")
    return dev


def two_view_inputs(batch: int, side: int, recipe: str, device: torch.device, seed: int = 0):
    """``batch`` random (3, side, side) uint8 sources and the sampled parameters of two views of each.

    Returns:
        images (B, 3, side, side) uint8 on ``device``, params (AugmentParams of 2B views, CPU) and source_index (2B,).
    """
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, 3, side, side), generator=gen, dtype=torch.uint8).to(device)
    source_index = torch.arange(batch).repeat(2)  # (2B,) views 0..B-1 then B..2B-1
    sizes = torch.tensor([[side, side]] * (2 * batch))  # (2B, 2)
    return images, sample_augment_params(recipe, sizes, gen), source_index


def torchvision_transform(recipe: str, out_size: int, out_dtype: torch.dtype) -> v2.Compose:
    """The recipe as torchvision.transforms.v2 on a (3, H, W) uint8 tensor, one random draw per call: the per-image
    tensor path a torchvision user would write. As in the fused path, a recipe without random_resized_crop resizes and
    centre-crops first, so every op acts on the S x S view. A "from_sigma" blur takes the largest kernel the fused path
    uses (``blur_kernel_size(sigma_max)``), since v2.GaussianBlur needs a fixed size."""
    recipe = get_recipe(recipe)
    steps = [] if "random_resized_crop" in recipe.op_names else [v2.Resize(out_size), v2.CenterCrop(out_size)]
    for op in recipe.ops:
        if op.name == "random_resized_crop":
            steps.append(v2.RandomResizedCrop(out_size, scale=op.scale, ratio=op.ratio, antialias=True))
        elif op.name == "resize_center_crop":
            continue  # placed first, above
        elif op.name == "horizontal_flip":
            steps.append(v2.RandomHorizontalFlip(op.p))
        elif op.name == "color_jitter":
            steps.append(v2.RandomApply([v2.ColorJitter(op.brightness, op.contrast, op.saturation, op.hue)], p=op.p))
        elif op.name == "grayscale":
            steps.append(v2.RandomGrayscale(op.p))
        elif op.name == "gaussian_blur":
            size = blur_kernel_size(op.sigma_max, op.kernel, out_size)
            steps.append(v2.RandomApply([v2.GaussianBlur(size, sigma=(op.sigma_min, op.sigma_max))], p=op.p))
        else:
            raise ValueError(f"no torchvision.transforms.v2 equivalent for op {op.name!r}")
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD), v2.ToDtype(out_dtype)]
    return v2.Compose(steps)


def run_torchvision(transform: v2.Compose, images: torch.Tensor, source_index: torch.Tensor) -> torch.Tensor:
    """One call of ``transform`` per view: (V, 3, S, S)."""
    return torch.stack([transform(images[int(i)]) for i in source_index])
