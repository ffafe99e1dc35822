"""The pretraining loaders behind one factory: ``two_view_loader(kind, ...)`` gives the torchvision loader
(``TwoViewDataset`` in DataLoader workers) or the DALI one (``data.dali.two_view``), which yield the same batch format
(``augment.two_view.collate_two_views``) of the same files in the same order (``data.sampler.epoch_shares``), and
start an epoch at any step (``set_epoch(epoch, start_step)``), so resume is exact with either."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader

from inv_kernels.augment.recipes import Recipe
from inv_kernels.augment.two_view import TwoViewDataset, collate_two_views
from inv_kernels.data.folders import ImageFolderIndex
from inv_kernels.data.sampler import ResumableBatchSampler

TWO_VIEW_LOADERS = ("torchvision", "dali")


class TorchvisionTwoViewLoader:
    """``TwoViewDataset`` batches of process ``rank``'s share (``ResumableBatchSampler``), made in ``workers``
    DataLoader processes (0: in this process). Unusable images are skipped as they are met and counted in each
    batch's "skipped"; none is left out up front (``skipped`` is 0)."""

    kind = "torchvision"
    skipped = 0

    def __init__(
        self,
        index: ImageFolderIndex,
        recipe: str | Recipe | list,
        *,
        out_size: int,
        batch_size: int,
        seed: int,
        rank: int,
        world_size: int,
        workers: int,
        pin_memory: bool,
    ) -> None:
        self.dataset = TwoViewDataset(index, recipe, out_size=out_size, seed=seed)
        self.sampler = ResumableBatchSampler(len(self.dataset), batch_size, seed=seed, rank=rank, world_size=world_size)
        self.workers, self.pin_memory = workers, pin_memory

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Selects the epoch that the next iteration reads, starting at batch ``start_step`` of it."""
        self.dataset.set_epoch(epoch)
        self.sampler.set_epoch(epoch, start_step)

    def batches_per_epoch(self) -> int:
        return self.sampler.batches_per_epoch()

    def __len__(self) -> int:
        """Batches left in the selected epoch (from ``start_step``)."""
        return len(self.sampler)

    def __iter__(self) -> Iterator[dict]:
        return iter(
            DataLoader(
                self.dataset,
                batch_sampler=self.sampler,
                num_workers=self.workers,
                collate_fn=collate_two_views,
                generator=torch.Generator(),
                pin_memory=self.pin_memory,
            )
        )


def two_view_loader(
    kind: str,
    index: ImageFolderIndex,
    recipe: str | Recipe | list,
    *,
    out_size: int,
    batch_size: int,
    seed: int,
    rank: int,
    world_size: int,
    workers: int,
    device: torch.device,
):
    """The pretraining loader of ``kind`` over an image folder.

    Args:
        kind: "torchvision" or "dali".
        index: the training folder. recipe: a Recipe or anything ``get_recipe`` accepts. out_size: S.
        batch_size: images per batch on this process. seed: the run's seed. rank, world_size: this process and the
            number of processes.
        workers: DataLoader processes (torchvision) or decoding threads (DALI, at least 1).
        device: where the batches go; the DALI loader decodes and augments on that GPU, or on the CPU.

    Returns:
        A loader with ``kind``, ``skipped`` (files left out up front), ``set_epoch(epoch, start_step)``,
        ``batches_per_epoch()``, ``len()`` and iteration over ``collate_two_views`` batches of views (B, 2, 3, S, S).

    Raises:
        ValueError: an unknown kind, a bad recipe or size, a batch larger than the folder's share.
        ImportError: "dali" without NVIDIA DALI.
    """
    if kind not in TWO_VIEW_LOADERS:
        raise ValueError(f"unknown loader {kind!r}; expected one of {', '.join(TWO_VIEW_LOADERS)}")
    if kind == "dali":
        from inv_kernels.data.dali.two_view import DaliTwoViewLoader

        return DaliTwoViewLoader(
            index,
            recipe,
            out_size=out_size,
            batch_size=batch_size,
            seed=seed,
            rank=rank,
            world_size=world_size,
            num_threads=max(workers, 1),
            device_id=device.index if device.type == "cuda" else None,
        )
    return TorchvisionTwoViewLoader(
        index,
        recipe,
        out_size=out_size,
        batch_size=batch_size,
        seed=seed,
        rank=rank,
        world_size=world_size,
        workers=workers,
        pin_memory=device.type == "cuda",
    )
