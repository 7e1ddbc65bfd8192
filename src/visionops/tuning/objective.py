"""One trial of a study: draw the values, train through the train stage's own code on the
training part of the prepared data, report each epoch's validation accuracy to the pruner and
log it all to the trial's MLflow run. The test split is never touched."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from visionops.data.prepared import Prepared
from visionops.errors import VisionOpsError
from visionops.interrupts import raise_if_interrupted
from visionops.tuning.mlflow_runs import child_run, end_child
from visionops.tuning.space import apply, suggest

if TYPE_CHECKING:
    from visionops.tuning.study import StudyPlan


class StudyFull(Exception):
    """A trial started after the study's last trials were taken by other workers: not run."""


def is_surplus(trial, total: int) -> bool:
    """Would this trial exceed the study's `total`? Trials that finished (complete or pruned) or
    are running with a lower number come first: the storage numbers trials once each, so two
    workers starting together never both take the last place."""
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return (
        sum(t.number < trial.number for t in trial.study.get_trials(deepcopy=False, states=states)) >= total
    )


class Objective:
    """One trial: draw values, train, report each epoch's validation accuracy to the pruner,
    and log it all to a child MLflow run."""

    def __init__(self, plan: StudyPlan, data: Prepared, parent: dict[str, str]) -> None:
        self.plan, self.data, self.parent = plan, data, parent

    def __call__(self, trial) -> float:
        raise_if_interrupted()  # a Ctrl-C that came between trials: before this one's run exists
        if is_surplus(trial, self.plan.tune.trials):  # other workers already run the last ones
            trial.study.stop()
            raise StudyFull(f"trial {trial.number}: the study's {self.plan.tune.trials} trials are taken")
        values = {key: suggest(dimension, trial, key) for key, dimension in self.plan.tune.space.items()}
        child = child_run(self.parent, self.plan.name, trial.number, values)
        try:
            best = self._train(trial, values, child)
        except BaseException as exc:
            end_child(child, exc)
            raise
        if best is None:  # diverged: the trial fails, the study goes on
            return math.nan
        end_child(child, None, best)
        return best

    def _train(self, trial, values: dict[str, Any], child: str) -> float | None:
        import mlflow
        import optuna
        import torch

        from visionops.device import resolve_device
        from visionops.training.loop import fit
        from visionops.training.setup import build_model, model_spec, train_and_val

        sections = apply(self.plan.sections, values)
        cfg = sections["train"]
        setup = resolve_device(cfg.device, cfg.amp, cfg.channels_last)
        train_set, val_set = train_and_val(self.data, cfg, setup)
        torch.manual_seed(cfg.seed)
        model = build_model(model_spec(sections["model"], self.data.meta), train_set)
        client = mlflow.MlflowClient()

        def on_epoch(row: dict[str, Any]) -> None:
            epoch, accuracy = row["epoch"], row["val_accuracy"]
            metrics = {k: float(v) for k, v in row.items() if k in ("train_loss", "val_loss", "val_accuracy")}
            for key, value in metrics.items():
                client.log_metric(child, key, value, step=epoch)
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"val_accuracy {accuracy:.4f} at epoch {epoch}: pruned")

        try:
            history = fit(model, train_set, val_set, cfg, setup, on_epoch=on_epoch, progress=False)
        except VisionOpsError as exc:
            if "diverged" not in str(exc):
                raise
            end_child(child, exc)
            print(f"tune: trial {trial.number} failed: {exc}")
            return None
        return max(row["val_accuracy"] for row in history)
