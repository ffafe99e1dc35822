"""The pretraining order: each epoch's order depends only on (seed, epoch), every process of a run takes an equal
share of it, and an epoch can start at any batch, so a resumed run reads exactly the batches it had not trained on.

``epoch_shares`` is that order; ``ResumableBatchSampler`` batches it for the torchvision loader, and the DALI loader
(``data.dali.two_view``) feeds its reader from it, so both loaders train on the same batches of files."""

import torch
from torch.utils.data import Sampler

SEED_STRIDE = 1_000_003  # (seed, epoch) -> one generator seed: seed * SEED_STRIDE + epoch


def epoch_shares(num_items: int, world_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Each process's share of epoch ``epoch``: a permutation of ``range(num_items)`` drawn from a generator seeded by
    (seed, epoch), of which process r takes every ``world_size``-th item starting at r.

    Returns:
        world_size lists of num_items // world_size item indices (the share of process r at r).
    """
    generator = torch.Generator().manual_seed(seed * SEED_STRIDE + epoch)
    order = torch.randperm(num_items, generator=generator)
    share = num_items // world_size
    return [order[rank::world_size][:share].tolist() for rank in range(world_size)]


class ResumableBatchSampler(Sampler[list[int]]):
    """Shuffled batches of dataset indices for one process of ``world_size``: process ``rank``'s ``epoch_shares``,
    cut into batches; incomplete batches are dropped. ``start_batch`` skips the batches already trained on in the
    epoch being resumed.
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
        mine = epoch_shares(self.num_items, self.world_size, self.seed, self.epoch)[self.rank]
        for b in range(self.start_batch, self.batches_per_epoch()):
            yield mine[b * self.batch_size : (b + 1) * self.batch_size]
