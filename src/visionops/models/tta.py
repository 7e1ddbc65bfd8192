"""Test-time augmentation: the logits averaged over a few views of each image (flip; flip and
1 px translations), as airbench94 evaluates. evaluate scores the wrapped model and export puts
the same views inside the ONNX graph, so the deployed model predicts as it was scored."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class AveragedViews(nn.Module):
    """`model`'s logits averaged over views of NCHW float input: `flip` = the image and its
    mirror; `flip_translate` = half that, half the mirror pair of two crops of the image padded
    by 1 px (reflect), shifted up-left and down-right."""

    def __init__(self, model: nn.Module, mode: str):
        super().__init__()
        if mode not in ("flip", "flip_translate"):
            raise ValueError(f"unknown test-time augmentation {mode!r}")
        self.model, self.mode = model, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self._mirrored(x)
        if self.mode == "flip":
            return logits
        h, w = x.shape[-2:]
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        shifted = [self._mirrored(padded[:, :, :h, :w]), self._mirrored(padded[:, :, 2 : h + 2, 2 : w + 2])]
        return 0.5 * logits + 0.25 * (shifted[0] + shifted[1])

    def _mirrored(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.model(x) + self.model(x.flip(3)))


def with_tta(model: nn.Module, spec: dict[str, Any]) -> nn.Module:
    """The model as evaluate scores it and export exports it: wrapped when spec asks for TTA."""
    mode = spec.get("tta", "none")
    return model if mode == "none" else AveragedViews(model, mode).eval()
