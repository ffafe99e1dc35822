"""Backbones for pretraining and feature extraction, all without pretrained weights (nothing is downloaded).

``build_backbone(arch)`` returns a module whose ``fc`` attribute is the last layer, replaced by ``nn.Identity`` so
that ``forward`` gives the pooled feature. Torchvision ResNets keep their own parameter names, so checkpoints stay
compatible with the official MoCo code and with the paper's reference code (``module.encoder_q.<resnet keys>``).

Architectures: torchvision ``resnet18``, ``resnet34``, ``resnet50``, ``resnet101``; ``resnet50w3``, the paper's
3x-wide ResNet-50 (every width x3, stem included: 192 stem channels, stages of 192/384/768/1536 planes, 6144-d
feature); any timm model as ``timm:<name>`` when timm is installed. ``cifar_stem=True`` swaps the 7x7/2 stem and the
max-pool for a 3x3/1 convolution, for 32-64 px images.
"""

from dataclasses import dataclass

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


class TimmEncoder(nn.Module):
    """A timm model without its classifier, with an ``fc`` slot so it plugs in where a ResNet does."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.body = model
        self.fc = nn.Identity()

    def forward(self, x):
        return self.fc(self.body(x))  # (B, 3, H, W) -> (B, feature_dim) -> head


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


def build_backbone(arch: str, *, cifar_stem: bool = False) -> Backbone:
    """A randomly initialised backbone with its classifier replaced by Identity.

    Args:
        arch: one of ARCHS or ``timm:<model name>``.
        cifar_stem: use a 3x3 stride-1 stem without max-pool (ResNets only).

    Returns:
        Backbone(module, feature_dim, arch, cifar_stem); ``module.fc`` is the Identity slot for a head.

    Raises:
        ValueError: an unknown architecture, or cifar_stem for a timm model.
        ImportError: a timm architecture without timm installed.
    """
    if arch.startswith("timm:"):
        if cifar_stem:
            raise ValueError(f"cifar_stem applies to ResNets only, not to {arch}")
        try:
            import timm
        except ImportError as error:
            raise ImportError(f"architecture {arch!r} needs timm: pip install timm ({error})") from None
        name = arch.removeprefix("timm:")
        if name not in timm.list_models():
            raise ValueError(f"unknown timm architecture {name!r}")
        body = timm.create_model(name, pretrained=False, num_classes=0)
        return Backbone(TimmEncoder(body), int(body.num_features), arch, False)
    if arch == "resnet50w3":
        model: nn.Module = WideResNet50(width=3)
    elif arch in TORCHVISION_ARCHS:
        model = getattr(torchvision.models, arch)(weights=None)
    else:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHS)} or timm:<name>")
    if cifar_stem:
        _cifar_stem(model)
    feature_dim = model.fc.in_features
    model.fc = nn.Identity()
    return Backbone(model, feature_dim, arch, cifar_stem)
