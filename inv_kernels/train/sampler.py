"""A batch sampler whose order depends only on (seed, epoch, rank), and that can start mid-epoch: exact resume."""

import torch
from torch.utils.data import Sampler


class ResumableBatchSampler(Sampler[list[int]]):
    """Shuffled batches of dataset indices for one process of ``world_size``.

    Every epoch draws a permutation from a generator seeded by (seed, epoch); process ``rank`` takes every
    ``world_size``-th index of it (equal shares), and incomplete batches are dropped. ``start_batch`` skips the
    batches already trained on in the epoch being resumed.
    """

    def __init__(self, num_items: int, batch_size: int, *, seed: int, rank: int = 0, world_size: int = 1):
        if batch_size * world_size > num_items:
            raise ValueError(
                f"batch size {batch_size} x {world_size} process(es) is larger than the dataset ({num_items} images)"
            )
        self.num_items, self.batch_size = num_items, batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def batches_per_epoch(self) -> int:
        return (self.num_items // self.world_size) // self.batch_size

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.start_batch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.num_items, generator=generator)
        share = self.num_items // self.world_size
        mine = order[self.rank :: self.world_size][:share].tolist()
        for b in range(self.start_batch, self.batches_per_epoch()):
            yield mine[b * self.batch_size : (b + 1) * self.batch_size]
