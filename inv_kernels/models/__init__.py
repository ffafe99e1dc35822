"""Backbones, the MoCo v2 model, checkpoints and loading a model from any checkpoint layout."""

from inv_kernels.models.backbones import ARCHS, build_backbone
from inv_kernels.models.checkpoint import UntrustedCheckpointError
from inv_kernels.models.load import LoadReport, export_backbone, load_backbone, load_model
from inv_kernels.models.moco import MoCo

__all__ = [
    "ARCHS",
    "LoadReport",
    "MoCo",
    "UntrustedCheckpointError",
    "build_backbone",
    "export_backbone",
    "load_backbone",
    "load_model",
]
