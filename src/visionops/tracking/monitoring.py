"""Monitoring checks in MLflow: one run per check in the monitoring experiment, tagged with the
model's name and version (so the UI lists and charts one model's checks), its numbers as
metrics and its report and plot as artifacts. Plain values in, like every tracking module."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

MODEL_NAME_TAG, MODEL_VERSION_TAG, VERDICT_TAG = "model.name", "model.version", "monitor.verdict"


def log_check(
    experiment: str,
    tags: dict[str, str],
    params: dict[str, Any],
    metrics: dict[str, float],
    files: list[Path],
    run_name: str | None = None,
) -> str:
    """Log one check as a finished run named `run_name`; returns its id. Any store failure
    raises, as a message with its cause (the caller then writes nothing)."""
    import mlflow

    from visionops.config import TrackingParams
    from visionops.errors import VisionOpsError, first_line
    from visionops.tracking.availability import apply_http_settings, store_problem
    from visionops.tracking.runs import configure, experiment_id, project_root

    uri = configure(project_root())
    if "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ:  # a dead server: seconds, not minutes
        apply_http_settings(TrackingParams())
    try:
        experiment_at = experiment_id(experiment, project_root())
        with mlflow.start_run(experiment_id=experiment_at, run_name=run_name, tags=tags) as run:
            mlflow.log_params(params)
            mlflow.log_metrics(metrics)
            for path in files:
                mlflow.log_artifact(str(path))
            return run.info.run_id
    except Exception as exc:
        problem = store_problem(exc, uri)
        if problem is not None:
            raise problem from None
        raise VisionOpsError(
            f"the check could not be logged to MLflow at {uri} ({first_line(exc)}); nothing was written",
            "start the tracking server (or check MLFLOW_TRACKING_URI) and run the check again, "
            "or pass --no-track to keep it local",
        ) from None
