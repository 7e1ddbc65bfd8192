"""An Optuna study over train.* and model.* params: TPE proposes, a median pruner stops trials
whose validation accuracy trails the median of earlier trials at the same epoch. Each trial
trains through the train stage's own code (`training.setup`, `training.loop.fit`) on the
training part of the prepared data and is scored on its validation part; the test split is
never touched (it judges the model `dvc repro` then makes from the winner, once, in the gate).

The study lives in Optuna's storage (any SQLAlchemy URL), so processes anywhere that open the
same study share its trials; `tune.trials` is the study's total, counted over all of them.
In MLflow: one parent run per study, one child run per trial (its params, per-epoch
validation metrics and state: complete, pruned or failed).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visionops.config import Section, TuneParams
from visionops.data.prepared import Prepared
from visionops.errors import VisionOpsError
from visionops.tuning.space import apply, suggest

PARENT_ATTR = "mlflow_parent_run_id"  # study user attribute: the study's MLflow run


@dataclass(frozen=True)
class StudyPlan:
    """Where the study lives and what it searches."""

    storage: str  # SQLAlchemy URL
    name: str
    tune: TuneParams
    sections: dict[str, Section]  # train, model, tracking: the defaults each trial starts from


def default_storage(root: Path) -> str:
    """A SQLite file in the project: <root>/.visionops/optuna.db."""
    folder = Path(root) / ".visionops"
    folder.mkdir(exist_ok=True)
    return f"sqlite:///{(folder / 'optuna.db').resolve()}"


# What a worker sees when another one creates the same new PostgreSQL storage at that moment
# (SQLite files are created under a lock instead).
CREATION_RACE = ("already exists", "alembic_version", "duplicate key")


def open_storage(url: str, attempts: int = 4):
    """Optuna's RDB storage at `url`, or a clear error before any training. A new SQLite file is
    created under `io.sqlite_creation_lock`; a worker that loses the race to create a new
    server-side storage tries again once the winner is done."""
    import optuna

    from visionops.io import sqlite_creation_lock

    attempt = 1
    while True:
        try:
            with warnings.catch_warnings(), sqlite_creation_lock(url):
                warnings.simplefilter("ignore")  # heartbeats are "experimental" (since Optuna 2.9)
                # a worker that dies without a word (kill -9, a lost machine) has its trial failed
                return optuna.storages.RDBStorage(url, heartbeat_interval=60, grace_period=180)
        except Exception as exc:  # a bad URL, a refused connection, a wrong password, the race
            if attempt < attempts and any(sign in str(exc) for sign in CREATION_RACE):
                time.sleep(attempt)
                attempt += 1
                continue
            raise VisionOpsError(
                f"cannot open the study storage {_redacted(url)}: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0]}",
                "give --storage a reachable SQLAlchemy URL (sqlite:///path/optuna.db, "
                "postgresql+psycopg://user:password@host/optuna), or leave it out for the project's "
                "SQLite file",
            ) from None


def _redacted(url: str) -> str:
    """The URL without its password."""
    head, sep, tail = url.rpartition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, credentials = head.partition("//")
    return f"{scheme}//{credentials.split(':', 1)[0]}:***@{tail}"


def run_study(plan: StudyPlan, data: Prepared, root: Path, progress: bool = True):
    """Run trials until the study holds `tune.trials` complete or pruned ones (or the timeout);
    returns the optuna.Study. Ctrl-C stops after the current epoch: that trial is failed, every
    MLflow run is ended (KILLED), and the same command resumes the study."""
    import optuna
    from optuna.trial import TrialState

    if plan.sections["train"].val_fraction <= 0:
        raise VisionOpsError(
            "tune scores every trial on the validation part of train, and train.val_fraction is 0",
            "set train.val_fraction to 0.1 or so (the test split is never used to choose)",
        )
    if not plan.tune.space:
        raise VisionOpsError(
            "tune.space in params.yaml is empty: there is nothing to search",
            "add keys such as `train.lr: {log_uniform: [1.0e-4, 3.0e-2]}` under tune.space",
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=open_storage(plan.storage),
        study_name=plan.name,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=plan.tune.sampler_seed),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=plan.tune.startup_trials, n_warmup_steps=plan.tune.warmup_epochs
        ),
        load_if_exists=True,
    )
    parent = _parent_run(study, plan, root)
    counted = (TrialState.COMPLETE, TrialState.PRUNED)
    done = len(study.get_trials(deepcopy=False, states=counted))
    print(f"tune: study '{plan.name}' in {_redacted(plan.storage)}: {done}/{plan.tune.trials} trials done")
    status = "KILLED"
    try:
        if done < plan.tune.trials:
            study.optimize(
                Objective(plan, data, parent),
                n_trials=plan.tune.trials - done,
                timeout=plan.tune.timeout_s,
                callbacks=[optuna.study.MaxTrialsCallback(plan.tune.trials, states=counted)],
                show_progress_bar=progress,
            )
        status = "FINISHED"
    finally:
        _end_parent(study, parent, status)
    return study


def _parent_run(study, plan: StudyPlan, root: Path) -> dict[str, str]:
    """The study's MLflow run: the one recorded in the study (a resumed study, another worker's
    study), else a new one; RUNNING while trials run."""
    import mlflow

    from visionops.tracking.runs import experiment_id, open_store

    open_store(root)
    client = mlflow.MlflowClient()
    experiment = experiment_id(plan.sections["tracking"].experiment, root)
    run_id = study.user_attrs.get(PARENT_ATTR)
    if run_id is None:
        run = client.create_run(
            experiment, run_name=f"tune: {plan.name}", tags={"visionops.study": plan.name}
        )
        run_id = run.info.run_id
        study.set_user_attr(PARENT_ATTR, run_id)
        space = {key: dim.model_dump(exclude_none=True) for key, dim in plan.tune.space.items()}
        client.log_dict(run_id, space, "search_space.json")
    else:
        client.update_run(run_id, status="RUNNING")
    return {"run_id": run_id, "experiment_id": experiment}


def _end_parent(study, parent: dict[str, str], status: str) -> None:
    """Best value and params, the history and importance plots (Optuna's matplotlib ones)."""
    import mlflow
    from optuna.trial import TrialState

    client = mlflow.MlflowClient()
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if complete:
        best = study.best_trial
        client.log_metric(parent["run_id"], "best_val_accuracy", best.value)
        for key, value in best.params.items():
            client.set_tag(parent["run_id"], f"best.{key}", str(value))
        _log_plots(study, client, parent["run_id"], len(complete))
    client.set_terminated(parent["run_id"], status)


def _log_plots(study, client, run_id: str, complete: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as views

    plots = {"optimization_history.png": views.plot_optimization_history}
    if complete >= 2 and len(study.best_trial.params) >= 1:
        plots["param_importances.png"] = views.plot_param_importances
    for name, plot in plots.items():
        try:
            with warnings.catch_warnings():  # "experimental" since Optuna 2.2; ties in importances
                warnings.simplefilter("ignore")
                axes = plot(study)
        except (ValueError, RuntimeError) as exc:  # e.g. importances of a parameter that never varied
            print(f"tune: {name} skipped: {exc}")
            continue
        client.log_figure(run_id, axes.figure, f"tune/{name}")
        plt.close(axes.figure)


class Objective:
    """One trial: draw values, train, report each epoch's validation accuracy to the pruner,
    and log it all to a child MLflow run."""

    def __init__(self, plan: StudyPlan, data: Prepared, parent: dict[str, str]) -> None:
        self.plan, self.data, self.parent = plan, data, parent

    def __call__(self, trial) -> float:
        values = {key: suggest(dimension, trial, key) for key, dimension in self.plan.tune.space.items()}
        child = self._child_run(trial.number, values)
        try:
            best = self._train(trial, values, child)
        except BaseException as exc:
            _end_child(child, exc)
            raise
        if best is None:  # diverged: the trial fails, the study goes on
            return math.nan
        _end_child(child, None, best)
        return best

    def _train(self, trial, values: dict[str, Any], child: str) -> float | None:
        import mlflow
        import optuna
        import torch

        from visionops.device import resolve_device
        from visionops.models.zoo import create_model
        from visionops.training.loop import fit
        from visionops.training.setup import model_spec, train_and_val

        sections = apply(self.plan.sections, values)
        cfg = sections["train"]
        setup = resolve_device(cfg.device, cfg.amp, cfg.channels_last)
        train_set, val_set = train_and_val(self.data, cfg, setup)
        torch.manual_seed(cfg.seed)
        model = create_model(model_spec(sections["model"], self.data.meta))
        client = mlflow.MlflowClient()

        def on_epoch(row: dict[str, Any]) -> None:
            epoch, accuracy = row["epoch"], row["val_accuracy"]
            metrics = {k: float(v) for k, v in row.items() if k in ("train_loss", "val_loss", "val_accuracy")}
            for key, value in metrics.items():
                client.log_metric(child, key, value, step=epoch)
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"val_accuracy {accuracy:.4f} below the median at epoch {epoch}")

        try:
            history = fit(model, train_set, val_set, cfg, setup, on_epoch=on_epoch, progress=False)
        except VisionOpsError as exc:
            if "diverged" not in str(exc):
                raise
            client.set_tag(child, "visionops.failure", str(exc))
            client.set_tag(child, "trial.state", "failed")
            client.set_terminated(child, "FAILED")
            print(f"tune: trial {trial.number} failed: {exc}")
            return None
        return max(row["val_accuracy"] for row in history)

    def _child_run(self, number: int, values: dict[str, Any]) -> str:
        import mlflow

        client = mlflow.MlflowClient()
        tags = {"mlflow.parentRunId": self.parent["run_id"], "visionops.study": self.plan.name}
        run = client.create_run(self.parent["experiment_id"], run_name=f"trial {number}", tags=tags)
        for key, value in values.items():
            client.log_param(run.info.run_id, key, value)
        client.log_param(run.info.run_id, "trial", number)
        return run.info.run_id


def _end_child(run_id: str, error: BaseException | None, best: float | None = None) -> None:
    """complete (FINISHED, with best_val_accuracy), pruned (FINISHED), failed (FAILED) or
    interrupted (KILLED): a trial's run never stays RUNNING."""
    import mlflow
    import optuna

    client = mlflow.MlflowClient()
    if error is None:
        client.log_metric(run_id, "best_val_accuracy", best)
        state, status = "complete", "FINISHED"
    elif isinstance(error, optuna.TrialPruned):
        state, status = "pruned", "FINISHED"
    elif isinstance(error, KeyboardInterrupt):
        state, status = "interrupted", "KILLED"
    else:
        state, status = "failed", "FAILED"
        client.set_tag(run_id, "visionops.failure", f"{type(error).__name__}: {error}"[:500])
    client.set_tag(run_id, "trial.state", state)
    client.set_terminated(run_id, status)
