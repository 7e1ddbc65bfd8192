"""From `tune.space` to a trial's params: draw each key's value (Optuna's suggest API) and put
the values into the train and model sections, validated as params.yaml would be."""

from __future__ import annotations

from typing import Any

from visionops.config import SECTIONS, Dimension, Section


def suggest(dimension: Dimension, trial, key: str) -> Any:
    """Draw `dimension`'s value for `trial` (an optuna.Trial), recorded under `key`."""
    if dimension.choice is not None:
        return trial.suggest_categorical(key, dimension.choice)
    if dimension.int_uniform is not None:
        return trial.suggest_int(key, *dimension.int_uniform)
    low, high = dimension.log_uniform or dimension.uniform
    return trial.suggest_float(key, low, high, log=dimension.log_uniform is not None)


PLAUSIBLE_LR = 10.0  # no optimizer here trains above this (SGD's one-cycle peaks ~0.4-2)


def implausible(space: dict[str, Dimension]) -> list[str]:
    """Warnings for a search range no model trains in (its trials diverge or stay at chance):
    an lr range up to 10,000 once recommended an lr of 6,292 without a word."""
    dimension = space.get("train.lr")
    if dimension is None:
        return []
    values = dimension.choice or dimension.log_uniform or dimension.uniform or []
    top = max((v for v in values if isinstance(v, int | float)), default=0.0)
    if top <= PLAUSIBLE_LR:
        return []
    return [
        f"tune.space's train.lr reaches {top:g}: above {PLAUSIBLE_LR:g} trials diverge or stay at "
        "chance; a range such as log_uniform: [1.0e-4, 1.0] is what optimizers here train in"
    ]


def apply(sections: dict[str, Section], values: dict[str, Any]) -> dict[str, Section]:
    """`sections` with the trial's `values` ({"train.lr": 0.01}) put in, each section validated."""
    updated = dict(sections)
    for name in {key.split(".", 1)[0] for key in values}:
        changes = {key.split(".", 1)[1]: value for key, value in values.items() if key.startswith(f"{name}.")}
        updated[name] = SECTIONS[name].model_validate(sections[name].model_dump() | changes)
    return updated
