"""Model factory: `create_model(spec)` builds a network from a plain, JSON-able spec (timm-style).

Scratch nets (simple_cnn, resnet9) get Kaiming init; torchvision backbones (resnet18,
resnet_cifar, mobilenet_v3_small, efficientnet_b0) keep torchvision's init or weights.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from visionops.models.backbones import build_backbone, head_of
from visionops.models.classifier import Classifier, conv_bn_relu
from visionops.models.recipe import dirac_init_
from visionops.models.resnet9 import resnet9


def simple_cnn(
    in_channels: int, num_classes: int, width: int = 32, dropout: float = 0.1, logit_scale: float = 1.0
) -> Classifier:
    """Two conv blocks + a small head: fast and accurate enough for tiny inputs (digits)."""
    features = nn.Sequential(
        conv_bn_relu(in_channels, width),
        conv_bn_relu(width, width, pool=True),
        conv_bn_relu(width, 2 * width),
        conv_bn_relu(2 * width, 2 * width),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    return Classifier(features, 2 * width, num_classes, dropout, logit_scale)


SCRATCH = {"simple_cnn": simple_cnn, "resnet9": resnet9}


def create_model(spec: dict[str, Any]) -> nn.Module:
    """Build the network for spec = {arch, in_channels, num_classes, image_size, width, dropout,
    pretrained} and the recipe keys that differ from their defaults (logit_scale, dirac_init,
    and tta / whiten_init, which evaluate/export and training apply); unknown archs are
    rejected by the params schema before this is called."""
    options = {key: value for key, value in spec.items() if key not in ("tta", "whiten_init")}
    arch = options.pop("arch")
    image_size = options.pop("image_size", 32)
    pretrained = options.pop("pretrained", False)
    dirac = options.pop("dirac_init", False)
    if arch in SCRATCH:
        model = SCRATCH[arch](**options)
        _kaiming_init(model)
        if dirac:
            dirac_init_(model)
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
