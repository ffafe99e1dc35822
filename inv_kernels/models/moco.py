"""MoCo v2 (He et al. 2020, Chen et al. 2020) as PAPER.md section 2.1 describes it, with a SimCLR objective as an option.

The layout follows facebookresearch/moco so checkpoints load in the official code and in the paper's reference code:
``encoder_q`` / ``encoder_k`` are backbones whose ``fc`` is the projection head, ``queue`` is (dim, K), ``queue_ptr``
is a one-element long tensor.

Batch norm in the key encoder must not see the same batch composition as the query encoder, or the model can cheat
through the batch statistics. Under torch.distributed the keys' batch is shuffled across processes (shuffle BN, as
the official code). On one process the batch is shuffled and every BatchNorm computes its statistics over
``bn_splits`` sub-batches (split-batch BN), which has the same effect.
"""

import copy
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from inv_kernels.distributed import gather_with_grad, is_distributed
from inv_kernels.models.backbones import build_backbone
from inv_kernels.models.split_bn import convert_to_split_batchnorm
from inv_kernels.ops.infonce import infonce_loss, ntxent_loss

OBJECTIVES = ("moco", "simclr")


@dataclass
class ContrastiveOutput:
    loss: Tensor  # 0-dim, differentiable
    accuracy: Tensor  # 0-dim, top-1 of the positive among all logits
    q: Tensor  # (B, dim) normalised query embeddings


def projection_head(feature_dim: int, dim: int, mlp: bool) -> nn.Module:
    """MoCo v2's head: Linear-ReLU-Linear (mlp) or a single Linear, (B, feature_dim) -> (B, dim)."""
    if not mlp:
        return nn.Linear(feature_dim, dim)
    return nn.Sequential(nn.Linear(feature_dim, feature_dim), nn.ReLU(inplace=True), nn.Linear(feature_dim, dim))


class MoCo(nn.Module):
    def __init__(
        self,
        arch: str = "resnet50",
        *,
        cifar_stem: bool = False,
        dim: int = 128,
        queue_size: int = 65536,
        momentum: float = 0.999,
        temperature: float = 0.2,
        mlp: bool = True,
        bn_splits: int = 1,
        objective: str = "moco",
    ):
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; expected one of {', '.join(OBJECTIVES)}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.arch, self.objective = arch, objective
        self.momentum, self.temperature = momentum, temperature
        backbone = build_backbone(arch, cifar_stem=cifar_stem)
        self.feature_dim = backbone.feature_dim
        self.encoder_q = backbone.module
        self.encoder_q.fc = projection_head(backbone.feature_dim, dim, mlp)
        if bn_splits > 1:
            convert_to_split_batchnorm(self.encoder_q, bn_splits)
        self.encoder_k = copy.deepcopy(self.encoder_q)
        for param in self.encoder_k.parameters():
            param.requires_grad = False
        self.register_buffer("queue", F.normalize(torch.randn(dim, queue_size), dim=0))  # (dim, K)
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def _momentum_update(self) -> None:
        for param_q, param_k in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            param_k.mul_(self.momentum).add_(param_q.detach(), alpha=1.0 - self.momentum)

    @torch.no_grad()
    def _enqueue(self, keys: Tensor) -> None:
        """Writes keys (B, dim) into the ring buffer in place, wrapping around its end."""
        keys = gather_with_grad(keys)
        size = self.queue.shape[1]
        keys = keys[-size:]  # a batch larger than the queue keeps its newest keys
        ptr = int(self.queue_ptr)
        first = min(keys.shape[0], size - ptr)
        self.queue[:, ptr : ptr + first] = keys[:first].t()
        self.queue[:, : keys.shape[0] - first] = keys[first:].t()
        self.queue_ptr[0] = (ptr + keys.shape[0]) % size

    @torch.no_grad()
    def _keys(self, im_k: Tensor) -> Tensor:
        """Key embeddings (B, dim) of im_k (B, 3, H, W) through the momentum encoder with a shuffled batch."""
        if is_distributed():
            everything = gather_with_grad(im_k)  # (world * B, 3, H, W)
            order = torch.randperm(everything.shape[0], device=im_k.device)
            dist.broadcast(order, src=0)
            rank, b = dist.get_rank(), im_k.shape[0]
            mine = order.view(dist.get_world_size(), b)[rank]
            k = F.normalize(self.encoder_k(everything[mine]), dim=1)
            restore = torch.argsort(order)
            return gather_with_grad(k)[restore].view(dist.get_world_size(), b, -1)[rank]
        order = torch.randperm(im_k.shape[0], device=im_k.device)
        k = F.normalize(self.encoder_k(im_k[order]), dim=1)  # (B, dim), shuffled
        return k[torch.argsort(order)]

    def forward(self, im_q: Tensor, im_k: Tensor) -> ContrastiveOutput:
        """One contrastive step's loss.

        Args:
            im_q: (B, 3, H, W) first views.
            im_k: (B, 3, H, W) second views.

        Returns:
            ContrastiveOutput(loss, accuracy, q). For MoCo the queue is updated with this batch's keys.
        """
        q = F.normalize(self.encoder_q(im_q), dim=1)  # (B, dim)
        if self.objective == "simclr":
            z2 = F.normalize(self.encoder_q(im_k), dim=1)  # (B, dim)
            if is_distributed():
                q_all = torch.cat(dist.nn.functional.all_gather(q))
                z2_all = torch.cat(dist.nn.functional.all_gather(z2))
                loss, accuracy = ntxent_loss(q_all, z2_all, self.temperature, return_accuracy=True)
            else:
                loss, accuracy = ntxent_loss(q, z2, self.temperature, return_accuracy=True)
            return ContrastiveOutput(loss, accuracy, q)
        with torch.no_grad():
            self._momentum_update()
            k = self._keys(im_k)  # (B, dim)
        # A copy: the loss's backward needs the queue as it was before this batch's keys are written into it. The fused
        # loss (inv_kernels.ops.infonce) never materialises the (B, K) logits.
        loss, accuracy = infonce_loss(q, k, self.queue.t().clone(), self.temperature, return_accuracy=True)
        self._enqueue(k)
        return ContrastiveOutput(loss, accuracy, q)

    def backbone(self) -> nn.Module:
        """A copy of the query encoder with its head replaced by Identity: (B, 3, H, W) -> (B, feature_dim)."""
        encoder = copy.deepcopy(self.encoder_q)
        encoder.fc = nn.Identity()
        return encoder
