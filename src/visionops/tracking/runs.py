"""Where the MLflow store is, and helpers every stage's logging uses (params, lineage tags).

Tracking URI: MLFLOW_TRACKING_URI when set, else a SQLite store in the project root with
artifacts in mlartifacts/. Always set explicitly: MLflow 3's implicit default also creates
./mlruns, and an old ./mlruns flips it to the deprecated file store.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from visionops.tracking.record import StageLog


def project_root() -> Path:
    """Where the project's MLflow store lives: DVC_ROOT, which DVC sets for every stage and
    points at the parent repository for `dvc exp run --temp/--queue` (whose stages run in a
    throw-away copy); the working directory otherwise."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def default_uri(project_root: Path) -> str:
    """The project's own store: sqlite:///<project>/mlflow.db."""
    return f"sqlite:///{Path(project_root).resolve() / 'mlflow.db'}"


def tracking_uri(project_root: Path) -> str:
    """MLFLOW_TRACKING_URI, else the project's SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_uri(project_root)


def configure(project_root: Path) -> str:
    """Point MLflow (tracking and registry) at the project's store; return the URI.

    MLflow's SQL store logs every database error with a traceback before raising it; the
    stage reports the error itself (as a message with a fix, or re-raised in full), so that
    duplicate is silenced."""
    import logging

    import mlflow

    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    uri = tracking_uri(project_root)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def open_store(project_root: Path) -> str:
    """`configure`, then open the store under `io.sqlite_creation_lock`: processes starting
    together on a new SQLite store (`visionops tune` workers) wait for the one creating it."""
    import mlflow

    from visionops.io import sqlite_creation_lock

    uri = configure(project_root)
    with sqlite_creation_lock(uri):
        mlflow.MlflowClient().search_experiments(max_results=1)
    return uri


EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}  # the UI opens on runs


def experiment_id(name: str, project_root: Path) -> str:
    """Get or create the experiment, tagged as model development (else MLflow 3's UI opens
    it on the GenAI overview); a local store keeps artifacts in <project>/mlartifacts."""
    import mlflow

    client = mlflow.MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is not None:
        if "mlflow.experimentKind" not in found.tags:  # made by an older visionops
            client.set_experiment_tag(found.experiment_id, *next(iter(EXPERIMENT_KIND.items())))
        return found.experiment_id
    location = None
    # Not os.environ: mlflow.set_tracking_uri() itself exports MLFLOW_TRACKING_URI.
    if mlflow.get_tracking_uri() == default_uri(project_root):
        location = (Path(project_root).resolve() / "mlartifacts").as_uri()
    try:
        return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)
    except mlflow.exceptions.MlflowException:  # a concurrent stage created it first
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def log_params(run_id: str, params: dict[str, Any]) -> list[str]:
    """Log params, skipping ones already logged with the same value.

    MLflow forbids changing a logged param; a downstream param edited after training is
    recorded as a tag `param_changed.<key>` instead. Returns the changed keys.
    """
    import mlflow

    client = mlflow.MlflowClient()
    existing = client.get_run(run_id).data.params
    new = {k: _text(v) for k, v in params.items() if k not in existing}
    changed = {k: _text(v) for k, v in params.items() if k in existing and existing[k] != _text(v)}
    if new:
        mlflow.log_params(new)
    for key, value in changed.items():
        mlflow.set_tag(f"param_changed.{key}", f"{existing[key]} -> {value}")
    return sorted(changed)


def log_metrics_once(run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
    """Log metrics, skipping (key, step) pairs the run already has."""
    import mlflow

    client = mlflow.MlflowClient()
    if step is None:
        existing = client.get_run(run_id).data.metrics
        new = {k: float(v) for k, v in metrics.items() if k not in existing}
    else:
        new = {
            k: float(v)
            for k, v in metrics.items()
            if not any(m.step == step for m in client.get_metric_history(run_id, k))
        }
    if new:
        mlflow.log_metrics(new, step=step)


def log_plain(run_id: str, files: dict[str, Path], values: StageLog) -> None:
    """Params, metrics, tags and artifacts: what evaluate, compress and export log."""
    import mlflow

    log_params(run_id, values.params)
    log_metrics_once(run_id, values.metrics)
    if values.tags:
        mlflow.set_tags(values.tags)
    for key, path in files.items():
        folder = values.artifact_dirs[key]
        if Path(path).is_dir():
            mlflow.log_artifacts(str(path), folder)
        else:
            mlflow.log_artifact(str(path), folder)


def _text(value: Any) -> str:
    return str(value)[:6000]


def lineage_tags(params: dict[str, Any]) -> dict[str, str]:
    """Host and a hash of the params; the data is identified by the caller's
    `dataset.fingerprint` (sha256 of the prepared arrays), not by reading DVC's lock file."""
    import hashlib
    import json
    import socket

    return {
        "host": socket.gethostname(),
        "params.hash": hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16],
    }


def git_tags(project_root: Path, entry_point: str) -> dict[str, str]:
    """MLflow's own source tags (the UI's Source and Version columns: `entry_point`, the commit,
    the repository when it has a remote) plus the branch and whether the checkout was dirty.
    Without git, only the source name and type."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=project_root, capture_output=True, text=True, check=False)
        return out.stdout.strip() if out.returncode == 0 else ""

    tags = {
        "mlflow.source.name": entry_point,
        "mlflow.source.type": "JOB" if os.environ.get("CI") else "LOCAL",
    }
    commit = git("rev-parse", "HEAD")
    if not commit:
        return tags
    tags |= {
        "mlflow.source.git.commit": commit,
        "mlflow.source.git.branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "git.dirty": str(bool(git("status", "--porcelain", "--untracked-files=no"))).lower(),
    }
    if remote := git("remote", "get-url", "origin"):
        tags["mlflow.source.git.repoURL"] = remote
    return tags
