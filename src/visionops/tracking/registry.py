"""Models in MLflow: log the PyTorch and ONNX models and the training data to the run,
register a version, move the aliases.

`candidate` always moves to the new version; `champion` only when the gate passes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CANDIDATE = "candidate"
CHAMPION = "champion"


@dataclass
class GateDecision:
    """Whether the new version becomes champion, and every reason that decided it."""

    promote: bool
    metric: str
    value: float
    champion_version: str | None
    champion_value: float | None
    reasons: list[str] = field(default_factory=list)


def decide(
    metric: str,
    value: float,
    min_delta: float,
    champion: tuple[str, float | None] | None,
    validation_ok: bool,
    parity_ok: bool,
) -> GateDecision:
    """Pure gate logic: validation passed, export parity passed, and the metric beats the champion."""
    version, best = champion if champion is not None else (None, None)
    decision = GateDecision(False, metric, value, version, best)
    if not validation_ok:
        decision.reasons.append("data validation had critical failures")
    if not parity_ok:
        decision.reasons.append("ONNX export parity check failed")
    if champion is None:
        beats = True
        decision.reasons.append("no champion yet")
    elif best is None:
        beats = True
        decision.reasons.append(f"champion v{version} has no '{metric}' tag")
    else:
        beats = value > best and value - best >= min_delta
        verb = "beats" if beats else "does not beat"
        decision.reasons.append(f"{metric} {value:.4f} {verb} champion v{version} {best:.4f} (+{min_delta})")
    decision.promote = beats and validation_ok and parity_ok
    return decision


def log_onnx_model(onnx_path: Path, example: Any) -> Any:
    """Log the ONNX file as an `mlflow.onnx` model (CPU provider, signature) to the active run."""
    import mlflow
    import onnx
    import onnxruntime
    from mlflow.models import infer_signature

    from visionops.export.runtime import cpu_session, run_session

    outputs = run_session(cpu_session(onnx_path, threads=1), example)
    return mlflow.onnx.log_model(
        onnx_model=onnx.load(str(onnx_path)),
        name="model",
        signature=infer_signature(example, outputs),
        onnx_execution_providers=["CPUExecutionProvider"],
        pip_requirements=[f"onnx=={onnx.__version__}", f"onnxruntime=={onnxruntime.__version__}"],
    )


def log_pytorch_model(model: Any, example: Any) -> Any:
    """Log the PyTorch model (MLflow 3 pt2 format) with a signature; the example has batch >= 2,
    since a batch-1 example would freeze the batch dimension in the exported program."""
    import mlflow
    import torch
    from mlflow.models import infer_signature

    model = model.cpu().eval()
    with torch.no_grad():
        outputs = model(torch.from_numpy(example)).numpy()
    return mlflow.pytorch.log_model(
        model,
        name="pytorch_model",
        signature=infer_signature(example, outputs),
        input_example=example,
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],  # skips ~5 s of inference
    )


def log_dataset(images: Any, labels: Any, name: str, digest: str, source: str, rows: int) -> None:
    """Record the training data as the run's input: a small sample of it (`images`, `labels`)
    for the schema, and the digest of the whole prepared data, which ties the run to it."""
    import mlflow

    dataset = mlflow.data.from_numpy(
        features=images, targets=labels, name=name, digest=digest[:36], source=source
    )
    tags = {"rows": str(rows), "sample_rows": str(len(labels)), "pixels": "in DVC: data/prepared"}
    mlflow.log_input(dataset, context="training", tags=tags)


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


def current_champion(name: str, metric: str) -> tuple[str, float | None] | None:
    """(version, its gate-metric tag) of the version holding the champion alias, if any."""
    import mlflow

    from visionops.tracking.availability import is_unavailable

    client = mlflow.MlflowClient()
    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException as exc:
        if is_unavailable(exc):  # "no champion" must never be concluded from an outage
            raise
        return None
    value = version.tags.get(f"metric.{metric}")
    return version.version, float(value) if value is not None else None


def apply_aliases(name: str, version: str, decision: GateDecision) -> None:
    """Move `candidate` to `version` unless a newer version has it; move `champion` too when
    the gate passed and no better champion appeared meanwhile (concurrent experiments);
    tag the decision."""
    import mlflow

    client = mlflow.MlflowClient()
    newest = _alias_version(name, CANDIDATE)
    if newest is None or int(newest) < int(version):
        client.set_registered_model_alias(name, CANDIDATE, version)
    if decision.promote:
        now = current_champion(name, decision.metric)
        if now and now[0] != decision.champion_version and now[1] is not None and now[1] >= decision.value:
            decision.promote = False
            decision.reasons.append(f"meanwhile v{now[0]} became champion with {now[1]:.4f}")
        else:
            client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, "gate.promoted", str(decision.promote).lower())
    client.set_model_version_tag(name, version, "gate.reasons", "; ".join(decision.reasons))
    client.set_model_version_tag(name, version, "gate.decision", json.dumps(decision_record(decision)))


def _alias_version(name: str, alias: str) -> str | None:
    import mlflow

    try:
        return mlflow.MlflowClient().get_model_version_by_alias(name, alias).version
    except mlflow.exceptions.MlflowException:
        return None


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


def decision_record(decision: GateDecision) -> dict[str, Any]:
    """JSON-able form of the decision."""
    return asdict(decision)
