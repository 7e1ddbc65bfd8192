"""Log a stage to its model's MLflow run without ever losing it.

Every stage writes its DVC outputs first and then calls `track`. Earlier deferred entries
are replayed first (so the run receives everything in pipeline order); when MLflow is
unreachable after its own retries, the stage's log goes to the journal, and the stage
either fails with that said (`tracking.on_unavailable: fail`) or succeeds (`defer`).
`python -m visionops sync` replays the journal.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any

from visionops.config import TrackingParams
from visionops.errors import VisionOpsError, first_line
from visionops.tracking import journal
from visionops.tracking.availability import (
    access_problem,
    apply_http_settings,
    is_outage,
    is_unavailable,
    raise_store_problem,
    store_problem,
)
from visionops.tracking.record import StageLog
from visionops.tracking.runs import configure, experiment_id, project_root, tracking_uri


def new_run(cfg: TrackingParams, run_name: str | None, root: Path | None = None) -> dict[str, Any]:
    """Create the model's run; in an outage return a pending record the journal resolves later."""
    import mlflow

    root = root or project_root()
    uri = configure(root)
    apply_http_settings(cfg)
    record = {"experiment": cfg.experiment, "tracking_uri": uri, "run_name": run_name}
    try:
        run = mlflow.MlflowClient().create_run(experiment_id(cfg.experiment, root), run_name=run_name)
    except Exception as exc:
        is_outage(exc, uri)  # anything else is raised
        print(f"warning: MLflow at {uri} is unreachable; training goes on and its log is kept for replay")
        return record | {"run_id": None, "pending_id": uuid.uuid4().hex}
    return record | {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id}


def track(
    stage: str,
    record: dict[str, Any],
    files: dict[str, Path],
    values: StageLog,
    cfg: TrackingParams,
    root: Path | None = None,
) -> Any:
    """Log one stage (see stage_logs.logger_for) to the record's run; returns the logger's result,
    or None when the log was deferred."""
    root = root or project_root()
    uri = configure(root)
    apply_http_settings(cfg)
    try:
        sync(root, quiet=True)
        return log_stage(stage, record, files, values, root)
    except Exception as exc:
        if not is_unavailable(exc):
            refused = access_problem(exc, uri)
            if refused is None:
                raise_store_problem(exc, uri)
            entry = journal.defer(root, stage, record, files, values)  # replayed once allowed
            raise VisionOpsError(
                f"{refused.cause}. The stage's outputs are written and its log is kept in {entry}",
                f"{refused.fix}, then run `python -m visionops sync`",
            ) from None
        entry = journal.defer(root, stage, record, files, values)
        reason = first_line(exc, 300)
        if cfg.on_unavailable == "defer":
            print(
                f"[{stage}] warning: MLflow at {uri} is unreachable ({reason}); the log is kept in "
                f"{entry} and `python -m visionops sync` replays it"
            )
            return None
        raise VisionOpsError(
            f"MLflow at {uri} is unreachable ({reason}). The stage's outputs are written and its "
            f"log is kept in {entry}",
            "start the tracking server, run `python -m visionops sync`, then `dvc commit` "
            "(or set tracking.on_unavailable: defer to carry on through outages)",
        ) from None


def log_stage(stage: str, record: dict[str, Any], files: dict[str, Path], values: StageLog, root: Path):
    """Open the record's run (creating it for a pending record) and run the stage's logger."""
    import mlflow

    from visionops.tracking.stage_logs import logger_for

    run_id = journal.resolved_run_id(root, record)
    if run_id is None:
        exp = experiment_id(record["experiment"], root)
        run_id = mlflow.MlflowClient().create_run(exp, run_name=record.get("run_name")).info.run_id
        journal.remember_run(root, record["pending_id"], run_id)
    before = _run_status(run_id, record, root)
    mlflow.start_run(run_id=run_id)
    try:
        mlflow.set_tag("visionops.last_stage", stage)
        result = logger_for(stage)(run_id, dict(files), values)
    except BaseException:
        # a stage that fails to log (a refused name, a lost permission) does not re-judge the
        # model: a finished run stays as it was; a run still training ends FAILED as before
        with contextlib.suppress(Exception):  # the store may be what failed
            mlflow.end_run(status=before if before in TERMINAL else "FAILED")
        raise
    mlflow.end_run()
    return result


TERMINAL = ("FINISHED", "FAILED", "KILLED")


def _run_status(run_id: str, record: dict[str, Any], root: Path) -> str:
    """The run's status; a run id from models/run.json that the store does not know: say where
    to look."""
    import mlflow

    try:
        return mlflow.MlflowClient().get_run(run_id).info.status
    except Exception as exc:
        if is_unavailable(exc) or store_problem(exc, tracking_uri(root)):
            raise
        now, then = tracking_uri(root), record.get("tracking_uri")
        if then and then != now:
            fix = f"the run was logged to {then}: set MLFLOW_TRACKING_URI={then} (or re-train)"
        else:
            fix = (
                "this store no longer has the run (it was replaced, or the run deleted): re-train "
                "with `dvc repro -f train` to start a new run, or restore the store from a backup"
            )
        raise VisionOpsError(
            f"MLflow run {run_id} (from models/run.json) is not in the tracking store {now}", fix
        ) from None


def sync(root: Path | None = None, quiet: bool = False) -> list[tuple[str, Any]]:
    """Replay every journal entry in order; an entry is removed only once fully logged."""
    root = root or project_root()
    configure(root)
    replayed = []
    for entry in journal.entries(root):
        result = log_stage(entry.stage, entry.record, entry.files, entry.values, root)
        journal.done(entry)
        replayed.append((entry.stage, result))
        if not quiet:
            print(f"sync: replayed {entry.stage} into {tracking_uri(root)}")
    return replayed
