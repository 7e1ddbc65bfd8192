"""Device choice, on-device batch augmentation, and the loop (accuracy, determinism, NaN stop)."""

import numpy as np
import pytest
import torch
from torch import nn

from visionops.config import TrainParams
from visionops.errors import VisionOpsError
from visionops.training.batches import DeviceDataset, augment_batch
from visionops.training.device import resolve_device
from visionops.training.loop import evaluate, fit


def test_auto_device_falls_back_to_cpu_without_amp():
    setup = resolve_device("auto")
    if not torch.cuda.is_available():
        assert setup.device.type == "cpu" and setup.amp_dtype is None and not setup.channels_last


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_gpu_is_a_clear_error():
    with pytest.raises(VisionOpsError, match=r"(?s)no CUDA GPU.*fix: set train.device: auto"):
        resolve_device("cuda")


def test_translate_moves_pixels_within_padding_and_flip_mirrors():
    images = torch.zeros(64, 1, 5, 5, dtype=torch.uint8)
    images[:, :, 2, 2] = 255
    moved = augment_batch(images, 1, False, torch.Generator().manual_seed(0))
    rows, cols = (moved[:, 0] == 255).nonzero()[:, 1:].T
    assert set(rows.tolist()) == {1, 2, 3} and set(cols.tolist()) == {1, 2, 3}
    assert (moved.flatten(1) == 255).sum(1).eq(1).all()  # no sample lost its pixel
    ramp = torch.arange(4, dtype=torch.uint8).repeat(32, 1, 4, 1)
    flipped = augment_batch(ramp, 0, True, torch.Generator().manual_seed(0))
    mirrored = (flipped == ramp.flip(3)).flatten(1).all(1)
    assert 0 < mirrored.sum() < 32 and ((flipped == ramp).flatten(1).all(1) | mirrored).all()


def _datasets(arrays):
    mean, std = [0.3], [0.3]
    device = torch.device("cpu")
    train = DeviceDataset(arrays["train_x"], arrays["train_y"], mean, std, device)
    test = DeviceDataset(arrays["test_x"], arrays["test_y"], mean, std, device)
    return train, test


def test_fit_learns_digits_and_is_deterministic(digits_arrays):
    from visionops.models.zoo import create_model

    spec = {"arch": "simple_cnn", "in_channels": 1, "num_classes": 10, "width": 16, "dropout": 0.0}
    train, test = _datasets(digits_arrays)
    cfg = TrainParams(epochs=3, lr=0.01)
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        model = create_model(spec)
        history = fit(model, train, test, cfg, resolve_device("cpu"), progress=False)
        results.append(evaluate(model, nn.CrossEntropyLoss(), test, 256, resolve_device("cpu")))
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert {"train_loss", "val_accuracy", "lr", "images_per_s"} <= set(history[0])
    assert results[0]["accuracy"] > 0.9
    assert results[0] == results[1]


class _Exploding(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(64, 10)

    def forward(self, x):
        return self.linear(x.flatten(1)) * float("nan")


def test_nan_loss_stops_with_epoch_step_and_lr(digits_arrays):
    train, _ = _datasets(digits_arrays)
    with pytest.raises(VisionOpsError, match=r"(?s)loss is nan at epoch 1, step 1 \(lr .*lower train.lr"):
        fit(_Exploding(), train, None, TrainParams(epochs=1), resolve_device("cpu"), progress=False)


def test_device_dataset_batches_cover_every_row_once(digits_arrays):
    train, _ = _datasets(digits_arrays)
    seen = torch.cat([labels for _, labels in train.batches(100, torch.Generator().manual_seed(1))])
    assert len(seen) == len(train)
    assert np.array_equal(np.sort(seen.numpy()), np.sort(digits_arrays["train_y"]))
