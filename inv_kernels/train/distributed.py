"""Process-group setup for runs under ``torchrun``: NCCL when every process has a GPU, gloo otherwise."""

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


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
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device_preference: str = "auto") -> "DistContext":
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

