"""What a training run is built from, shared by the train stage and `visionops tune`: the model's
recipe and the train/validation parts of the prepared training split."""

from __future__ import annotations

from typing import Any

from torch import nn

from visionops.config import ModelParams, TrainParams
from visionops.data.loader import ImageBatches, choose_resident
from visionops.data.prepared import Prepared, PreparedMeta, train_val_split
from visionops.device import DeviceSetup

RECIPE_KEYS = ("logit_scale", "tta", "whiten_init", "dirac_init")  # saved only when not the default


def model_spec(model_cfg: ModelParams, meta: PreparedMeta) -> dict[str, Any]:
    """The JSON-able recipe `create_model` builds the network from (also saved with it). The
    fast-training options appear only when set, so a model trained without them keeps its bytes."""
    recipe = {
        key: getattr(model_cfg, key)
        for key in RECIPE_KEYS
        if getattr(model_cfg, key) != ModelParams.model_fields[key].default
    }
    return {
        "arch": model_cfg.arch,
        "in_channels": meta.channels,
        "num_classes": len(meta.classes),
        "image_size": meta.image_size,
        "width": model_cfg.width,
        "dropout": model_cfg.dropout,
        "pretrained": model_cfg.pretrained,
    } | recipe


WHITENING_IMAGES = 5000  # airbench94 whitens from 5,000 training images


def build_model(spec: dict[str, Any], train: ImageBatches) -> nn.Module:
    """The network to train: `create_model(spec)`, then, with whiten_init, its first conv set
    from the patches of up to 5,000 training images, evenly spaced over the split (prepared
    splits are stored class by class: the first 5,000 could all be one class)."""
    import numpy as np
    import torch

    from visionops.models.recipe import whiten_first_conv_
    from visionops.models.zoo import create_model

    model = create_model(spec)
    if spec.get("whiten_init"):
        rows = np.unique(np.linspace(0, len(train) - 1, min(WHITENING_IMAGES, len(train))).astype(int))
        sample = torch.from_numpy(train.gather(rows))
        images = train.normalize(sample.to(train.device).permute(0, 3, 1, 2)).cpu()
        set_filters = whiten_first_conv_(model, images)
        print(f"train: first conv whitened from {len(images)} images ({set_filters} filters)")
    return model


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
