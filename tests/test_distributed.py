"""``inv_kernels.distributed``: process-group setup, work split into blocks, and the collectives, checked in one
process (the multi-process runs are in tests/measure/test_measure_distributed.py and tests/ops/test_infonce.py)."""

import pytest
import torch

from inv_kernels.distributed import (
    DistContext,
    all_gather_objects,
    broadcast_object,
    gather_objects,
    gather_positions,
    gather_rows,
    gather_with_grad,
    is_distributed,
    leave_process_group,
    resolve_device,
    shard,
)

ONE = DistContext(0, 1, 0, torch.device("cpu"))


@pytest.mark.parametrize("count", [0, 1, 5, 7, 64])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_shards_cover_the_items_in_order(count, world):
    blocks = [shard(DistContext(rank, world, rank, torch.device("cpu")), count) for rank in range(world)]
    assert [i for block in blocks for i in block] == list(range(count))
    assert max(map(len, blocks)) - min(map(len, blocks)) <= 1


def test_shards_are_whole_units():
    blocks = [shard(DistContext(rank, 2, rank, torch.device("cpu")), 10, unit=4) for rank in range(2)]
    assert blocks == [range(0, 4), range(4, 10)]  # 3 pieces: one, then two (the last one short)
    with pytest.raises(ValueError, match="unit must be >= 1, got 0"):
        shard(ONE, 10, unit=0)


def test_one_process_collectives_return_their_input():
    rows = torch.arange(6.0).view(3, 2)
    assert not is_distributed() and ONE.is_main
    assert gather_objects(ONE, "a") == ["a"] and all_gather_objects(ONE, "a") == ["a"]
    assert broadcast_object(ONE, {"k": 1}) == {"k": 1}
    assert torch.equal(gather_rows(ONE, rows), rows)
    assert torch.equal(gather_positions(ONE, torch.tensor([0, 2]), 5), torch.tensor([5, 7]))
    x = torch.randn(3, 4, requires_grad=True)
    assert gather_with_grad(x) is x
    leave_process_group()  # no process group: nothing to leave


def test_resolve_device_names_a_bad_preference():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="unsupported device 'meta'"):
        resolve_device("meta")
