"""The baseline and fallback path: MoCo v2's own PIL + torchvision.transforms pipeline (docs/METHOD.md section 2).

``torchvision_recipe_transform`` builds, for a Recipe, the torchvision.transforms.Compose that the paper's
``main_moco.py`` builds: on PIL images, in the recipe's order, with PIL's GaussianBlur(radius=sigma) for MoCo's
blur; when the recipe has no random_resized_crop, Resize(S) + CenterCrop(S) come after the other ops (as the
reference code appends them), so the appearance recipe jitters and blurs the full-resolution image. Randomness comes
from torch's global generator and Python's ``random`` (MoCo's blur), as in MoCo's code, so this path is not
replayable view by view; the fused path (TwoViewDataset) is.

    loader = DataLoader(ImageFolder(root, TwoCropsTransform(torchvision_recipe_transform("default", 224))), ...)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import torch
from PIL import Image, ImageFilter
from torchvision import transforms as T

from inv_kernels.augment.recipes import Recipe, get_recipe
from inv_kernels.ops.fused_augment_ref import IMAGENET_MEAN, IMAGENET_STD


class PILGaussianBlur:
    """MoCo v2's GaussianBlur: sigma ~ U[sigma_min, sigma_max] from Python's ``random``, PIL radius = sigma."""

    def __init__(self, sigma_min: float = 0.1, sigma_max: float = 2.0) -> None:
        self.sigma = (sigma_min, sigma_max)

    def __call__(self, img: Image.Image) -> Image.Image:
        sigma = random.uniform(*self.sigma)
        return img.filter(ImageFilter.GaussianBlur(radius=sigma))

    def __repr__(self) -> str:
        return f"PILGaussianBlur(sigma={self.sigma})"


def _op_transform(op, size: int) -> Callable:
    if op.name == "random_resized_crop":
        return T.RandomResizedCrop(size, scale=op.scale, ratio=op.ratio)
    if op.name == "horizontal_flip":
        return T.RandomHorizontalFlip(p=op.p)
    if op.name == "color_jitter":
        return T.RandomApply([T.ColorJitter(op.brightness, op.contrast, op.saturation, op.hue)], p=op.p)
    if op.name == "grayscale":
        return T.RandomGrayscale(p=op.p)
    if op.name == "gaussian_blur":
        blur = (
            PILGaussianBlur(op.sigma_min, op.sigma_max)
            if op.kernel == "from_sigma"
            else T.GaussianBlur(op.kernel, sigma=(op.sigma_min, op.sigma_max))
        )
        return T.RandomApply([blur], p=op.p)
    raise ValueError(f"no torchvision transform for op {op.name!r}")  # resize_center_crop is handled by the caller


def torchvision_recipe_transform(
    recipe: str | Recipe | list,
    out_size: int | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> T.Compose:
    """The PIL-image pipeline of a recipe, ending in ToTensor + Normalize.

    Args:
        recipe: a Recipe or anything ``get_recipe`` accepts.
        out_size: S, the output side (may be omitted when the recipe's crop op sets a size).
        mean, std: 3 per-channel normalisation values.

    Returns:
        A Compose mapping an RGB PIL image to a (3, S, S) float32 tensor.

    Raises:
        ValueError: a bad recipe, or out_size missing or disagreeing with the recipe's size.
    """
    recipe = get_recipe(recipe)
    size = recipe.out_size(out_size)
    steps = [_op_transform(op, size) for op in recipe.ops if op.name != "resize_center_crop"]
    if "random_resized_crop" not in recipe.op_names:
        steps += [T.Resize(size), T.CenterCrop(size)]
    return T.Compose([*steps, T.ToTensor(), T.Normalize(mean, std)])


class TwoCropsTransform:
    """Two independent draws of ``base_transform`` on one image (MoCo's TwoCropsTransform): [query, key]."""

    def __init__(self, base_transform: Callable) -> None:
        self.base_transform = base_transform

    def __call__(self, img: Image.Image) -> list[torch.Tensor]:
        """Returns [q, k], each (3, S, S) float32."""
        return [self.base_transform(img), self.base_transform(img)]

    def __repr__(self) -> str:
        return f"TwoCropsTransform({self.base_transform!r})"
