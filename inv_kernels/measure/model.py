"""The model whose invariance is measured: any checkpoint ``load_backbone`` reads, or a random network, wrapped as a
feature extractor that takes images in [0, 1] and returns pooled features.

On a GPU the forward pass runs under bf16 autocast in channels_last; features come back as float32.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from torch import Tensor

from inv_kernels.models.backbones import build_backbone
from inv_kernels.models.checkpoint import load_backbone
from inv_kernels.ops.fused_augment_ref import IMAGENET_MEAN, IMAGENET_STD


def file_digest(path: Path, chunk: int = 1 << 22) -> str:
    """The first 16 hex digits of the file's SHA-256: the identity of a checkpoint in caches and stats files."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()[:16]


@dataclass
class ModelInfo:
    model_id: str  # identifies the weights: "<file name>@<sha256 prefix>" or "random:<arch>:seed<s>"
    arch: str
    feature_dim: int
    image_size: int | None  # the training view size recorded in our checkpoints, else None
    recipe: str | None


class FeatureExtractor:
    """Callable: images (B, 3, S, S) float in [0, 1] -> features (B, D) float32 (ImageNet normalisation inside)."""

    def __init__(self, module: nn.Module, info: ModelInfo, device: torch.device, *, amp: bool = True):
        self.info, self.device = info, device
        self.amp = amp and device.type == "cuda"
        self.module = module.to(device).eval()
        if device.type == "cuda":
            self.module = self.module.to(memory_format=torch.channels_last)
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        x = (images.to(self.device, non_blocking=True).float() - self.mean) / self.std  # (B, 3, S, S)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return self.module(x).float()  # (B, D)


def load_extractor(
    spec: str, *, device: torch.device, arch: str | None = None, seed: int = 0, amp: bool = True, trust: bool = False
) -> FeatureExtractor:
    """A feature extractor from a checkpoint path, or from ``random:<arch>`` (a seeded random initialisation; the
    paper's floor, docs/METHOD.md section 2).

    Args:
        trust: read a checkpoint that only full unpickling reads (loading it could run code from the file; see
            ``models.checkpoint.read_checkpoint``).

    Raises:
        FileNotFoundError, ValueError: as ``load_backbone`` (``UntrustedCheckpointError`` without ``trust``); an
        unknown architecture.
    """
    if spec.startswith("random:"):
        name = spec.removeprefix("random:")
        torch.manual_seed(seed)
        backbone = build_backbone(name, cifar_stem=False)
        info = ModelInfo(f"random:{name}:seed{seed}", name, backbone.feature_dim, None, None)
        return FeatureExtractor(backbone.module, info, device, amp=amp)
    path = Path(spec)
    loaded = load_backbone(path, arch=arch, trust=trust)
    info = ModelInfo(
        f"{path.name}@{file_digest(path)}", loaded.arch, loaded.feature_dim, loaded.image_size, loaded.recipe
    )
    return FeatureExtractor(loaded.module, info, device, amp=amp)
