"""Two-view pretraining data from an ImageFolder layout, with per-item seeded, replayable augmentation.

``TwoViewDataset`` item i at epoch e draws its two views' parameters from a generator seeded by (seed, e, i) alone,
so the views do not depend on the number of workers, the batch order or where training resumed. Images are read by
the rule every loader follows (``data.folders.load_image``): an unusable one comes back as a skip marker, which
``collate_two_views`` drops and counts in the batch (``batch["skipped"]``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from inv_kernels.augment.params import AugmentParams, sample_augment_params
from inv_kernels.augment.recipes import Recipe, get_recipe
from inv_kernels.data.folders import ImageFolderIndex, UnusableImageError, load_image
from inv_kernels.ops.fused_augment_ref import IMAGENET_MEAN, IMAGENET_STD, OUT_DTYPES, fused_augment_ref


def item_seed(seed: int, epoch: int, index: int) -> int:
    """The 63-bit seed of item ``index`` at ``epoch`` (numpy SeedSequence: well mixed, stable across runs)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)[0]) >> 1


class TwoViewDataset(Dataset):
    """Two augmented views per image of an ImageFolder, replayable from (seed, epoch, index).

    Args:
        root_or_index: an ImageFolder root or an ImageFolderIndex.
        recipe: a Recipe or anything ``get_recipe`` accepts ("default", "spatial", "appearance", custom).
        out_size: S, the side of the views (may be omitted when the recipe's crop op sets it).
        seed: the run's seed (non-negative int).
        mean, std, out_dtype: as ``fused_augment_ref``.

    Item i (``dataset[i]``) is a dict: "views" (2, 3, S, S) out_dtype, "params" AugmentParams of 2 views,
    "label" int, "index" int; or, for an image that ``load_image`` refuses, a skip marker
    {"skipped": True, "index", "path", "error" (the reason), "out_size"}, counted in ``self.skipped`` (this process
    only).

    The epoch lives in shared memory, so ``set_epoch`` reaches DataLoader workers, persistent ones included,
    as long as it is called before iterating that epoch. An item costs about 2 ms on one CPU thread for 32 px images
    (decode, sampling, two views); DataLoader workers run one torch thread each, but in the main process
    (num_workers=0) torch's intra-op threads make such small ops far slower: use torch.set_num_threads(1) there.
    """

    def __init__(
        self,
        root_or_index: str | Path | ImageFolderIndex,
        recipe: str | Recipe | list,
        out_size: int | None = None,
        seed: int = 0,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        out_dtype: torch.dtype = torch.float32,
    ) -> None:
        self.index = root_or_index if isinstance(root_or_index, ImageFolderIndex) else ImageFolderIndex(root_or_index)
        self.recipe = get_recipe(recipe)
        self.out_size = self.recipe.out_size(out_size)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"TwoViewDataset: seed must be a non-negative int, got {seed!r}")
        if out_dtype not in OUT_DTYPES or len(mean) != 3 or len(std) != 3 or any(v <= 0 for v in std):
            raise ValueError(
                f"TwoViewDataset: need out_dtype in {OUT_DTYPES} and 3 mean / 3 positive std values, "
                f"got {out_dtype}, mean={mean}, std={std}"
            )
        blur = self.recipe.get("gaussian_blur")
        self.blur_kernel = blur.kernel if blur is not None else "from_sigma"
        self.seed, self.mean, self.std, self.out_dtype = seed, tuple(mean), tuple(std), out_dtype
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self.skipped = 0

    @property
    def classes(self) -> tuple[str, ...]:
        return self.index.classes

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch whose views the next items get."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"TwoViewDataset.set_epoch: epoch must be a non-negative int, got {epoch!r}")
        self._epoch[0] = epoch

    def __len__(self) -> int:
        return len(self.index)

    def sample_params(self, index: int, image_size: tuple[int, int], epoch: int | None = None) -> AugmentParams:
        """The two views' parameters of item ``index`` at ``epoch`` (default: the current one)."""
        gen = torch.Generator().manual_seed(item_seed(self.seed, self.epoch if epoch is None else epoch, index))
        return sample_augment_params(self.recipe, torch.tensor([image_size, image_size]), gen)

    def __getitem__(self, index: int) -> dict:
        n = len(self)
        index = int(index)
        if not -n <= index < n:
            raise IndexError(f"TwoViewDataset: index {index} out of range for {n} images")
        index %= n
        path = self.index.paths[index]
        try:
            img = load_image(path)  # (3, H, W) uint8
        except UnusableImageError as error:
            self.skipped += 1
            return {"skipped": True, "index": index, "path": path, "error": error.reason, "out_size": self.out_size}
        params = self.sample_params(index, tuple(img.shape[1:]))
        views = fused_augment_ref(
            [img, img], params, self.out_size, self.mean, self.std, self.out_dtype, self.blur_kernel
        )  # (2, 3, S, S)
        return {"views": views, "params": params, "label": self.index.labels[index], "index": index}


def collate_two_views(batch: list[dict]) -> dict:
    """Collates TwoViewDataset items, dropping skip markers.

    Args:
        batch: items of TwoViewDataset (views (2, 3, S, S) each) and skip markers.

    Returns:
        {"views": (N, 2, 3, S, S), "params": AugmentParams of 2N views in the order (item 0 view 0, item 0 view 1,
        item 1 view 0, ...), i.e. params[2 n + v] belongs to views[n, v], "labels": (N,) int64, "indices": (N,)
        int64, "skipped": int, "skipped_paths": list[str]}; N may be 0 when every item was skipped (then
        "params" is None).

    Raises:
        ValueError: an empty batch.
    """
    if not batch:
        raise ValueError("collate_two_views: empty batch")
    good = [b for b in batch if not b.get("skipped", False)]
    bad = [b for b in batch if b.get("skipped", False)]
    if good:
        views = torch.stack([b["views"] for b in good])  # (N, 2, 3, S, S)
        params = AugmentParams.cat([b["params"] for b in good])
    else:
        s = bad[0]["out_size"]
        views, params = torch.empty(0, 2, 3, s, s), None
    return {
        "views": views,
        "params": params,
        "labels": torch.tensor([b["label"] for b in good], dtype=torch.int64),
        "indices": torch.tensor([b["index"] for b in good], dtype=torch.int64),
        "skipped": len(bad),
        "skipped_paths": [b["path"] for b in bad],
    }
