"""Model factory: `create_model(spec)` builds a network from a plain, JSON-able spec (timm-style).

Scratch nets (simple_cnn, resnet9) get Kaiming init; torchvision backbones (resnet18,
resnet_cifar, mobilenet_v3_small, efficientnet_b0) keep torchvision's init or weights.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from visionops.models.backbones import WEIGHTS, build_backbone, head_of
from visionops.models.resnet9 import ResNet9


class SimpleCNN(nn.Module):
    """Two conv blocks + a small head: fast and accurate enough for tiny inputs (digits)."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 32, dropout: float = 0.1):
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn(in_channels, width),
            _conv_bn(width, width),
            nn.MaxPool2d(2),
            _conv_bn(width, 2 * width),
            _conv_bn(2 * width, 2 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


SCRATCH = {"simple_cnn": SimpleCNN, "resnet9": ResNet9}
ARCHITECTURES = (*SCRATCH, *WEIGHTS)


def create_model(spec: dict[str, Any]) -> nn.Module:
    """Build the network for spec = {arch, in_channels, num_classes, image_size, width, dropout,
    pretrained}; unknown archs are rejected by the params schema before this is called."""
    options = dict(spec)
    arch = options.pop("arch")
    image_size = options.pop("image_size", 32)
    pretrained = options.pop("pretrained", False)
    if arch in SCRATCH:
        model = SCRATCH[arch](**options)
        _kaiming_init(model)
        return model
    return build_backbone(
        arch,
        options["in_channels"],
        options["num_classes"],
        image_size,
        options.get("dropout", 0.0),
        pretrained,
    )


def classifier_head(model: nn.Module) -> nn.Module:
    """The final classification layer (kept intact by pruning)."""
    return head_of(model)


def _kaiming_init(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
