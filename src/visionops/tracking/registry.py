"""The model registry: log the deployable model to the run, register a version, move the
aliases as the register stage's gate decided, find and download the champion.

`candidate` always moves to the new version; `champion` only when the gate passes. Only the
register stage runs this (stage_logs loads `log_register` by name), so the other stages do
not depend on it in dvc.yaml.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from visionops.config import TrackingParams
from visionops.tracking.record import StageLog

CANDIDATE = "candidate"
CHAMPION = "champion"


MODEL_ARTIFACTS = ("onnx", "reference")  # files the model version carries (register's keys)
# the reports the gate decided on: carried inside the version too, so its file manifest seals them
# (the run's copies stay writable by anyone with EDIT on the experiment)
EVIDENCE = ("evaluation", "export_report", "summary")
LOGGED_BY_THEIR_STAGES = ("evaluation", "export_report")  # already in the run: not logged again


def log_image_model(artifacts: dict[str, Path], spec: dict[str, Any]) -> Any:
    """Log the deployable model to the active run: an MLflow pyfunc from code (`spec` from
    serving/packaging.pyfunc_spec) that takes encoded image bytes, with `artifacts` (the ONNX
    file; the monitoring reference folder) inside it, a signature and an input example."""
    import base64

    import mlflow
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    signature = ModelSignature(
        inputs=Schema([ColSpec("binary", "image")]),
        outputs=Schema(
            [ColSpec("string", "label"), ColSpec("long", "index"), ColSpec("double", "probability")]
        ),
    )
    example = pd.DataFrame({"image": [base64.b64decode(spec["example_png_b64"])]})
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=spec["python_model"],
        artifacts={key: str(path) for key, path in artifacts.items()},
        code_paths=spec["code_paths"],
        signature=signature,
        input_example=example,
        pip_requirements=spec["pip_requirements"],
    )


def register_version(model_uri: str, name: str, tags: dict[str, str], description: str):
    """Register `model_uri` as a new version of `name`, with tags and a description."""
    import mlflow

    from visionops.tracking.availability import is_unavailable

    client = mlflow.MlflowClient()
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException as exc:
        if is_unavailable(exc):
            raise
        try:
            client.create_registered_model(name, description="visionops image classifier")
        except mlflow.exceptions.MlflowException:  # a concurrent experiment created it first
            client.get_registered_model(name)
    version = mlflow.register_model(model_uri, name, tags=tags)
    client.update_model_version(name, version.version, description=description)
    return version


def champion_version(name: str) -> str | None:
    """The version holding the champion alias, if any; an outage raises (never read as "none")."""
    import mlflow

    from visionops.tracking.availability import is_unavailable

    try:
        return str(mlflow.MlflowClient().get_model_version_by_alias(name, CHAMPION).version)
    except mlflow.exceptions.MlflowException as exc:
        if is_unavailable(exc):
            raise
        return None


def download_champion(name: str, into: Path) -> tuple[str, Path] | None:
    """(version, local ONNX file) of the champion of `name`, or None when there is none. Its
    files are checked against the hashes recorded when it was registered before any is used."""
    from visionops.tracking.version_files import download_verified

    version = champion_version(name)
    if version is None:
        return None
    fetched = download_verified(f"models:/{name}/{version}", into)  # the gate loads its ONNX file only
    for warning in fetched.warnings:
        print(f"register: warning: {warning}")
    found = sorted(fetched.local.rglob("*.onnx"))
    if not found:
        raise FileNotFoundError(f"champion v{version} of '{name}' has no ONNX file in {fetched.local}")
    return version, found[0]


def find_champion(name: str, into: Path, cfg: TrackingParams) -> tuple[bool, tuple[str, Path] | None]:
    """(reachable, champion): the champion of `name` downloaded into `into` as (version, ONNX
    file), None when there is none; (False, None) when the store is unreachable, so the
    caller defers the decision. A store that refuses or is damaged raises with the fix."""
    from visionops.tracking.availability import apply_http_settings, is_outage
    from visionops.tracking.runs import configure, project_root

    uri = configure(project_root())
    apply_http_settings(cfg)
    try:
        return True, download_champion(name, into)
    except Exception as exc:
        is_outage(exc, uri)  # anything else is raised
        print(f"register: MLflow at {uri} is unreachable: the champion cannot be compared now")
        return False, None


def apply_aliases(name: str, version: str, decision: dict[str, Any]) -> dict[str, Any]:
    """Move `candidate` to the newest version (`version`, unless another is newer); `champion` too when
    the gate's `decision` (gate/decision.decision_record) promotes and the champion it was
    compared with still holds the alias (concurrent experiments); tag the decision and its
    paired evidence. Returns the decision as applied."""
    import mlflow

    decision = dict(decision, reasons=list(decision["reasons"]))
    client = mlflow.MlflowClient()
    # The newest version, not "ours unless newer": two experiments registering at once both
    # read the old alias and the slower one's write won (seen in test_experiments_e2e). Every
    # process creates its version before this line, so the last writer sets the true newest.
    newest = max(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
    client.set_registered_model_alias(name, CANDIDATE, str(max(newest, int(version))))
    if decision["promote"]:
        now = champion_version(name)
        if now != decision["champion_version"]:  # another experiment moved it since the comparison
            decision["promote"] = False
            decision["reasons"].append(
                f"meanwhile v{now} became champion: re-run `dvc repro --single-item --force register` "
                "to compare with it"
            )
        else:
            _move_champion(client, name, version, decision)
    for key, value in (decision["comparison"] or {}).items():
        client.set_model_version_tag(name, version, f"gate.{key}", str(value))
    client.set_model_version_tag(name, version, "gate.promoted", str(decision["promote"]).lower())
    client.set_model_version_tag(name, version, "gate.reasons", "; ".join(decision["reasons"]))
    # last: on the team server a decision with its comparison seals every gate.* tag
    client.set_model_version_tag(name, version, "gate.decision", json.dumps(decision))
    return decision


def _move_champion(client, name: str, version: str, decision: dict[str, Any]) -> None:
    """Point @champion at `version`. On a team server only the gate's identity may (MANAGE on
    the model: tracking/server_guard.py): anyone else's passing gate is recorded, not applied."""
    import os

    import mlflow

    try:
        client.set_registered_model_alias(name, CHAMPION, version)
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code != "PERMISSION_DENIED":
            raise
        user = os.environ.get("MLFLOW_TRACKING_USERNAME", "this user")
        decision["promote"] = False
        decision["reasons"].append(
            f"the gate passed, but '{user}' may not move @champion on this server (only the gate's "
            "identity, e.g. CI's login, with MANAGE on the model: `team_stack.py grant USER --gate`)"
        )


def version_of_run(name: str, run_id: str) -> dict[str, Any] | None:
    """The registry record of the version already registered from `run_id`, if any (so a
    replayed register stage does not register twice)."""
    import mlflow

    client = mlflow.MlflowClient()
    found = client.search_model_versions(f"name = '{name}' AND run_id = '{run_id}'")
    if not found:
        return None
    version = client.get_model_version(name, found[0].version)
    aliases = sorted(version.aliases, key=lambda a: a != CANDIDATE)
    return {
        "model_name": name,
        "run_id": run_id,
        "version": int(version.version),
        "model_uri": version.source,
        "aliases": aliases,
        "promoted": CHAMPION in aliases,
        "decision": json.loads(version.tags.get("gate.decision", "{}")),
    }


def log_register(run_id: str, files: dict[str, Path], values: StageLog) -> dict[str, Any]:
    """The data reports and pipeline files, the ONNX model, then a registered version with
    the aliases the gate's decision (`values.registration.decision`) gives. Returns the registry record
    the register stage writes."""
    from visionops.tracking.runs import log_plain

    # the ONNX model is required; the reference is absent from journal entries made before it
    carried = {"onnx": files["onnx"]} | {
        key: files[key] for key in MODEL_ARTIFACTS + EVIDENCE if key in files
    }
    plain = {key: path for key, path in files.items() if key not in MODEL_ARTIFACTS + LOGGED_BY_THEIR_STAGES}
    log_plain(run_id, plain, values)
    reg = values.registration
    cfg, metrics, decision = reg.settings, reg.evaluation, reg.decision
    existing = version_of_run(cfg["model_name"], run_id)
    if existing is not None:
        if existing["decision"].get("comparison") is not None or decision["comparison"] is None:
            return existing
        apply_aliases(cfg["model_name"], str(existing["version"]), decision)  # decided at last
        return version_of_run(cfg["model_name"], run_id)
    import tempfile

    from visionops.tracking.version_files import record_files

    logged = log_image_model(carried, reg.pyfunc)
    with tempfile.TemporaryDirectory(prefix="visionops-register-") as tmp:
        sealed = record_files(run_id, logged.model_uri, logged.model_id, Path(tmp))
    tags = {
        "run_id": run_id,
        "validation.success": str(reg.validation_ok).lower(),
        "export.parity": str(reg.parity_ok).lower(),
        **reg.hashes,  # the exact model.pt and ONNX behind this version
        **sealed,  # every file of the logged model, checked before any use (version_files.py)
        **{f"metric.{k}": str(v) for k, v in metrics.items()},
    }
    description = (
        f"{reg.source} classifier, {cfg['gate_metric']}={metrics[cfg['gate_metric']]:.4f}; "
        f"run {run_id}; gate: {'; '.join(decision['reasons'])}"
    )
    version = register_version(logged.model_uri, cfg["model_name"], tags, description)
    applied = apply_aliases(cfg["model_name"], version.version, decision)
    return {
        "model_name": cfg["model_name"],
        "run_id": run_id,
        "version": int(version.version),
        "model_uri": logged.model_uri,
        "aliases": [CANDIDATE] + ([CHAMPION] if applied["promote"] else []),
        "promoted": applied["promote"],
        "decision": applied,
    }
