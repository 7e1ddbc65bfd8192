"""features -> dropout -> linear head: the shape every scratch network here shares."""

from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    """A feature extractor ending in a flat vector of `feature_dim`, then the class head, whose
    logits are multiplied by `logit_scale` (a constant, not a weight: airbench94 uses 1/9)."""

    def __init__(
        self,
        features: nn.Module,
        feature_dim: int,
        num_classes: int,
        dropout: float,
        logit_scale: float = 1.0,
    ):
        super().__init__()
        self.features = features
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, num_classes)
        self.logit_scale = logit_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.dropout(self.features(x)))
        return logits if self.logit_scale == 1.0 else logits * self.logit_scale


class GlobalMaxPool(nn.Module):
    """Max over height and width to a flat (N, C) vector. `amax` exports as ONNX ReduceMax on
    every torch exporter; `AdaptiveMaxPool2d(1)` has no ONNX function in torch 2.11's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(2, 3))


def conv_bn_relu(cin: int, cout: int, pool: bool = False) -> nn.Sequential:
    """3x3 conv (no bias) + BatchNorm + ReLU, optionally followed by 2x2 max-pool."""
    layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, *([nn.MaxPool2d(2)] if pool else []))
