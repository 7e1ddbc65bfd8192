"""The deployed model takes what a user has: uint8 images, NHWC, at the training size. The
normalisation the pipeline applies before the network is part of the exported graph, so no
consumer has to find it in our code (the resize is named in the ONNX metadata)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

INPUT_SPEC = "uint8 [batch, height, width, channels] (RGB or grey, 0-255), resized as `resize` says"


class Deployable(nn.Module):
    """uint8 NHWC images -> logits of `model`, with (pixel/255 - mean) / std inside."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.model = model
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std_t))
        self.register_buffer("shift", mean_t / std_t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.permute(0, 3, 1, 2).float() * self.scale - self.shift)


def onnx_metadata(meta: dict[str, Any], resize: str) -> dict[str, Any]:
    """What a consumer needs to feed the exported graph, as ONNX metadata_props."""
    task = {key: meta[key] for key in ("classes", "image_size", "channels", "mean", "std")}
    return task | {"input": INPUT_SPEC, "resize": resize, "normalization": "inside the graph"}
