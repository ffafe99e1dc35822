"""MoCo v2 (He et al. 2020, Chen et al. 2020) as docs/METHOD.md section 2.1 describes it, with a SimCLR objective as an
option.

The layout follows facebookresearch/moco so checkpoints load in the official code and in the paper's reference code:
``encoder_q`` / ``encoder_k`` are backbones whose ``fc`` is the projection head, and the state dict holds ``queue``
(dim, K) and ``queue_ptr``, a one-element long tensor. The queue itself is a ``KeyQueue`` (rows are keys, (K, dim));
the model's state-dict hooks write and read it under the official names and in the official layout.

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
from inv_kernels.ops.contrastive_modules import KeyQueue
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
    """MoCo v2: a query encoder, a momentum-updated key encoder and a queue of negative keys.

    Momentum Contrast, He et al. 2020 (https://arxiv.org/abs/1911.05722), with the v2 changes of Chen et al. 2020
    (https://arxiv.org/abs/2003.04297): an MLP projection head and a temperature of 0.2; docs/METHOD.md section 2.1 has
    the pretraining recipe.

    Args:
        arch: backbone name (``inv_kernels.models.backbones``: resnet18, resnet50, resnet50w3, ... or timm:<name>).
        cifar_stem: a 3x3 stride-1 stem without max-pooling (ResNets), for small images.
        dim: feature dimension of the projection (default: 128).
        queue_size: K, the queue's length, the number of negative keys (default: 65536).
        momentum: m of the key encoder's update, theta_k <- m theta_k + (1 - m) theta_q (default: 0.999).
        temperature: T of the softmax over the logits (default: 0.2, MoCo v2's; MoCo v1 used 0.07).
        mlp: a Linear-ReLU-Linear projection head (MoCo v2) instead of one Linear (default: True).
        bn_splits: on one process, every BatchNorm computes its statistics over this many sub-batches (split-batch
            BN, in place of shuffle BN); 1 under torch.distributed.
        objective: "moco" (InfoNCE against the queue) or "simclr" (NT-Xent within the batch, no key encoder use).

    Raises:
        ValueError: an unknown objective, temperature <= 0, queue_size < 1, an unknown architecture.
    """

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
        self.key_queue = KeyQueue(queue_size, dim)  # (K, dim), drawn last as in the official code
        self.register_state_dict_post_hook(_save_official_queue)
        self.register_load_state_dict_pre_hook(_load_official_queue)

    @torch.no_grad()
    def _momentum_update(self) -> None:
        keys = list(self.encoder_k.parameters())
        torch._foreach_mul_(keys, self.momentum)  # one call for all tensors: same arithmetic as a loop of mul_, add_
        torch._foreach_add_(keys, [param.detach() for param in self.encoder_q.parameters()], alpha=1.0 - self.momentum)

    @torch.no_grad()
    def _keys(self, im_k: Tensor) -> Tensor:
        """Key embeddings (B, dim) of im_k (B, 3, H, W) through the momentum encoder with a shuffled batch."""
        if is_distributed():
            everything = gather_with_grad(im_k)  # (world * B, 3, H, W)
            order = torch.randperm(everything.shape[0], device=im_k.device)  # (world * B,)
            dist.broadcast(order, src=0)
            rank, b = dist.get_rank(), im_k.shape[0]
            mine = order.view(dist.get_world_size(), b)[rank]  # (B,) rows of the shuffled global batch
            k = F.normalize(self.encoder_k(everything[mine]), dim=1)  # (B, dim), shuffled
            restore = torch.argsort(order)  # (world * B,)
            return gather_with_grad(k)[restore].view(dist.get_world_size(), b, -1)[rank]  # (B, dim)
        order = torch.randperm(im_k.shape[0], device=im_k.device)  # (B,)
        k = F.normalize(self.encoder_k(im_k[order]), dim=1)  # (B, dim), shuffled
        return k[torch.argsort(order)]  # (B, dim)

    def forward(self, im_q: Tensor, im_k: Tensor) -> ContrastiveOutput:
        """One contrastive step's loss.

        Args:
            im_q: (B, 3, H, W) first views.
            im_k: (B, 3, H, W) second views.

        Returns:
            ContrastiveOutput(loss, accuracy, q). For MoCo the queue is updated with this batch's keys.
        """
        q = F.normalize(self.encoder_q(im_q), dim=1)  # queries: (B, dim)
        if self.objective == "simclr":
            z2 = F.normalize(self.encoder_q(im_k), dim=1)  # second views through the same encoder: (B, dim)
            if is_distributed():
                q_all = torch.cat(dist.nn.functional.all_gather(q))  # (world * B, dim)
                z2_all = torch.cat(dist.nn.functional.all_gather(z2))  # (world * B, dim)
                loss, accuracy = ntxent_loss(q_all, z2_all, self.temperature, return_accuracy=True)
            else:
                loss, accuracy = ntxent_loss(q, z2, self.temperature, return_accuracy=True)
            return ContrastiveOutput(loss, accuracy, q)
        with torch.no_grad():
            self._momentum_update()
            k = self._keys(im_k)  # keys: (B, dim)
        # A copy: the loss's backward needs the queue as it was before this batch's keys are written into it. The fused
        # loss (inv_kernels.ops.infonce) never materialises the (B, 1 + K) logits.
        negatives = self.key_queue.tensor.clone()  # (K, dim)
        loss, accuracy = infonce_loss(q, k, negatives, self.temperature, return_accuracy=True)  # 0-dim, 0-dim
        self.key_queue.enqueue(gather_with_grad(k))  # every process's keys: (world * B, dim)
        return ContrastiveOutput(loss, accuracy, q)

    def backbone(self) -> nn.Module:
        """A copy of the query encoder with its head replaced by Identity: (B, 3, H, W) -> (B, feature_dim)."""
        encoder = copy.deepcopy(self.encoder_q)
        encoder.fc = nn.Identity()
        return encoder


# The official layout of the queue in a state dict, with the KeyQueue's entries' names on the right.
_OFFICIAL_NAMES = {"queue": "key_queue.queue", "queue_ptr": "key_queue.ptr"}


def _save_official_queue(model: MoCo, state: dict, prefix: str, local_metadata: dict) -> None:
    """state_dict post-hook: the key queue as the official code saves its queue, first of the model's entries:
    ``queue`` (dim, K) contiguous and ``queue_ptr`` (1,) long."""
    queue = state.pop(prefix + _OFFICIAL_NAMES["queue"]).t().contiguous()  # (K, dim) -> (dim, K)
    ptr = state.pop(prefix + _OFFICIAL_NAMES["queue_ptr"])  # (1,)
    rest = {key: state.pop(key) for key in [key for key in state if key.startswith(prefix)]}
    state.update({prefix + "queue": queue, prefix + "queue_ptr": ptr, **rest})


def _load_official_queue(
    model: MoCo,
    state: dict,
    prefix: str,
    local_metadata: dict,
    strict: bool,
    missing_keys: list,
    unexpected_keys: list,
    error_msgs: list,
) -> None:
    """load_state_dict pre-hook: ``queue`` (dim, K) and ``queue_ptr`` of the official layout into the key queue."""
    if prefix + "queue" in state:
        queue = state.pop(prefix + "queue")  # (dim, K)
        expected = tuple(model.key_queue.tensor.t().shape)
        if tuple(queue.shape) != expected:
            error_msgs.append(
                f"size mismatch for {prefix}queue: copying a param with shape {queue.shape} from "
                f"checkpoint, the shape in current model is {torch.Size(expected)} (dim, K)"
            )
            queue = model.key_queue.tensor.t()  # left as it is
        state[prefix + _OFFICIAL_NAMES["queue"]] = queue.t()  # (K, dim)
    if prefix + "queue_ptr" in state:
        state[prefix + _OFFICIAL_NAMES["queue_ptr"]] = state.pop(prefix + "queue_ptr")
