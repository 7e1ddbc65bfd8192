"""Optimizer, learning-rate schedule and weight EMA, built from the train params."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from visionops.config import TrainParams


def build_optimizer(model: nn.Module, cfg: TrainParams) -> torch.optim.Optimizer:
    """AdamW, or SGD with Nesterov momentum; no weight decay on BatchNorm weights or biases."""
    groups = _param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainParams, steps_per_epoch: int):
    """Per-step schedule: OneCycle, or linear warm-up then cosine decay to zero."""
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total)
    warmup = min(total - 1, round(cfg.warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def build_ema(model: nn.Module, decay: float):
    """An exponential moving average of the weights (and BN buffers), or None when decay is 0."""
    if decay <= 0:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
