"""ResNet-9 for 32 px images (the DAWNBench / airbench family): prep, three conv+pool
stages, two residual blocks, max-pool and a linear head. `width` scales all channels."""

from __future__ import annotations

import torch
from torch import nn

from visionops.models.classifier import Classifier, GlobalMaxPool, conv_bn_relu


class Residual(nn.Module):
    """x + f(x) with two conv blocks of the same width."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(channels, channels), conv_bn_relu(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def resnet9(
    in_channels: int, num_classes: int, width: int = 64, dropout: float = 0.0, logit_scale: float = 1.0
) -> Classifier:
    w = width
    features = nn.Sequential(
        conv_bn_relu(in_channels, w),
        conv_bn_relu(w, 2 * w, pool=True),
        Residual(2 * w),
        conv_bn_relu(2 * w, 4 * w, pool=True),
        conv_bn_relu(4 * w, 8 * w, pool=True),
        Residual(8 * w),
        GlobalMaxPool(),
    )
    return Classifier(features, 8 * w, num_classes, dropout, logit_scale)
