"""The pretraining order (``inv_kernels.data.sampler``): each epoch's order depends only on (seed, epoch), every
process takes an equal share, and an epoch can start at any batch."""

import pytest

from inv_kernels.data.sampler import ResumableBatchSampler, epoch_shares


def test_the_sampler_batches_the_epoch_shares():
    shares = epoch_shares(23, 2, seed=5, epoch=3)
    assert [len(s) for s in shares] == [11, 11] and not set(shares[0]) & set(shares[1])
    for rank in range(2):
        sampler = ResumableBatchSampler(23, 4, seed=5, rank=rank, world_size=2)
        sampler.set_epoch(3)
        assert list(sampler) == [shares[rank][0:4], shares[rank][4:8]]  # the incomplete batch is dropped
        sampler.set_epoch(3, start_batch=1)
        assert len(sampler) == 1 and list(sampler) == [shares[rank][4:8]]


def test_the_order_depends_on_the_seed_and_epoch_only():
    assert epoch_shares(10, 1, seed=0, epoch=0) == epoch_shares(10, 1, seed=0, epoch=0)
    assert epoch_shares(10, 1, seed=0, epoch=1) != epoch_shares(10, 1, seed=0, epoch=0)
    assert epoch_shares(10, 1, seed=1, epoch=0) != epoch_shares(10, 1, seed=0, epoch=0)
    assert sorted(epoch_shares(10, 1, seed=0, epoch=0)[0]) == list(range(10))


def test_a_batch_larger_than_the_data_is_refused():
    with pytest.raises(ValueError, match=r"batch size 6 x 2 process\(es\) is larger than the dataset \(11 images\)"):
        ResumableBatchSampler(11, 6, seed=0, world_size=2)
