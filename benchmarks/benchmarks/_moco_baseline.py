"""The baseline the pretraining benchmark compares with: the official MoCo v2 recipe's training loop, in plain torch and
torchvision. An ImageFolder read by a DataLoader whose workers make two PIL views of each image (RandomResizedCrop
with scale (0.2, 1), ColorJitter(0.4, 0.4, 0.4, 0.1) with p = 0.8, RandomGrayscale(0.2), a PIL Gaussian blur with
sigma in [0.1, 2] with p = 0.5, horizontal flip, ToTensor, Normalize), and an eager float32 step: ResNet-18 query and
momentum key encoders with the MLP head, split-batch BN (the one-process stand-in for shuffle BN), keys of a shuffled
batch, InfoNCE logits against a (dim, K) queue, cross-entropy, SGD. Of inv_kernels it uses only the split-batch BN
module, whose path for contiguous input is that recipe's arithmetic; nothing of its training path."""

from __future__ import annotations

import copy
import random
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from PIL import ImageFilter
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import ImageFolder

from inv_kernels.models.split_bn import SplitBatchNorm2d

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class PilGaussianBlur:
    """PIL's Gaussian blur with a radius drawn uniformly from ``sigma``."""

    def __init__(self, sigma: tuple[float, float] = (0.1, 2.0)):
        self.sigma = sigma

    def __call__(self, image):
        return image.filter(ImageFilter.GaussianBlur(radius=random.uniform(*self.sigma)))


class TwoCrops:
    """Two independent draws of ``transform`` on one image: [(3, S, S), (3, S, S)]."""

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, image):
        return [self.transform(image), self.transform(image)]


def moco_v2_transform(size: int):
    return transforms.Compose(
        [
            transforms.RandomResizedCrop(size, scale=(0.2, 1.0)),
            transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            transforms.RandomGrayscale(p=0.2),
            transforms.RandomApply([PilGaussianBlur()], p=0.5),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ]
    )


def resnet18_encoder(dim: int, cifar_stem: bool, bn_splits: int) -> nn.Module:
    """ResNet-18 with the MLP head (512 -> 512 -> dim); (B, 3, S, S) -> (B, dim)."""
    model = torchvision.models.resnet18(weights=None, norm_layer=lambda c: SplitBatchNorm2d(c, bn_splits))
    if cifar_stem:
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    model.fc = nn.Sequential(nn.Linear(512, 512), nn.ReLU(inplace=True), nn.Linear(512, dim))
    return model


class MoCoBaseline(nn.Module):
    """Query and momentum key encoders and a (dim, K) queue, as the official MoCo builder."""

    def __init__(
        self, cifar_stem: bool, dim: int, queue_size: int, momentum: float, temperature: float, bn_splits: int
    ):
        super().__init__()
        self.momentum, self.temperature = momentum, temperature
        self.encoder_q = resnet18_encoder(dim, cifar_stem, bn_splits)
        self.encoder_k = copy.deepcopy(self.encoder_q)
        for param in self.encoder_k.parameters():
            param.requires_grad = False
        self.register_buffer("queue", F.normalize(torch.randn(dim, queue_size), dim=0))
        self.ptr = 0

    def forward(self, im_q, im_k):  # (B, 3, S, S) each -> logits (B, 1 + K), labels (B,)
        q = F.normalize(self.encoder_q(im_q), dim=1)
        with torch.no_grad():
            for param_q, param_k in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
                param_k.data = param_k.data * self.momentum + param_q.data * (1.0 - self.momentum)
            order = torch.randperm(im_k.shape[0])
            k = F.normalize(self.encoder_k(im_k[order]), dim=1)[torch.argsort(order)]
        l_pos = (q * k).sum(dim=1, keepdim=True)
        l_neg = q @ self.queue.clone().detach()
        logits = torch.cat([l_pos, l_neg], dim=1) / self.temperature
        with torch.no_grad():
            size = self.queue.shape[1]
            rows = (self.ptr + torch.arange(k.shape[0])) % size
            self.queue[:, rows] = k.t()
            self.ptr = int((self.ptr + k.shape[0]) % size)
        return logits, torch.zeros(logits.shape[0], dtype=torch.long)


def baseline_step_times(
    root,
    *,
    image_size: int,
    batch_size: int,
    steps: int,
    workers: int = 2,
    queue_size: int = 4096,
    momentum: float = 0.99,
    lr: float = 0.06,
    bn_splits: int = 8,
    seed: int = 0,
) -> list[float]:
    """Trains ``steps`` steps on the ImageFolder ``root`` (epochs repeat as needed); returns the host clock after
    each step, from the start of the loop (seconds). The first steps include the workers' start."""
    torch.manual_seed(seed)
    random.seed(seed)
    dataset = ImageFolder(str(root), TwoCrops(moco_v2_transform(image_size)))
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
    )
    model = MoCoBaseline(image_size <= 32, 128, queue_size, momentum, 0.2, bn_splits)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr * batch_size / 256, momentum=0.9, weight_decay=1e-4)
    criterion = nn.CrossEntropyLoss()
    start, times, losses = time.perf_counter(), [], []
    while len(times) < steps:
        for (im_q, im_k), _ in loader:
            logits, labels = model(im_q, im_k)
            loss = criterion(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())  # the official loop's running averages read the loss every step
            times.append(time.perf_counter() - start)
            if len(times) == steps:
                break
    return times
