"""Trains simple_cnn on digits with visionops' fit(); run directly (1 process) or under
torchrun (DDP, gloo on CPU). Rank 0 writes a JSON result to argv[1]; other ranks write nothing."""

import json
import sys

import numpy as np
import torch

from visionops.augment.pack import pixel_sums
from visionops.config import TrainParams
from visionops.data.digits import load_digits_images
from visionops.data.loader import ImageBatches
from visionops.data.split import stratified_split
from visionops.device import resolve_device
from visionops.inference import predict_logits
from visionops.models.zoo import create_model
from visionops.training.distributed import init_from_env, shutdown
from visionops.training.loop import fit


def main(out: str) -> None:
    dist = init_from_env()
    images, labels, _ = load_digits_images()
    train_idx, test_idx = stratified_split(labels, 0.2, 0)
    x = images[..., None]
    mean, std = pixel_sums(x[train_idx]).mean_std()
    setup = resolve_device("cpu", amp=False)
    train = ImageBatches(x[train_idx], labels[train_idx], mean, std, setup.device)
    test = ImageBatches(x[test_idx], labels[test_idx], mean, std, setup.device)
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
