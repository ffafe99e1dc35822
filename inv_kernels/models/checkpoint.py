"""Checkpoints: pretraining state in the official MoCo layout, exported backbones, and loading a backbone from any
of them (also from the paper's reference code's checkpoints and plain torchvision state dicts).

A pretraining checkpoint is a dict with ``epoch``, ``arch``, ``state_dict`` (keys ``module.encoder_q.*``,
``module.encoder_k.*``, ``module.queue``, ``module.queue_ptr``, as the official code writes under DDP) and
``optimizer``, plus ``inv_kernels``: everything else needed to resume exactly (config, step counters, RNG states).
"""

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from inv_kernels.io import atomic_torch_save
from inv_kernels.models.backbones import build_backbone

LAST = "checkpoint_last.pth.tar"
PREFIX_Q = "module.encoder_q."


def read_checkpoint(path: str | Path) -> dict:
    """Loads a checkpoint file onto the CPU; FileNotFoundError / IsADirectoryError / ValueError name the file and the
    problem."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint {path} is a folder, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # truncated, not a torch file, ...
        raise ValueError(f"checkpoint {path} cannot be read ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} holds a {type(state).__name__}, not a dict")
    return state


def moco_state_dict(model: nn.Module) -> dict:
    """The model's state dict with the ``module.`` prefix the official code has under DDP."""
    return {f"module.{key}": value for key, value in model.state_dict().items()}


def strip_module_prefix(state_dict: dict) -> dict:
    return {key.removeprefix("module."): value for key, value in state_dict.items()}


def save_pretraining_checkpoint(path: str | Path, *, model, optimizer, epoch: int, extra: dict) -> Path:
    """Writes a pretraining checkpoint atomically. ``epoch`` counts completed epochs, as the official code."""
    state = {
        "epoch": epoch,
        "arch": model.arch,
        "state_dict": moco_state_dict(model),
        "optimizer": optimizer.state_dict(),
        "inv_kernels": extra,
    }
    return atomic_torch_save(state, path)


@dataclass
class LoadedBackbone:
    module: nn.Module  # eval mode; (B, 3, H, W) -> (B, feature_dim)
    feature_dim: int
    arch: str
    cifar_stem: bool
    source: str  # "pretraining", "export", "torchvision"


def _backbone_weights(state: dict, path: Path) -> tuple[dict, str]:
    if "backbone" in state:  # our export
        return state["backbone"], "export"
    if "state_dict" in state:
        weights = state["state_dict"]
        if any(key.startswith(PREFIX_Q) or key.startswith("encoder_q.") for key in weights):
            encoder = {
                key.split("encoder_q.", 1)[1]: value for key, value in weights.items() if "encoder_q." in key
            }
            return {k: v for k, v in encoder.items() if not k.startswith("fc.")}, "pretraining"
        return strip_module_prefix(weights), "torchvision"
    if all(isinstance(v, torch.Tensor) for v in state.values()) and "conv1.weight" in state:
        return state, "torchvision"
    raise ValueError(f"{path}: not a checkpoint this project reads (no 'backbone', 'state_dict' or ResNet weights)")


def load_backbone(path: str | Path, *, arch: str | None = None) -> LoadedBackbone:
    """The feature extractor stored in ``path``: a pretraining checkpoint (ours, the official MoCo's or the paper's),
    an exported backbone, or a torchvision state dict. The head is dropped; the feature is the pooled output.

    Args:
        path: the file.
        arch: the architecture, when the file does not record it (torchvision state dicts).

    Raises:
        FileNotFoundError, ValueError: a missing or unreadable file, an unknown layout, or weights that do not fit
        the architecture (the message names the architecture and the mismatching keys).
    """
    path = Path(path)
    state = read_checkpoint(path)
    weights, source = _backbone_weights(state, path)
    arch = arch or state.get("arch")
    if arch is None:
        raise ValueError(f"{path} does not record its architecture: pass arch=")
    conv1 = weights.get("conv1.weight")
    cifar_stem = bool(state.get("cifar_stem", conv1 is not None and conv1.shape[-1] == 3))
    backbone = build_backbone(arch, cifar_stem=cifar_stem)
    weights = {k: v for k, v in weights.items() if not k.startswith("fc.")}
    try:
        missing, unexpected = backbone.module.load_state_dict(weights, strict=False)
    except RuntimeError as error:  # shape mismatches
        first = str(error).splitlines()[1].strip() if "\n" in str(error) else str(error)
        raise ValueError(f"{path}: weights do not fit architecture {arch!r} ({first} ...)") from None
    if missing or unexpected:
        raise ValueError(
            f"{path}: weights do not fit architecture {arch!r} (missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]})"
        )
    backbone.module.eval()
    return LoadedBackbone(backbone.module, backbone.feature_dim, arch, cifar_stem, source)


def export_backbone(checkpoint: str | Path, out: str | Path) -> Path:
    """Writes the query encoder's backbone (no head, no key encoder, no queue) of a pretraining checkpoint to ``out``."""
    loaded = load_backbone(checkpoint)
    state = read_checkpoint(checkpoint)
    payload = {
        "arch": loaded.arch,
        "cifar_stem": loaded.cifar_stem,
        "feature_dim": loaded.feature_dim,
        "backbone": loaded.module.state_dict(),
        "source_checkpoint": str(checkpoint),
        "epoch": state.get("epoch"),
        "recipe": state.get("inv_kernels", {}).get("config", {}).get("recipe"),
        "image_size": state.get("inv_kernels", {}).get("image_size"),
    }
    return atomic_torch_save(payload, out)
