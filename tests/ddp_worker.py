"""Trains simple_cnn on digits with visionops' fit(); run directly (1 process) or under
torchrun (DDP, gloo on CPU). Rank 0 writes a JSON result to argv[1]; other ranks write nothing."""

import json
import sys

import numpy as np
import torch

from visionops.augment.pack import channel_stats
from visionops.config import TrainParams
from visionops.data.digits import load_digits_images
from visionops.data.split import stratified_split
from visionops.models.zoo import create_model
from visionops.training.batches import DeviceDataset
from visionops.training.device import resolve_device
from visionops.training.distributed import init_from_env, shutdown
from visionops.training.loop import fit, predict_logits


def main(out: str) -> None:
    dist = init_from_env()
    images, labels, _ = load_digits_images()
    train_idx, test_idx = stratified_split(labels, 0.2, 0)
    x = images[..., None]
    mean, std = channel_stats(x[train_idx])
    setup = resolve_device("cpu", amp=False)
    train = DeviceDataset(x[train_idx], labels[train_idx], mean, std, setup.device)
    test = DeviceDataset(x[test_idx], labels[test_idx], mean, std, setup.device)
    torch.manual_seed(0)
    model = create_model(
        {"arch": "simple_cnn", "in_channels": 1, "num_classes": 10, "width": 16, "dropout": 0.0}
    )
    history = fit(
        model, train, None, TrainParams(epochs=4, lr=0.01, batch_size=64), setup, progress=False, dist=dist
    )
    accuracy = (predict_logits(model, test, 256, setup).argmax(1) == test.labels).float().mean().item()
    if dist.main:
        seen = [round(r["images_per_s"] * r["seconds"]) for r in history]
        with open(out, "w") as fh:
            json.dump(
                {
                    "world": dist.world,
                    "accuracy": accuracy,
                    "images_per_epoch": seen,
                    "checksum": float(np.sum([p.detach().sum().item() for p in model.parameters()])),
                },
                fh,
            )
    shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
