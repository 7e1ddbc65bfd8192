"""The training loop, in the flat style of torchvision's references/classification.

`fit` is shared by the train stage and by the compress stage's fine-tune.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from visionops.config import TrainParams
from visionops.errors import VisionOpsError
from visionops.training.batches import DeviceDataset, augment_batch
from visionops.training.device import DeviceSetup

EpochCallback = Callable[[dict[str, Any]], None]


def fit(
    model: nn.Module,
    train: DeviceDataset,
    val: DeviceDataset | None,
    cfg: TrainParams,
    setup: DeviceSetup,
    on_epoch: EpochCallback | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train for cfg.epochs with AdamW + OneCycle; keep the weights of the best val epoch.

    Returns one history row per epoch (losses, accuracies, lr, images/s, seconds).
    """
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    model.to(setup.device, memory_format=_memory_format(setup))
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr)
    steps = cfg.epochs * math.ceil(len(train) / cfg.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=steps)
    scaler = torch.amp.GradScaler(enabled=setup.amp_dtype == torch.float16)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    history: list[dict[str, Any]] = []
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    for epoch in range(1, cfg.epochs + 1):
        row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
        row |= train_one_epoch(
            model,
            criterion,
            optimizer,
            scheduler,
            scaler,
            train,
            cfg,
            setup,
            generator,
            epoch,
            progress,
        )
        if val is not None and len(val):
            row |= {f"val_{k}": v for k, v in evaluate(model, criterion, val, cfg.batch_size, setup).items()}
            if best is None or row["val_accuracy"] > best[0]:
                best = (row["val_accuracy"], copy.deepcopy(model.state_dict()))
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
    if best is not None:
        model.load_state_dict(best[1])
    return history


def train_one_epoch(
    model, criterion, optimizer, scheduler, scaler, data, cfg, setup, generator, epoch, progress
) -> dict[str, float]:
    """One pass over `data` with on-device augmentation; stops on a non-finite loss."""
    from tqdm import tqdm

    model.train()
    total_loss, correct, seen, start = 0.0, 0, 0, time.perf_counter()
    n_batches = math.ceil(len(data) / cfg.batch_size)
    bar = tqdm(
        data.batches(cfg.batch_size, generator),
        total=n_batches,
        desc=f"epoch {epoch}/{cfg.epochs}",
        unit="batch",
        disable=None if progress else True,
        leave=False,
    )
    for step, (images, labels) in enumerate(bar, start=1):
        images = augment_batch(images, cfg.crop_padding, cfg.hflip, generator)
        inputs = data.normalize(images).contiguous(memory_format=_memory_format(setup))
        with _autocast(setup):
            logits = model(inputs)
            loss = criterion(logits, labels)
        if not torch.isfinite(loss):
            raise VisionOpsError(
                f"training diverged: loss is {loss.item()} at epoch {epoch}, step {step} "
                f"(lr {optimizer.param_groups[0]['lr']:.3g})",
                "lower train.lr (or raise train.weight_decay); the previous model file is untouched",
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        total_loss += loss.item() * len(labels)
        correct += (logits.argmax(1) == labels).sum().item()
        seen += len(labels)
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.3f}")
    seconds = time.perf_counter() - start
    return {
        "train_loss": total_loss / seen,
        "train_accuracy": correct / seen,
        "images_per_s": seen / seconds,
        "seconds": seconds,
    }


@torch.no_grad()
def evaluate(model, criterion, data: DeviceDataset, batch_size: int, setup: DeviceSetup) -> dict[str, float]:
    """Loss and accuracy over `data` (no augmentation)."""
    logits = predict_logits(model, data, batch_size, setup)
    loss = criterion(logits, data.labels).item()
    return {"loss": loss, "accuracy": (logits.argmax(1) == data.labels).float().mean().item()}


@torch.no_grad()
def predict_logits(model, data: DeviceDataset, batch_size: int, setup: DeviceSetup) -> torch.Tensor:
    """Float32 logits for every image of `data`, in order."""
    model.eval()
    out = []
    for images, _ in data.batches(batch_size):
        inputs = data.normalize(images).contiguous(memory_format=_memory_format(setup))
        with _autocast(setup):
            out.append(model(inputs).float())
    return torch.cat(out)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv/linear weights only, not on BatchNorm or biases."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _autocast(setup: DeviceSetup):
    if setup.amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=setup.device.type, dtype=setup.amp_dtype)


def _memory_format(setup: DeviceSetup) -> torch.memory_format:
    return torch.channels_last if setup.channels_last else torch.contiguous_format
