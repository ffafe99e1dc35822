"""The model whose invariance is measured, wrapped as a feature extractor that takes images in [0, 1] and returns one
feature vector per image: any model ``models.load.load_model`` reads (checkpoints of many layouts, ``random:<arch>``,
an ``nn.Module``).

What is measured: the model's pooled output, or the output of any named module (``layer``), pooled: global average
over H x W for (N, C, H, W) feature maps; for (N, T, D) token outputs the class token when the model has one, else
the mean token. Images are normalised with ``mean``/``std``, else a timm model's pretrained-config normalisation,
else ImageNet's. Precision: ``fp32``, ``bf16`` autocast, ``auto`` (bf16 autocast on a GPU and on CPUs with bfloat16
instructions, as pretraining decides, else fp32; measurement's default) or None (bf16 autocast on a GPU, fp32 on the
CPU). The forward pass runs in channels_last on a GPU, and on the CPU too when asked (``channels_last``). Features come
back as float32.
"""

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from torch import Tensor

from inv_kernels.models.load import file_digest, load_model
from inv_kernels.ops.fused_augment_ref import IMAGENET_MEAN, IMAGENET_STD
from inv_kernels.precision import PRECISIONS, resolve_precision

OUTPUT = "model output"

__all__ = ["PRECISIONS", "FeatureExtractor", "ModelInfo", "file_digest", "load_extractor", "resolve_forward_precision"]


@dataclass
class ModelInfo:
    model_id: str  # identifies the weights and what is measured: "<file name>@<sha256 prefix>", "random:<arch>:seed<s>"
    arch: str
    feature_dim: int
    image_size: int | None  # the training view size recorded in our checkpoints, else None
    recipe: str | None
    layer: str | None = None  # the module whose output is measured (None: the model's pooled output)
    pooling: str = OUTPUT
    mean: tuple[float, ...] = tuple(IMAGENET_MEAN)
    std: tuple[float, ...] = tuple(IMAGENET_STD)
    normalisation: str = "ImageNet"  # ImageNet, given, or timm pretrained config
    precision: str = "fp32"  # of the forward pass: fp32, or bf16 (autocast)
    batchnorm_folded: bool = False  # BatchNorm layers folded into the preceding convolutions (fold_batchnorm)
    load: dict | None = None  # models.load.LoadReport.to_dict(): how the checkpoint's keys were matched


class LayerOutput(nn.Module):
    """A model's named module's output, pooled to (B, D): (B, C, H, W) -> mean over H, W; (B, T, D) -> the class token
    (``class_token`` says whether there is one) or the mean token; (B, D) as it is."""

    def __init__(self, model: nn.Module, layer: str, class_token: bool):
        super().__init__()
        self.model, self.class_token = model, class_token
        self.layer, self.pooling = find_layer(model, layer), OUTPUT
        self._output: Tensor | None = None

    def _keep(self, module, inputs, output) -> None:
        self._output = output[0] if isinstance(output, (tuple, list)) else output

    def forward(self, x: Tensor) -> Tensor:
        hook = self.layer.register_forward_hook(self._keep)  # only for this call: the model may be a user's own
        try:
            self.model(x)  # (B, 3, S, S)
        finally:
            hook.remove()
        out, self._output = self._output, None
        if out.ndim == 4:
            self.pooling = "global average over H x W"
            return out.mean(dim=(2, 3))  # (B, C, H, W) -> (B, C)
        if out.ndim == 3:
            self.pooling = "class token" if self.class_token else "mean token"
            return out[:, 0] if self.class_token else out.mean(dim=1)  # (B, T, D) -> (B, D)
        if out.ndim == 2:
            self.pooling = "none"
            return out
        raise ValueError(f"layer output of shape {tuple(out.shape)}: expected (N, C, H, W), (N, T, D) or (N, D)")


def find_layer(model: nn.Module, name: str) -> nn.Module:
    """The module named ``name`` (as ``model.named_modules()`` names it; a wrapped model's ``body.`` may be left out).

    Raises:
        ValueError: no such module; the message lists the model's top-level modules.
    """
    modules = dict(model.named_modules())
    found = modules.get(name) if name else None
    found = found if found is not None else modules.get(f"body.{name}")
    if found is None:
        top = getattr(model, "body", model)
        names = [child for child, _ in top.named_children()]
        raise ValueError(
            f"unknown layer {name!r}; expected a module name of the model (named_modules()), e.g. one of "
            f"{', '.join(names[:12])}{', ...' if len(names) > 12 else ''} or a dotted name below them"
        )
    return found


def _has_class_token(model: nn.Module) -> bool:
    body = getattr(model, "body", model)
    return getattr(body, "cls_token", None) is not None or getattr(body, "class_token", None) is not None


def _triple(name: str, value) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or not all(v == v and abs(v) != float("inf") for v in values):
        raise ValueError(f"{name} must be 3 finite numbers (one per RGB channel), got {value!r}")
    if name == "std" and min(values) <= 0:
        raise ValueError(f"std must be 3 numbers > 0, got {value!r}")
    return values


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """An eval-mode copy of ``module`` with every BatchNorm that follows a convolution or linear layer folded into its
    weights (``torch.fx`` conv/linear-BN fusion: one pass less over each activation map, same outputs up to float
    rounding); ``module`` itself when it has no BatchNorm, measures a named layer (a forward hook) or does not trace."""
    from torch.fx.experimental.optimization import fuse

    if isinstance(module, LayerOutput) or not any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()
    ):
        return module
    try:
        return fuse(module.eval())
    except Exception:  # symbolic tracing refuses data-dependent control flow, among others: run it unfolded
        return module


def _check_precision(precision) -> None:
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (or None), got {precision!r}")


def resolve_forward_precision(precision: str | None, amp: bool, device: torch.device) -> str:
    """The forward pass's arithmetic, "bf16" (bfloat16 autocast) or "fp32": ``precision`` "fp32" / "bf16" as given;
    "auto": pretraining's rule (``inv_kernels.precision.resolve_precision``: bf16 on CUDA and on CPUs with bfloat16
    instructions, fp32 elsewhere or when ``amp`` is False); None: bf16 on CUDA when ``amp``, else fp32."""
    if precision in ("fp32", "bf16"):
        return precision
    if precision is None:
        return "bf16" if amp and device.type == "cuda" else "fp32"
    return resolve_precision("auto", amp, device)


class FeatureExtractor:
    """Callable: images (B, 3, S, S) float in [0, 1] -> features (B, D) float32 (normalisation inside)."""

    def __init__(
        self,
        module: nn.Module,
        info: ModelInfo,
        device: torch.device,
        *,
        amp: bool = True,
        precision: str | None = None,
        channels_last: bool | None = None,
        fold_bn: bool = False,
    ):
        _check_precision(precision)
        self.info, self.device = info, device
        self.amp = resolve_forward_precision(precision, amp, device) == "bf16"
        info.precision = "bf16" if self.amp else "fp32"
        self.module = module.to(device).eval()
        folded = fold_batchnorm(self.module) if fold_bn else self.module
        info.batchnorm_folded, self.module = folded is not self.module, folded
        channels_last = device.type == "cuda" if channels_last is None else channels_last
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.module = self.module.to(memory_format=self.memory_format)
        self.mean = torch.tensor(info.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(info.std, device=device).view(1, 3, 1, 1)

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        x = (images.to(self.device, non_blocking=True).float() - self.mean) / self.std  # (B, 3, S, S)
        x = x.contiguous(memory_format=self.memory_format)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return self.module(x).float()  # (B, D)


def load_extractor(
    spec: "str | Path | nn.Module",
    *,
    device: torch.device,
    arch: str | None = None,
    seed: int = 0,
    amp: bool = True,
    trust: bool = False,
    image_size: int | None = None,
    layer: str | None = None,
    mean=None,
    std=None,
    precision: str | None = None,
    channels_last: bool | None = None,
    fold_bn: bool = False,
) -> FeatureExtractor:
    """A feature extractor of a checkpoint path, ``random:<arch>`` (a seeded random initialisation; the paper's floor,
    docs/METHOD.md section 2) or an ``nn.Module`` (``models.load.load_model``).

    Args:
        arch: the architecture (overrides what the file records; needed where it records none).
        image_size: the input size S (default: the checkpoint's training size, else 224); ViTs are built for it.
        trust: read a checkpoint that only full unpickling reads (loading it could run code from the file).
        layer: measure this module's output, pooled (None: the model's pooled output).
        mean, std: 3 numbers each (default: a timm model's pretrained config, else ImageNet's).
        precision: ``fp32``, ``bf16`` autocast, ``auto`` (bf16 autocast when ``amp`` on a GPU or a CPU with bfloat16
            instructions) or None (bf16 autocast on a GPU when ``amp``, else fp32); ``resolve_forward_precision``.
        channels_last: the forward pass's memory format, channels_last or contiguous (None: channels_last on a GPU).
        fold_bn: fold BatchNorm layers into the preceding convolutions (``fold_batchnorm``).

    Raises:
        FileNotFoundError, ValueError: as ``load_model`` (``UntrustedCheckpointError`` without ``trust``); an unknown
        architecture or layer; a bad mean, std or precision. ImportError: a timm architecture without timm.
    """
    given = {
        "mean": mean if mean is None else _triple("mean", mean),
        "std": std if std is None else _triple("std", std),
    }
    _check_precision(precision)
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std, or neither (the model's own normalisation)")
    module, report = load_model(spec, arch, image_size=image_size, trust=trust, seed=seed)
    info = ModelInfo(report.model_id, report.arch, report.feature_dim, report.image_size, report.recipe)
    info.load = report.to_dict() if report.source != "random" else None
    if given["mean"] is not None:
        info.mean, info.std, info.normalisation = given["mean"], given["std"], "given"
    elif report.mean is not None:
        info.mean, info.std, info.normalisation = report.mean, report.std, "timm pretrained config"
    if layer:
        module = LayerOutput(module, layer, _has_class_token(module))
        with torch.no_grad():
            info.feature_dim = int(module(torch.zeros(1, 3, report.input_size, report.input_size)).shape[1])
        info.layer, info.pooling = layer, module.pooling
    extractor = FeatureExtractor(
        module, info, device, amp=amp, precision=precision, channels_last=channels_last, fold_bn=fold_bn
    )
    options = [f"layer={layer}"] if layer else []
    options += [f"mean={info.mean},std={info.std}"] if info.normalisation == "given" else []
    # The arithmetic the extractor resolved, not the request: "auto" is bf16 on one machine and fp32 on another.
    options += ["precision=bf16"] if extractor.amp else []
    if options:  # caches and statistics files are keyed by the id: other features, another id
        info.model_id += f"[{';'.join(options)}]"
    return extractor
