"""Splitting measurement work across the processes of a ``torchrun`` launch and bringing the pieces back in order.

Each process takes a contiguous block of the items (``shard``); ``gather_rows`` concatenates the blocks on the main
process in rank order, which is the items' original order. With one process nothing is communicated. Objects travel
with torch.distributed's object collectives (gloo on the CPU; with NCCL each process's current CUDA device, which
``DistContext.from_environment`` sets), so tensors are moved to the CPU before they are sent.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from inv_kernels.train.distributed import DistContext


def shard(ctx: DistContext, count: int, unit: int = 1) -> range:
    """This process's block of ``range(count)``: blocks are contiguous, in rank order, made of whole ``unit``-sized
    pieces (the last piece may be short), their numbers of pieces differing by at most 1.

    A pass that batches its items ``unit`` at a time then forms the same batches as one process does, so per-item
    results that depend on the batch (CPU convolutions round differently for other batch sizes) agree exactly.
    """
    if unit < 1:
        raise ValueError(f"shard: unit must be >= 1, got {unit}")
    pieces = -(-count // unit)
    first, last = pieces * ctx.rank // ctx.world_size, pieces * (ctx.rank + 1) // ctx.world_size
    return range(min(first * unit, count), min(last * unit, count))


def gather_objects(ctx: DistContext, obj: Any) -> list | None:
    """[the object of rank 0, of rank 1, ...] on the main process; None on the others."""
    if ctx.world_size == 1:
        return [obj]
    import torch.distributed as dist

    received = [None] * ctx.world_size if ctx.is_main else None
    dist.gather_object(obj, received, dst=0)
    return received


def all_gather_objects(ctx: DistContext, obj: Any) -> list:
    """[the object of rank 0, of rank 1, ...] on every process."""
    if ctx.world_size == 1:
        return [obj]
    import torch.distributed as dist

    received = [None] * ctx.world_size
    dist.all_gather_object(received, obj)
    return received


def broadcast_object(ctx: DistContext, obj: Any) -> Any:
    """The main process's ``obj``, on every process (the others' argument is ignored)."""
    if ctx.world_size == 1:
        return obj
    import torch.distributed as dist

    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_rows(ctx: DistContext, rows: Tensor) -> Tensor | None:
    """Every process's ``rows`` (m_r, ...) concatenated in rank order on the main process, on the CPU; None on the
    others. Trailing shapes and dtypes must agree."""
    parts = gather_objects(ctx, rows.detach().cpu())
    return None if parts is None else torch.cat(parts)


def gather_positions(ctx: DistContext, positions: Tensor, offset: int) -> Tensor | None:
    """Shard-local int64 positions (m_r,) made global by adding this shard's ``offset``, gathered as ``gather_rows``."""
    return gather_rows(ctx, positions.to(torch.int64).cpu() + offset)
