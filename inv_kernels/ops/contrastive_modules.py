"""nn.Module wrappers of the contrastive losses and MoCo's key queue.

``InfoNCELoss`` and ``NTXentLoss`` hold a loss's settings and call ``infonce_loss`` / ``ntxent_loss``
(inv_kernels.ops.infonce); ``KeyQueue`` is MoCo's ring buffer of negative keys, written in place. Under
torch.distributed, ``NTXentLoss(gather=True)`` gathers the embeddings with ``inv_kernels.distributed.gather_with_grad``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from inv_kernels._validate import check_finite, check_positive, check_tensor
from inv_kernels.distributed import gather_with_grad
from inv_kernels.ops.infonce import OP_INFONCE, OP_NTXENT, _check_reduction, infonce_loss, ntxent_loss


class _ContrastiveLoss(nn.Module):
    """The settings both loss modules share, checked once (``op`` names the loss in messages)."""

    def __init__(
        self, op: str, temperature: float, normalize: bool, reduction: str, return_accuracy: bool, backend: str
    ):
        super().__init__()
        check_positive(op, "temperature", temperature)
        _check_reduction(op, reduction)
        self.temperature = float(temperature)
        self.normalize = normalize
        self.reduction = reduction
        self.return_accuracy = return_accuracy
        self.backend = backend

    def _options(self) -> dict:
        return {
            "normalize": self.normalize,
            "reduction": self.reduction,
            "return_accuracy": self.return_accuracy,
            "backend": self.backend,
        }


class InfoNCELoss(_ContrastiveLoss):
    """nn.Module around ``infonce_loss``: forward(q (N, D), k (N, D), queue (K, D) | None) -> loss (and accuracy)."""

    def __init__(
        self,
        temperature: float = 0.2,
        *,
        normalize: bool = False,
        reduction: str = "mean",
        return_accuracy: bool = False,
        backend: str = "auto",
    ):
        super().__init__(OP_INFONCE, temperature, normalize, reduction, return_accuracy, backend)

    def forward(self, q: Tensor, k: Tensor, queue: Tensor | None = None):
        return infonce_loss(q, k, queue, self.temperature, **self._options())

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, normalize={self.normalize}, backend={self.backend!r}"


class NTXentLoss(_ContrastiveLoss):
    """nn.Module around ``ntxent_loss``: forward(z1 (N, D), z2 (N, D)) -> loss (and accuracy).

    With ``gather=True`` and torch.distributed initialised, z1 and z2 are first gathered from every process
    (``gather_with_grad``), so the negatives span the global batch; each process then computes the global loss and
    its gradients reach its own rows.
    """

    def __init__(
        self,
        temperature: float = 0.2,
        *,
        normalize: bool = False,
        reduction: str = "mean",
        return_accuracy: bool = False,
        gather: bool = False,
        backend: str = "auto",
    ):
        super().__init__(OP_NTXENT, temperature, normalize, reduction, return_accuracy, backend)
        self.gather = gather

    def forward(self, z1: Tensor, z2: Tensor):
        if self.gather:
            z1, z2 = gather_with_grad(z1), gather_with_grad(z2)
        return ntxent_loss(z1, z2, self.temperature, **self._options())

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, normalize={self.normalize}, gather={self.gather}"


class KeyQueue(nn.Module):
    """MoCo's queue of negative keys as a ring buffer (K, D), written in place: ``enqueue`` never reallocates.

    Buffers (saved in state_dict): ``queue`` (K, D) and ``ptr`` (1,) long, the next row to overwrite. Rows start
    as random unit vectors, drawn as the official MoCo code draws its (D, K) queue, so a seeded MoCo model starts
    from the same negatives. Under torch.distributed, gather the keys first (``gather_with_grad(k)``).

    Args:
        size: K >= 1.
        dim: D >= 1.
        dtype, device: of the buffer.
    """

    def __init__(self, size: int, dim: int, *, dtype: torch.dtype = torch.float32, device=None):
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"KeyQueue: size must be an integer >= 1, got {size!r}")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"KeyQueue: dim must be an integer >= 1, got {dim!r}")
        drawn = F.normalize(torch.randn(dim, size, device=device), dim=0)  # (D, K)
        self.register_buffer("queue", drawn.t().contiguous().to(dtype))  # (K, D)
        self.register_buffer("ptr", torch.zeros(1, dtype=torch.long, device=device))

    @property
    def tensor(self) -> Tensor:
        """The (K, D) buffer itself (not a copy): pass it as ``queue`` to infonce_loss."""
        return self.queue

    def __len__(self) -> int:
        return self.queue.shape[0]

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Writes ``keys`` (B, D) at the pointer, wrapping around; a batch larger than K keeps its newest K keys.

        Raises:
            TypeError / ValueError: not a dense floating tensor, not 2-D, a D other than the queue's, NaN/Inf.
        """
        op = "KeyQueue.enqueue"
        check_tensor(op, "keys", keys, ndim=2, layout="(B, D)")
        size, dim = self.queue.shape
        if keys.shape[1] != dim:
            raise ValueError(f"{op}: keys must have D={dim} columns, got shape {tuple(keys.shape)}")
        check_finite(op, "keys", keys)
        keys = keys.detach()[-size:].to(device=self.queue.device, dtype=self.queue.dtype)  # (B', D), B' <= K
        b = keys.shape[0]
        if b == 0:
            return
        ptr = int(self.ptr)
        first = min(b, size - ptr)
        self.queue[ptr : ptr + first].copy_(keys[:first])
        if b > first:
            self.queue[: b - first].copy_(keys[first:])
        self.ptr.fill_((ptr + b) % size)


__all__ = ["InfoNCELoss", "KeyQueue", "NTXentLoss"]
