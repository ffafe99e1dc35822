"""Contrastive losses: MoCo's InfoNCE against a queue and SimCLR's NT-Xent.

Only the torch references live here so far (materialised logits: the specification). The fused tiled kernels of
issue 5 (online log-sum-exp, no logits in memory) will sit beside them with the same signatures.
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def infonce_loss_ref(q: Tensor, k: Tensor, queue: Tensor | None, temperature: float) -> tuple[Tensor, Tensor]:
    """MoCo v2 InfoNCE: positives q_i . k_i, negatives q_i . queue_j, all divided by the temperature.

    Args:
        q: (N, D) queries (L2-normalised by the caller, as MoCo does).
        k: (N, D) positive keys.
        queue: (K, D) negative keys, or None for no negatives beyond the batch's own positive.
        temperature: > 0.

    Returns:
        (loss, accuracy): the mean cross-entropy with the positive at index 0, a 0-dim tensor; and the fraction of
        rows whose positive logit is the largest (top-1), a 0-dim float tensor without gradient.
    """
    positives = (q * k).sum(dim=1, keepdim=True)  # (N, 1)
    if queue is None:
        logits = positives
    else:
        negatives = q @ queue.detach().to(q.dtype).t()  # (N, K)
        logits = torch.cat([positives, negatives], dim=1)  # (N, 1 + K)
    logits = logits / temperature
    labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    loss = F.cross_entropy(logits.float(), labels)
    accuracy = (logits.detach().argmax(dim=1) == 0).float().mean()
    return loss, accuracy


def ntxent_loss_ref(z1: Tensor, z2: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """SimCLR NT-Xent: 2N x 2N cosine logits with self-pairs masked; row i's positive is its other view.

    Args:
        z1: (N, D) first views' embeddings (L2-normalised by the caller).
        z2: (N, D) second views' embeddings.
        temperature: > 0.

    Returns:
        (loss, accuracy) as infonce_loss_ref, averaged over all 2N rows.
    """
    n = z1.shape[0]
    z = torch.cat([z1, z2], dim=0)  # (2N, D)
    logits = (z @ z.t()) / temperature  # (2N, 2N)
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)  # (2N,)
    loss = F.cross_entropy(logits.float(), targets)
    accuracy = (logits.detach().argmax(dim=1) == targets).float().mean()
    return loss, accuracy
