"""A study in MLflow: one parent run per study (search space, best value and params, Optuna's
history and importance plots), one child run per trial (params, per-epoch validation metrics,
state: complete, pruned or failed). Whoever creates the study creates the parent; its id is a
study user attribute, so every worker and a resumed process log under it."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visionops.tuning.storage import retried

if TYPE_CHECKING:
    from visionops.tuning.study import StudyPlan

PARENT_ATTR = "mlflow_parent_run_id"  # study user attribute: the study's MLflow run
PARENT_WAIT_S = 60  # how long a joining worker waits for the creator's parent run id


def parent_run(study, plan: StudyPlan, root: Path, created: bool) -> dict[str, str]:
    """The study's MLflow run, RUNNING while trials run: made by the process that created the
    study; a joining process (another worker, a resumed study) uses the id the study records."""
    import mlflow

    from visionops.tracking.runs import experiment_id, open_store

    open_store(root)
    client = mlflow.MlflowClient()
    experiment = experiment_id(plan.sections["tracking"].experiment, root)
    run_id = None if created else _recorded_parent(study)
    if run_id is None:  # a new study, or its creator died before recording the run
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


def _recorded_parent(study) -> str | None:
    """The parent run id the study records, waiting up to PARENT_WAIT_S for its creator."""
    deadline = time.monotonic() + PARENT_WAIT_S
    while True:
        run_id = study.user_attrs.get(PARENT_ATTR)
        if run_id is not None or time.monotonic() > deadline:
            return run_id
        time.sleep(0.5)


def end_parent_run(study, parent: dict[str, str], status: str) -> None:
    """Best value and params, the history and importance plots (Optuna's matplotlib ones), and
    the run's end status."""
    import mlflow
    from optuna.trial import TrialState

    client = mlflow.MlflowClient()
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if complete:
        best, run_id = study.best_trial, parent["run_id"]
        retried(lambda: client.log_metric(run_id, "best_val_accuracy", best.value), RACE, pause_s=0.1)
        for key, value in best.params.items():
            tag = f"best.{key}"
            retried(lambda tag=tag, value=value: client.set_tag(run_id, tag, str(value)), RACE, pause_s=0.1)
        _log_plots(study, client, parent["run_id"], len(complete))
    client.set_terminated(parent["run_id"], status)


# SQLite's and PostgreSQL's words for an insert that lost a race on a unique key. Workers that
# stop together each end the study's run: MLflow's set_tag (and a metric's latest value) is a
# select then an insert, so the slower insert fails; tried again, it updates the row the other
# wrote (seen in a fresh-clone run of the two-process test).
RACE = ("UNIQUE constraint failed", "duplicate key value")


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


def child_run(parent: dict[str, str], study_name: str, number: int, values: dict[str, Any]) -> str:
    """A trial's run under the study's: its params and number."""
    import mlflow

    client = mlflow.MlflowClient()
    tags = {"mlflow.parentRunId": parent["run_id"], "visionops.study": study_name}
    run = client.create_run(parent["experiment_id"], run_name=f"trial {number}", tags=tags)
    for key, value in values.items():
        client.log_param(run.info.run_id, key, value)
    client.log_param(run.info.run_id, "trial", number)
    return run.info.run_id


def end_child(run_id: str, error: BaseException | None, best: float | None = None) -> None:
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
