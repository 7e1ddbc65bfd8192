"""Structured channel pruning with torch-pruning's dependency graph: the network really shrinks."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from visionops.models.zoo import classifier_head


def prune_channels(model: nn.Module, example: torch.Tensor, ratio: float, round_to: int = 1) -> nn.Module:
    """Remove `ratio` of the channels of every prunable layer (L2 magnitude) in one step."""
    prune_iteratively(model, example, ratio, round_to=round_to)
    return model


def prune_iteratively(
    model: nn.Module,
    example: torch.Tensor,
    ratio: float,
    steps: int = 1,
    target_macs_ratio: float | None = None,
    global_pruning: bool = False,
    round_to: int = 1,
    after_step: Callable[[nn.Module], None] | None = None,
) -> list[dict[str, float]]:
    """Prune towards `ratio` in `steps` equal steps (torch-pruning's iterative schedule),
    calling `after_step` (a fine-tune) after each; stop early once MACs <= target_macs_ratio
    of the start. The classifier head is never pruned; `round_to` keeps channel counts
    multiples of N (INT8 and tensor-core kernels are much faster on such widths).
    Returns one row per step: step, pruning ratio reached, MACs and parameter ratios."""
    import torch_pruning as tp

    if ratio <= 0:
        return []
    base_macs, base_params = count_macs_params(model, example)
    pruner = tp.pruner.BasePruner(
        model.eval(),
        example,
        importance=tp.importance.MagnitudeImportance(p=2),
        pruning_ratio=ratio,
        iterative_steps=steps,
        global_pruning=global_pruning,
        ignored_layers=[classifier_head(model)],
        round_to=round_to if round_to > 1 else None,
    )
    log = []
    for step in range(1, steps + 1):
        pruner.step()
        macs, params = count_macs_params(model, example)
        log.append(
            {
                "step": step,
                "ratio": ratio * step / steps,
                "macs_ratio": macs / base_macs,
                "params_ratio": params / base_params,
            }
        )
        if after_step is not None:
            after_step(model)
            model.cpu().eval()
        if target_macs_ratio is not None and macs <= target_macs_ratio * base_macs:
            break
    return log


def count_macs_params(model: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    """(multiply-accumulates, parameters) for one forward pass of `example`."""
    import torch_pruning as tp

    model.eval()
    macs, params = tp.utils.count_ops_and_params(model, example)
    return int(macs), int(params)
