"""What a training run is built from, shared by the train stage and `visionops tune`: the model's
recipe and the train/validation parts of the prepared training split."""

from __future__ import annotations

from typing import Any

from visionops.config import ModelParams, TrainParams
from visionops.data.loader import ImageBatches, choose_resident
from visionops.data.prepared import Prepared, PreparedMeta, train_val_split
from visionops.device import DeviceSetup


def model_spec(model_cfg: ModelParams, meta: PreparedMeta) -> dict[str, Any]:
    """The JSON-able recipe `create_model` builds the network from (also saved with it)."""
    return {
        "arch": model_cfg.arch,
        "in_channels": meta.channels,
        "num_classes": len(meta.classes),
        "image_size": meta.image_size,
        "width": model_cfg.width,
        "dropout": model_cfg.dropout,
        "pretrained": model_cfg.pretrained,
    }


def train_and_val(data: Prepared, cfg: TrainParams, setup: DeviceSetup) -> tuple[ImageBatches, ImageBatches]:
    """The training part and the held-out validation part of train (never the test split): on
    the GPU when the split fits train.device_memory_budget_mb, else streamed batch by batch."""
    train, meta = data.train, data.meta
    resident = choose_resident(train.x.nbytes, setup.device, cfg.device_memory_budget_mb)
    train_set, val_set = (
        ImageBatches(train.x, train.y, meta.mean, meta.std, setup.device, rows, resident)
        for rows in train_val_split(train, cfg.val_fraction, cfg.seed)
    )
    return train_set, val_set
