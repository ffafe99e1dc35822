"""Runs over several processes (``torchrun``): joining the process group, splitting work into blocks, and bringing
the pieces back in order.

``DistContext.from_environment`` joins the group (NCCL when every process has a GPU, gloo otherwise); with one process
nothing is communicated. Measurement splits its items into contiguous blocks in rank order (``shard``) and
``gather_rows`` concatenates them on the main process in that order, which is the items' original order. Objects
travel with torch.distributed's object collectives (gloo on the CPU; with NCCL each process's current CUDA device,
which ``from_environment`` sets), so tensors are moved to the CPU before they are sent. Training gathers tensors with
``gather_with_grad``, which keeps this process's slice differentiable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """``"auto"``: the process's GPU when CUDA is available, else the CPU; or an explicit ``"cpu"`` / ``"cuda[:i]"``."""
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(preference)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but no CUDA GPU is available")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {preference!r}; expected auto, cpu or cuda[:i]")
    return device


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run: ``rank`` of ``world_size`` processes, ``local_rank`` on its machine, and the
    device it computes on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device_preference: str = "auto") -> DistContext:
        """Reads torchrun's RANK / WORLD_SIZE / LOCAL_RANK and joins the process group when there are several."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = resolve_device(device_preference, local_rank)
        if world > 1 and not dist.is_initialized():
            # The main process alone runs the kNN monitor and writes checkpoints while the others wait in their
            # next collective: allow it an hour (the default watchdog gives up after 10 minutes).
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", timeout=timedelta(hours=1))
        return cls(rank, world, local_rank, device)


def leave_process_group(*, synchronise: bool = True) -> None:
    """Ends this process's part in torch.distributed; nothing without a process group.

    Args:
        synchronise: meet every process at a barrier first, so that none tears gloo down while another still has
            its last collective in flight (which can abort the process at exit). Pass False after an error, when
            the others may never arrive.
    """
    if dist.is_available() and dist.is_initialized():
        if synchronise:
            dist.barrier()
        dist.destroy_process_group()


def is_distributed() -> bool:
    """True under an initialised torch.distributed process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_with_grad(x: Tensor) -> Tensor:
    """All-gather of ``x`` (B, ...) across processes, in rank order: (world * B, ...). Every process must pass the
    same shape. The local slice keeps its autograd history (the others are constants on this process), so a loss
    computed from the gathered tensor sends gradients to this process's inputs. Identity when torch.distributed is
    not initialised or has one process.

    Args:
        x: (B, ...) tensor.

    Returns:
        (world * B, ...) tensor.
    """
    if not is_distributed():
        return x
    flat = x.detach().contiguous()  # NCCL gathers flat buffers: input and outputs in one (standard) layout
    parts = [torch.empty_like(flat, memory_format=torch.contiguous_format) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, flat)
    parts[dist.get_rank()] = x
    return torch.cat(parts, dim=0)


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
    received = [None] * ctx.world_size if ctx.is_main else None
    dist.gather_object(obj, received, dst=0)
    return received


def all_gather_objects(ctx: DistContext, obj: Any) -> list:
    """[the object of rank 0, of rank 1, ...] on every process."""
    if ctx.world_size == 1:
        return [obj]
    received = [None] * ctx.world_size
    dist.all_gather_object(received, obj)
    return received


def broadcast_object(ctx: DistContext, obj: Any) -> Any:
    """The main process's ``obj``, on every process (the others' argument is ignored)."""
    if ctx.world_size == 1:
        return obj
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
