"""The deployed model takes what a user has: uint8 images, NHWC, at the training size. The
normalisation the pipeline applies before the network is part of the exported graph, so no
consumer has to find it in our code (the resize is named in the ONNX metadata)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from visionops.export.classifier import EMBEDDING, LOGITS
from visionops.models.zoo import classifier_head

INPUT_SPEC = "uint8 [batch, height, width, channels] (RGB or grey, 0-255), resized as `resize` says"


class Deployable(nn.Module):
    """uint8 NHWC images -> (logits, embedding) of `model`, with (pixel/255 - mean) / std
    inside. The embedding is what the class head reads (its input, flattened): monitoring
    tests it for drift (issue 35), and consumers that want the logits alone take output 0."""

    output_names = (LOGITS, EMBEDDING)

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.model = model
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std_t))
        self.register_buffer("shift", mean_t / std_t)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heard: list[torch.Tensor] = []
        hook = classifier_head(self.model).register_forward_pre_hook(lambda _, args: heard.append(args[0]))
        try:
            logits = self.model(x.permute(0, 3, 1, 2).float() * self.scale - self.shift)
        finally:
            hook.remove()  # the hook lives for this call only: the model stays as it was
        embedding = heard[0] if len(heard) == 1 else torch.stack(heard).mean(0)  # TTA: the views' mean
        return logits, embedding.flatten(1)


def onnx_metadata(meta: dict[str, Any], resize: str) -> dict[str, Any]:
    """What a consumer needs to feed the exported graph, as ONNX metadata_props."""
    task = {key: meta[key] for key in ("classes", "image_size", "channels", "mean", "std")}
    return task | {"input": INPUT_SPEC, "resize": resize, "normalization": "inside the graph"}
