"""ResNet-9 for 32 px images (the DAWNBench / airbench family): prep, three conv+pool
stages, two residual blocks, max-pool and a linear head. `width` scales all channels."""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int, pool: bool = False) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, *([nn.MaxPool2d(2)] if pool else []))


class Residual(nn.Module):
    """x + f(x) with two conv blocks of the same width."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(_block(channels, channels), _block(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet9(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, width: int = 64, dropout: float = 0.0):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _block(in_channels, w),
            _block(w, 2 * w, pool=True),
            Residual(2 * w),
            _block(2 * w, 4 * w, pool=True),
            _block(4 * w, 8 * w, pool=True),
            Residual(8 * w),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(8 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))
