"""Split-batch BatchNorm: statistics over ``num_splits`` sub-batches, the one-process stand-in for MoCo's shuffle BN."""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class SplitBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics come from each of ``num_splits`` equal sub-batches separately.

    Split b holds samples b, b + s, b + 2s, ... of a contiguous (NCHW) batch, as in the official MoCo code, and the
    b-th block of N / s consecutive samples of a channels-last batch (each block is then channels-last itself, so no
    layout copy is made). Parameters and buffers keep BatchNorm2d's names and shapes, so state dicts load into a plain
    BatchNorm2d.
    """

    def __init__(self, num_features: int, num_splits: int, **kwargs):
        super().__init__(num_features, **kwargs)
        if num_splits < 1:
            raise ValueError(f"num_splits must be >= 1, got {num_splits}")
        self.num_splits = num_splits

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) -> (N, C, H, W)
        n, c, h, w = x.shape
        if not self.training or self.num_splits == 1:
            return super().forward(x)
        if n % self.num_splits:
            raise ValueError(f"split batch norm: batch {n} is not a multiple of num_splits={self.num_splits}")
        s = self.num_splits
        if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            return self._forward_blocks(x)
        running_mean = self.running_mean.repeat(s)  # (s * C,)
        running_var = self.running_var.repeat(s)
        # (N, C, H, W) -> (N / s, s * C, H, W): split b (samples b, b + s, b + 2s, ...) becomes its own channels.
        out = F.batch_norm(
            x.view(-1, c * s, h, w),
            running_mean,
            running_var,
            self.weight.repeat(s),
            self.bias.repeat(s),
            True,
            self.momentum,
            self.eps,
        ).view(n, c, h, w)
        with torch.no_grad():
            self.running_mean.copy_(running_mean.view(s, c).mean(dim=0))
            self.running_var.copy_(running_var.view(s, c).mean(dim=0))
            self.num_batches_tracked.add_(1)
        return out

    def _forward_blocks(self, x: Tensor) -> Tensor:  # (N, C, H, W) channels-last -> the same
        running_means, running_vars, outs = [], [], []
        for block in x.chunk(self.num_splits):  # (N / s, C, H, W) each, channels-last
            running_mean, running_var = self.running_mean.clone(), self.running_var.clone()
            outs.append(
                F.batch_norm(block, running_mean, running_var, self.weight, self.bias, True, self.momentum, self.eps)
            )
            running_means.append(running_mean)
            running_vars.append(running_var)
        with torch.no_grad():
            self.running_mean.copy_(torch.stack(running_means).mean(dim=0))
            self.running_var.copy_(torch.stack(running_vars).mean(dim=0))
            self.num_batches_tracked.add_(1)
        return torch.cat(outs)


def convert_to_split_batchnorm(module: nn.Module, num_splits: int) -> nn.Module:
    """Replaces every BatchNorm2d inside ``module`` (in place) by a SplitBatchNorm2d with the same state."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, SplitBatchNorm2d):
            split = SplitBatchNorm2d(
                child.num_features, num_splits, eps=child.eps, momentum=child.momentum, affine=child.affine
            ).to(child.weight.device)
            split.load_state_dict(child.state_dict())
            setattr(module, name, split)
        else:
            convert_to_split_batchnorm(child, num_splits)
    return module
