"""Optimizer, learning-rate schedule and weight EMA, built from the train params."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from visionops.config import TrainParams


def build_optimizer(model: nn.Module, cfg: TrainParams) -> torch.optim.Optimizer:
    """AdamW, or SGD with Nesterov momentum; no weight decay on BatchNorm weights or biases,
    whose biases learn `bn_bias_lr_scale` times faster (a group of their own when not 1)."""
    groups = _param_groups(model, cfg.weight_decay, cfg.lr, cfg.bn_bias_lr_scale)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainParams, steps_per_epoch: int):
    """Per-step schedule: OneCycle, or linear warm-up then cosine decay to zero."""
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "onecycle":  # each group's own peak: the BN biases' is scaled
        peaks = [group["lr"] for group in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=total)
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


def _param_groups(
    model: nn.Module, weight_decay: float, lr: float, bn_bias_scale: float
) -> list[dict[str, Any]]:
    decay = [p for p in model.parameters() if p.ndim > 1]
    bn_biases = {id(m.bias) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    apart = bn_biases if bn_bias_scale != 1.0 else set()
    no_decay = [p for p in model.parameters() if p.ndim <= 1 and id(p) not in apart]
    groups = [
        {"params": decay, "weight_decay": weight_decay, "lr": lr},
        {"params": no_decay, "weight_decay": 0.0, "lr": lr},
    ]
    if apart:
        biases = [p for p in model.parameters() if id(p) in apart]
        groups.append({"params": biases, "weight_decay": 0.0, "lr": lr * bn_bias_scale})
    return groups
