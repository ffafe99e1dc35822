"""Backbones for pretraining and feature extraction, all without pretrained weights (nothing is downloaded).

``build_backbone(arch)`` returns a module whose ``fc`` attribute is the last layer, replaced by ``nn.Identity`` so
that ``forward`` gives the pooled feature. Torchvision ResNets keep their own parameter names, so checkpoints stay
compatible with the official MoCo code and with the paper's reference code (``module.encoder_q.<resnet keys>``).

Architectures: any torchvision classification model by name (``resnet50``, ``vit_b_16``, ``convnext_tiny``, ...;
``ARCHS`` lists the ResNets pretraining is tested with); ``resnet50w3``, the paper's 3x-wide ResNet-50 (every width x3,
stem included: 192 stem channels, stages of 192/384/768/1536 planes, 6144-d feature); any timm model as
``timm:<name>`` when timm is installed. Models whose classifier is not an ``fc`` layer (ViTs, ConvNeXts, every timm
model) are wrapped in ``HeadlessEncoder``, whose ``body`` is the model without its classifier. ``image_size`` builds
models whose input size is fixed (ViTs) for that size. ``cifar_stem=True`` swaps the 7x7/2 stem and the max-pool for a
3x3/1 convolution, for 32-64 px images.
"""

import inspect
from dataclasses import dataclass

import torch
import torch.nn as nn
import torchvision
from torchvision.models.resnet import Bottleneck, ResNet

TORCHVISION_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101")
ARCHS = (*TORCHVISION_ARCHS, "resnet50w3")


class WideResNet50(ResNet):
    """ResNet-50 with every channel width multiplied by ``width`` (docs/METHOD.md section 2, Default(x3))."""

    def __init__(self, width: int = 3):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = 64 * width
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(Bottleneck, 64 * width, 3)
        self.layer2 = self._make_layer(Bottleneck, 128 * width, 4, stride=2)
        self.layer3 = self._make_layer(Bottleneck, 256 * width, 6, stride=2)
        self.layer4 = self._make_layer(Bottleneck, 512 * width, 3, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * width * Bottleneck.expansion, 1000)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)


class HeadlessEncoder(nn.Module):
    """A model without its classifier (``body``), with an ``fc`` slot so it plugs in where a ResNet does."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.body = model
        self.fc = nn.Identity()

    def forward(self, x):
        return self.fc(self.body(x))  # (B, 3, H, W) -> (B, feature_dim) -> head


TimmEncoder = HeadlessEncoder  # the name checkpoints of earlier versions were written with


@dataclass(frozen=True)
class Backbone:
    module: nn.Module  # forward: (B, 3, H, W) -> (B, feature_dim) through module.fc
    feature_dim: int
    arch: str
    cifar_stem: bool


def _cifar_stem(model: nn.Module) -> None:
    out_channels = model.conv1.out_channels
    model.conv1 = nn.Conv2d(3, out_channels, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()


def torchvision_archs() -> list[str]:
    """The names of torchvision's classification models."""
    return torchvision.models.list_models(module=torchvision.models)


def check_arch(arch: str) -> str:
    """Returns ``arch`` if it names an architecture ``build_backbone`` builds (timm names are checked when built).

    Raises:
        ValueError: an unknown name; the message names the accepted forms.
    """
    if not isinstance(arch, str) or not (
        arch in ARCHS or arch in torchvision_archs() or arch[5:] and arch[:5] == "timm:"
    ):
        raise ValueError(
            f"unknown architecture {arch!r}; expected a torchvision model name ({', '.join(ARCHS)}, vit_b_16, "
            f"convnext_tiny, ...), resnet50w3 or timm:<name>"
        )
    return arch


def import_timm():
    """timm, or ImportError naming how to install it."""
    try:
        import timm
    except ImportError as error:
        raise ImportError(f"timm architectures need timm: pip install timm ({error})") from None
    return timm


def drop_classifier(model: nn.Module) -> tuple[nn.Module, int | None]:
    """Replaces the model's classifier (``reset_classifier(0)`` for timm; else the last Linear of ``fc``, ``heads``
    or ``classifier``) by Identity, in place. Returns (model, the feature dimension, or None when unknown)."""
    if hasattr(model, "reset_classifier") and hasattr(model, "num_features"):
        model.reset_classifier(0)
        return model, int(model.num_features)
    for name in ("fc", "heads", "classifier", "head"):
        layer = getattr(model, name, None)
        if isinstance(layer, nn.Linear):
            setattr(model, name, nn.Identity())
            return model, layer.in_features
        if isinstance(layer, nn.Sequential):
            linears = [i for i, child in enumerate(layer) if isinstance(child, nn.Linear)]
            if linears:
                dim = layer[linears[-1]].in_features
                layer[linears[-1]] = nn.Identity()
                return model, dim
    return model, None


def _timm_model(name: str, image_size: int | None) -> nn.Module:
    timm = import_timm()
    if not timm.is_model(name):
        raise ValueError(f"unknown timm architecture {name!r}")
    if image_size is not None:
        try:
            return timm.create_model(name, pretrained=False, num_classes=0, img_size=image_size)
        except TypeError:  # a model without img_size (its input size is not fixed)
            pass
    return timm.create_model(name, pretrained=False, num_classes=0)


def _torchvision_model(arch: str, image_size: int | None) -> nn.Module:
    builder = torchvision.models.get_model_builder(arch)
    takes_size = image_size is not None and arch.startswith("vit_")  # torchvision ViTs fix their input size
    return builder(weights=None, **({"image_size": image_size} if takes_size else {}))


def check_input_size(module: nn.Module, arch: str, image_size: int) -> int:
    """Runs one (1, 3, S, S) image through the model (on the device of its weights); returns D of its (1, D) output.

    Raises:
        ValueError: the model does not run at that size (the message names the size it was made for), or its output
            is not (B, D) features.
    """
    was_training = module.training
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    try:
        with torch.no_grad():
            out = module.eval()(torch.zeros(1, 3, image_size, image_size, device=device))
    except Exception as error:  # a size the model cannot take: each architecture fails in its own way
        made_for = _made_for(module)
        raise ValueError(
            f"{arch} does not run on {image_size} px images ({type(error).__name__}: "
            f"{' '.join(str(error).split())[:160]}); {made_for} choose an image size it accepts"
        ) from None
    finally:
        module.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"model {arch}: expected (B, D) features for (B, 3, S, S) images, got {shape} for (1, 3, {image_size}, "
            f"{image_size}); pool or flatten its output"
        )
    return int(out.shape[1])


def _made_for(module: nn.Module) -> str:
    body = getattr(module, "body", module)
    config = getattr(body, "pretrained_cfg", None) or {}
    size = config.get("input_size")
    if size is None:
        return "the model fixes no input size, but its downsampling needs larger images:"
    takes = "img_size" in inspect.signature(type(body).__init__).parameters
    sizes = f"it was made for {size[-1]} px (timm pretrained config input_size {tuple(size)})"
    return f"{sizes}{'' if takes else ' and takes no img_size='}, so at least that large a multiple of its stride:"


def build_backbone(arch: str, *, cifar_stem: bool = False, image_size: int | None = None) -> Backbone:
    """A randomly initialised backbone with its classifier replaced by Identity.

    Args:
        arch: a torchvision model name, ``resnet50w3`` or ``timm:<model name>``.
        cifar_stem: use a 3x3 stride-1 stem without max-pool (ResNets only).
        image_size: the input size S, for models whose input size is fixed (ViTs; timm's ``img_size=``).

    Returns:
        Backbone(module, feature_dim, arch, cifar_stem); ``module.fc`` is the Identity slot for a head; module:
        (B, 3, S, S) -> (B, feature_dim). feature_dim is 0 when only a forward pass tells it (``check_input_size``).

    Raises:
        ValueError: an unknown architecture, or cifar_stem for a model without a ResNet stem.
        ImportError: a timm architecture without timm installed (the message says ``pip install timm``).
    """
    if arch.startswith("timm:"):
        if cifar_stem:
            raise ValueError(f"cifar_stem applies to ResNets only, not to {arch}")
        body = _timm_model(arch.removeprefix("timm:"), image_size)
        return Backbone(HeadlessEncoder(body), int(body.num_features), arch, False)
    check_arch(arch)
    model = WideResNet50(width=3) if arch == "resnet50w3" else _torchvision_model(arch, image_size)
    if isinstance(getattr(model, "fc", None), nn.Linear):  # ResNets keep their parameter names
        if cifar_stem:
            _cifar_stem(model)
        feature_dim = model.fc.in_features
        model.fc = nn.Identity()
        return Backbone(model, feature_dim, arch, cifar_stem)
    if cifar_stem:
        raise ValueError(f"cifar_stem applies to ResNets only, not to {arch}")
    body, feature_dim = drop_classifier(model)
    return Backbone(HeadlessEncoder(body), feature_dim or 0, arch, False)
