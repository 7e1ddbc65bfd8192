"""The training loop, in the flat style of torchvision's references/classification.

`fit` is shared by the train stage and by the compress stage's fine-tune.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from visionops.config import TrainParams
from visionops.data.loader import ImageBatches
from visionops.device import DeviceSetup
from visionops.errors import VisionOpsError
from visionops.inference import autocast, memory_format, predict_logits
from visionops.interrupts import deferred_interrupts, raise_if_interrupted
from visionops.timings import mark
from visionops.training.batch_augment import alternating_flips, augment_batch
from visionops.training.checkpoint import load_checkpoint, restore_rng, rng_state, save_checkpoint
from visionops.training.distill import Distillation
from visionops.training.distributed import SINGLE_PROCESS, Dist, all_reduce_sum
from visionops.training.optim import build_ema, build_optimizer, build_scheduler

EpochCallback = Callable[[dict[str, Any]], None]


@dataclass
class Optimization:
    """What one optimisation step touches."""

    net: nn.Module  # the model as trained: maybe DDP-wrapped and/or compiled
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    ema: Any  # AveragedModel or None
    grad_clip: float
    distill: Distillation | None = None  # soft targets from a teacher (compress fine-tune)


def fit(
    model: nn.Module,
    train: ImageBatches,
    val: ImageBatches | None,
    cfg: TrainParams,
    setup: DeviceSetup,
    on_epoch: EpochCallback | None = None,
    progress: bool = True,
    checkpoint: Path | None = None,
    job: str = "",
    extras: dict[str, Any] | None = None,
    dist: Dist = SINGLE_PROCESS,
    distill: Distillation | None = None,
) -> list[dict[str, Any]]:
    """Train for cfg.epochs; keep the weights (or their EMA) of the best validation epoch.

    With `checkpoint`, the full training state is saved after every epoch and, when a
    checkpoint of the same `job` fingerprint exists, training resumes after its epoch and
    ends exactly as an uninterrupted run would (on CPU). Under torchrun (`dist`), the model is
    wrapped in DistributedDataParallel, each rank trains on its shard, metrics are summed
    across ranks and only rank 0 writes checkpoints. Returns one history row per epoch.
    """
    _set_determinism(cfg.deterministic)
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    model.to(setup.device, memory_format=memory_format(setup))
    if distill is not None:
        distill.teacher.to(setup.device, memory_format=memory_format(setup)).eval()
    batch_size = max(1, cfg.batch_size // dist.world)
    steps_per_epoch = math.ceil((len(train) // dist.world) / batch_size)
    optimizer = build_optimizer(model, cfg)
    opt = Optimization(
        net=_prepare_net(model, setup, dist, cfg.compile),
        criterion=nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing),
        optimizer=optimizer,
        scheduler=build_scheduler(optimizer, cfg, steps_per_epoch),
        scaler=torch.amp.GradScaler(enabled=setup.amp_dtype == torch.float16),
        ema=build_ema(model, cfg.ema_decay),
        grad_clip=cfg.grad_clip,
        distill=distill,
    )
    history: list[dict[str, Any]] = []
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    start = 1
    saved = load_checkpoint(checkpoint, job)
    if saved is not None:
        _restore(saved, model, opt, generator)
        history, best, start = saved["history"], saved["best"], saved["epoch"] + 1
        print(f"resuming from {checkpoint} after epoch {saved['epoch']}/{cfg.epochs}")
    with deferred_interrupts():  # SIGTERM waits for a safe point, never a write in progress
        for epoch in range(start, cfg.epochs + 1):
            row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
            row |= train_one_epoch(
                opt, train, cfg, setup, generator, epoch, progress and dist.main, batch_size, dist
            )
            scored = opt.ema.module if opt.ema is not None else model
            if val is not None and len(val):
                row |= {
                    f"val_{k}": v
                    for k, v in evaluate(scored, opt.criterion, val, cfg.batch_size, setup).items()
                }
                if best is None or row["val_accuracy"] > best[0]:
                    best = (row["val_accuracy"], copy.deepcopy(scored.state_dict()))
            history.append(row)
            if checkpoint is not None and dist.main:
                save_checkpoint(checkpoint, _state(job, epoch, model, opt, generator, history, best, extras))
            if on_epoch is not None:
                on_epoch(row)
            raise_if_interrupted()  # checkpoint and logs of this epoch are complete
            if _patience_exhausted(history, cfg.early_stopping_patience):
                print(
                    f"early stopping after epoch {epoch}: no val improvement in {cfg.early_stopping_patience}"
                )
                break
    if best is not None:
        model.load_state_dict(best[1])
    elif opt.ema is not None:
        model.load_state_dict(opt.ema.module.state_dict())
    return history


CUDA_SYNC_EVERY = 25  # steps between the host reading the loss on a GPU (each read waits for it)


def train_one_epoch(
    opt: Optimization,
    data: ImageBatches,
    cfg: TrainParams,
    setup: DeviceSetup,
    generator: torch.Generator,
    epoch: int,
    progress: bool,
    batch_size: int,
    dist: Dist = SINGLE_PROCESS,
) -> dict[str, float]:
    """One pass over this rank's shard with on-device augmentation; stops on a non-finite
    loss. Loss and accuracy are summed on the device and read every step on a CPU, every
    CUDA_SYNC_EVERY steps on a GPU (a read makes the host wait for the GPU to drain its
    queue). Loss, accuracy and images/s are summed over ranks."""
    from tqdm import tqdm

    opt.net.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=setup.device)
    correct_sum = torch.zeros((), dtype=torch.int64, device=setup.device)
    seen, start = 0, time.perf_counter()
    sync_every = sync_interval(setup.device)
    alternating = cfg.hflip == "alternating"
    plan = alternating_flips(len(data), cfg.seed, epoch) if alternating else None
    batches = data.batches(batch_size, generator, dist.rank, dist.world, positions=alternating)
    n_batches = math.ceil((len(data) // dist.world) / batch_size)
    bar = tqdm(
        batches,
        total=n_batches,
        desc=f"epoch {epoch}/{cfg.epochs}",
        unit="batch",
        disable=None if progress else True,
        leave=False,
    )
    for step, (images, labels, *where) in enumerate(bar, start=1):
        flips = plan[where[0]] if plan is not None else None
        images = augment_batch(images, cfg.crop_padding, cfg.hflip, generator, flips)
        inputs = data.normalize(images).contiguous(memory_format=memory_format(setup))
        with autocast(setup):
            logits = opt.net(inputs)
            loss = opt.criterion(logits, labels)
            if opt.distill is not None:
                loss = opt.distill(loss, logits, inputs)
        if step % sync_every == 0 or step == n_batches:
            _stop_if_diverged(loss_sum + loss.detach().double(), opt, epoch, step, sync_every)
        _step(opt, loss)
        mark("first_step", "train")  # benchmarks/first_epoch.py: time to the first training step
        raise_if_interrupted()
        loss_sum += loss.detach().double() * len(labels)
        correct_sum += (logits.argmax(1) == labels).sum()
        seen += len(labels)
        if step % sync_every == 0:
            bar.set_postfix(
                loss=f"{loss_sum.item() / seen:.4f}",
                acc=f"{correct_sum.item() / seen:.3f}",
                lr=f"{opt.optimizer.param_groups[0]['lr']:.2e}",
                img_s=f"{seen / (time.perf_counter() - start):.0f}",
            )
    total_loss, correct = loss_sum.item(), correct_sum.item()  # waits for the epoch's last step
    seconds = time.perf_counter() - start
    total_loss, correct, seen = all_reduce_sum([total_loss, correct, seen], setup.device)
    return {
        "train_loss": total_loss / seen,
        "train_accuracy": correct / seen,
        "images_per_s": seen / seconds,
        "seconds": seconds,
    }


def sync_interval(device: torch.device) -> int:
    """Steps between reads of the loss: on a CPU a read costs nothing, on a GPU it stalls."""
    return CUDA_SYNC_EVERY if device.type == "cuda" else 1


def _stop_if_diverged(running: torch.Tensor, opt: Optimization, epoch: int, step: int, every: int) -> None:
    """Raise when the running loss sum (this step's loss included) is not finite: a non-finite
    loss since the last check. Checked before the step's update."""
    if torch.isfinite(running):
        return
    where = f"step {step}" if every == 1 else f"by step {step} (checked every {every} steps on the GPU)"
    raise VisionOpsError(
        f"training diverged: loss is {running.item()} at epoch {epoch}, {where} "
        f"(lr {opt.optimizer.param_groups[0]['lr']:.3g})",
        "lower train.lr (or set train.grad_clip); the previous model file is untouched",
    )


def _step(opt: Optimization, loss: torch.Tensor) -> None:
    opt.optimizer.zero_grad(set_to_none=True)
    opt.scaler.scale(loss).backward()
    if opt.grad_clip > 0:
        opt.scaler.unscale_(opt.optimizer)
        nn.utils.clip_grad_norm_(opt.net.parameters(), opt.grad_clip)
    opt.scaler.step(opt.optimizer)
    opt.scaler.update()
    opt.scheduler.step()
    if opt.ema is not None:
        opt.ema.update_parameters(opt.net.module if hasattr(opt.net, "module") else opt.net)


@torch.no_grad()
def evaluate(model, criterion, data: ImageBatches, batch_size: int, setup: DeviceSetup) -> dict[str, float]:
    """Loss and accuracy over `data` (no augmentation)."""
    logits = predict_logits(model, data, batch_size, setup)
    loss = criterion(logits, data.labels).item()
    return {"loss": loss, "accuracy": (logits.argmax(1) == data.labels).float().mean().item()}


def _prepare_net(model: nn.Module, setup: DeviceSetup, dist: Dist, compile_model: bool) -> nn.Module:
    net = model
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [torch.cuda.current_device()] if setup.device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=device_ids)
    return torch.compile(net) if compile_model else net


def _state(job, epoch, model, opt: Optimization, generator, history, best, extras) -> dict[str, Any]:
    return {
        "fingerprint": job,
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": opt.optimizer.state_dict(),
        "scheduler": opt.scheduler.state_dict(),
        "scaler": opt.scaler.state_dict(),
        "ema": opt.ema.state_dict() if opt.ema is not None else None,
        "rng": rng_state(generator),
        "history": history,
        "best": best,
        "extras": extras or {},
    }


def _restore(saved: dict[str, Any], model: nn.Module, opt: Optimization, generator: torch.Generator) -> None:
    model.load_state_dict(saved["model"])
    opt.optimizer.load_state_dict(saved["optimizer"])
    opt.scheduler.load_state_dict(saved["scheduler"])
    opt.scaler.load_state_dict(saved["scaler"])
    if opt.ema is not None and saved.get("ema") is not None:
        opt.ema.load_state_dict(saved["ema"])
    restore_rng(generator, saved["rng"])


def _patience_exhausted(history: list[dict[str, Any]], patience: int) -> bool:
    if patience == 0 or "val_accuracy" not in history[-1]:
        return False
    scores = [row["val_accuracy"] for row in history]
    return len(scores) - 1 - scores.index(max(scores)) >= patience


def _set_determinism(on: bool) -> None:
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(on)
