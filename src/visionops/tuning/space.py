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


def apply(sections: dict[str, Section], values: dict[str, Any]) -> dict[str, Section]:
    """`sections` with the trial's `values` ({"train.lr": 0.01}) put in, each section validated."""
    updated = dict(sections)
    for name in {key.split(".", 1)[0] for key in values}:
        changes = {key.split(".", 1)[1]: value for key, value in values.items() if key.startswith(f"{name}.")}
        updated[name] = SECTIONS[name].model_validate(sections[name].model_dump() | changes)
    return updated
