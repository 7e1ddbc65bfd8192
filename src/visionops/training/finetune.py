"""Recover accuracy after pruning: a short run of the train stage's own loop on the training
part of train (optionally distilling from the unpruned teacher)."""

from __future__ import annotations

import copy

from torch import nn

from visionops.config import CompressParams, TrainParams
from visionops.data.loader import ImageBatches, choose_resident
from visionops.data.prepared import Prepared, train_val_split
from visionops.device import resolve_device
from visionops.training.distill import Distillation
from visionops.training.loop import fit


def finetune(
    model: nn.Module, data: Prepared, cfg: CompressParams, train_cfg: TrainParams, teacher: nn.Module | None
) -> None:
    """`cfg.finetune_epochs` at `cfg.finetune_lr` with train_cfg's recipe, in place; the
    model ends on the CPU in eval mode."""
    if cfg.finetune_epochs == 0:
        return
    setup = resolve_device(train_cfg.device, train_cfg.amp, train_cfg.channels_last)
    rows, _ = train_val_split(data.train, train_cfg.val_fraction, train_cfg.seed)
    resident = choose_resident(data.train.x.nbytes, setup.device, train_cfg.device_memory_budget_mb)
    train_set = ImageBatches(
        data.train.x, data.train.y, data.meta.mean, data.meta.std, setup.device, rows, resident
    )
    tune = train_cfg.model_copy(update={"epochs": cfg.finetune_epochs, "lr": cfg.finetune_lr})
    distill = None
    if teacher is not None:
        distill = Distillation(copy.deepcopy(teacher), cfg.distill_temperature, cfg.distill_alpha)
    fit(model, train_set, None, tune, setup, distill=distill)
    model.cpu().eval()
