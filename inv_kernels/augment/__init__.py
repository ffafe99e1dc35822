"""Augmentation for MoCo v2 pretraining with chosen augmentation sets (docs/METHOD.md section 2; docs/AUGMENT.md).

Randomness apart from arithmetic: ``sample_augment_params`` draws each view's choices (crop box, flip, jitter factors
and order, grayscale, blur sigma) into flat per-view tensors (``AugmentParams``); ``fused_augment_ref`` applies them
deterministically (the torch reference that faster backends must match). ``TwoViewDataset`` + ``collate_two_views``
feed a pretraining loop; ``torchvision_recipe_transform`` + ``TwoCropsTransform`` are MoCo's PIL baseline.
"""

from inv_kernels.augment.params import JITTER_OPS, AugmentParams, centre_square_box, sample_augment_params
from inv_kernels.augment.recipes import (
    OPS,
    RECIPES,
    ColorJitterOp,
    GaussianBlurOp,
    GrayscaleOp,
    HorizontalFlipOp,
    RandomResizedCropOp,
    Recipe,
    ResizeCenterCropOp,
    get_recipe,
    parse_recipe_string,
)
from inv_kernels.augment.torchvision_baseline import PILGaussianBlur, TwoCropsTransform, torchvision_recipe_transform
from inv_kernels.augment.two_view import TwoViewDataset, collate_two_views, item_seed
from inv_kernels.ops.fused_augment_ref import IMAGENET_MEAN, IMAGENET_STD, blur_kernel_size, fused_augment_ref

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "JITTER_OPS",
    "OPS",
    "RECIPES",
    "AugmentParams",
    "ColorJitterOp",
    "GaussianBlurOp",
    "GrayscaleOp",
    "HorizontalFlipOp",
    "PILGaussianBlur",
    "RandomResizedCropOp",
    "Recipe",
    "ResizeCenterCropOp",
    "TwoCropsTransform",
    "TwoViewDataset",
    "blur_kernel_size",
    "centre_square_box",
    "collate_two_views",
    "fused_augment_ref",
    "get_recipe",
    "item_seed",
    "parse_recipe_string",
    "sample_augment_params",
    "torchvision_recipe_transform",
]
