"""Logits over a split the way training feeds it (device-resident or streamed batches, mixed
precision, channels-last): training's validation each epoch. Predictions that leave the
pipeline (evaluate's, the gate's, predict's, the served model's) go through
`export.classifier.Classifier`."""

from __future__ import annotations

import contextlib

import torch

from visionops.data.loader import ImageBatches
from visionops.device import DeviceSetup


@torch.no_grad()
def predict_logits(model, data: ImageBatches, batch_size: int, setup: DeviceSetup) -> torch.Tensor:
    """Float32 logits for every image of `data`, in order (batches streamed or resident)."""
    model.eval()
    out = []
    for images, _ in data.batches(batch_size):
        inputs = data.normalize(images).contiguous(memory_format=memory_format(setup))
        with autocast(setup):
            out.append(model(inputs).float())
    return torch.cat(out)


def autocast(setup: DeviceSetup):
    """The setup's mixed-precision context (a no-op in fp32)."""
    if setup.amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=setup.device.type, dtype=setup.amp_dtype)


def memory_format(setup: DeviceSetup) -> torch.memory_format:
    return torch.channels_last if setup.channels_last else torch.contiguous_format
