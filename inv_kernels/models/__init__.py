"""Backbones, the MoCo v2 model and checkpoints."""

from inv_kernels.models.backbones import ARCHS, build_backbone
from inv_kernels.models.checkpoint import UntrustedCheckpointError, export_backbone, load_backbone
from inv_kernels.models.moco import MoCo

__all__ = ["ARCHS", "MoCo", "UntrustedCheckpointError", "build_backbone", "export_backbone", "load_backbone"]
