"""TPE seeded per trial: trial n draws from a sampler seeded from (tune.sampler_seed, n).

One seed per process would make every worker of a shared study draw the same random start-up
points (each process replays one random sequence); a seed per trial number keeps one process's
study reproducible and gives every worker different points, since trial numbers are handed out
by the study's storage, once each. `constant_liar` makes TPE treat the trials other workers are
running as poor results, so parallel workers do not crowd one region.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState


class TrialSeededTPE(BaseSampler):
    """Optuna's TPESampler, re-created for each trial with a seed drawn from (seed, trial number)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._tpe = self._sampler(0)

    def _sampler(self, number: int) -> TPESampler:
        with warnings.catch_warnings():  # constant_liar is "experimental" (since Optuna 2.8)
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            seed = int(np.random.SeedSequence([self.seed, number]).generate_state(1)[0])
            return TPESampler(seed=seed, constant_liar=True)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._tpe = self._sampler(trial.number)
        self._tpe.before_trial(study, trial)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._tpe.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._tpe.sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._tpe.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: list[float] | None
    ) -> None:
        self._tpe.after_trial(study, trial, state, values)
