"""Structured channel pruning with torch-pruning's dependency graph: the network really shrinks."""

from __future__ import annotations

import torch
from torch import nn

from visionops.models.zoo import classifier_head


def prune_channels(model: nn.Module, example: torch.Tensor, ratio: float, round_to: int = 1) -> nn.Module:
    """Remove `ratio` of the channels of every prunable layer (L2 magnitude), head kept intact.

    `round_to` keeps channel counts multiples of N: INT8 and tensor-core kernels are much
    faster on widths like 8 or 16 than on odd ones."""
    import torch_pruning as tp

    if ratio <= 0:
        return model
    model.eval()
    pruner = tp.pruner.BasePruner(
        model,
        example,
        importance=tp.importance.MagnitudeImportance(p=2),
        pruning_ratio=ratio,
        ignored_layers=[classifier_head(model)],
        round_to=round_to if round_to > 1 else None,
    )
    pruner.step()
    return model


def count_macs_params(model: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    """(multiply-accumulates, parameters) for one forward pass of `example`."""
    import torch_pruning as tp

    model.eval()
    macs, params = tp.utils.count_ops_and_params(model, example)
    return int(macs), int(params)
