"""Clean views of image files: the paper's evaluation preprocessing (Resize + CenterCrop, ``transforms.clean_view``,
the one the synthetic views use) as a torch Dataset, for measurement, the kNN monitor and the probes' features.

Images are read by the rule every loader follows (``data.folders.load_image``): an unusable one is an item None, which
``collate_skipping`` leaves out, and the callers name it (``data.folders.skipped_among``)."""

import torch
from torch import Tensor
from torch.utils.data import Dataset

from inv_kernels.data.folders import UnusableImageError, load_image
from inv_kernels.transforms import clean_view


class CleanViewDataset(Dataset):
    """Item i: (clean view (3, out_size, out_size) float32 in [0, 1], label, position i), or None when the image is
    unusable (``load_image``). ``paths`` and ``labels`` are parallel sequences."""

    def __init__(self, paths, labels, *, out_size: int, resize_size: int):
        self.paths, self.labels = list(paths), list(labels)
        self.out_size, self.resize_size = out_size, resize_size

    def __len__(self) -> int:
        return len(self.paths)

    def source(self, i: int, image: Tensor) -> Tensor:
        """The part of decoded image i (3, H, W) that is viewed (all of it here); raises UnusableImageError to skip
        the item."""
        return image

    def __getitem__(self, i: int):
        try:
            image = self.source(i, load_image(self.paths[i]))  # (3, H, W) uint8
        except UnusableImageError:
            return None
        view = clean_view([image], out_size=self.out_size, resize_size=self.resize_size)[0]
        return view, self.labels[i], i


def collate_skipping(batch):
    """Stacks the usable items: (views (B, 3, S, S), labels (B,), positions (B,)), or None when there is none."""
    good = [b for b in batch if b is not None]
    if not good:
        return None
    return (torch.stack([b[0] for b in good]), torch.tensor([b[1] for b in good]), torch.tensor([b[2] for b in good]))
