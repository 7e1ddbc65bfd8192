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
    """Whether the new version becomes champion, and every reason that decided it.
    `comparison` is the paired evidence (see evaluation/paired.py), None when it is missing."""

    promote: bool
    metric: str
    value: float | None
    champion_version: str | None
    champion_value: float | None
    reasons: list[str] = field(default_factory=list)
    comparison: dict[str, Any] | None = None


def decide(
    comparison: dict[str, Any] | None,
    min_delta: float,
    max_p_value: float,
    validation_ok: bool,
    parity_ok: bool,
) -> GateDecision:
    """Pure gate logic: validation and export parity passed, and on the same test images the
    challenger beats the reference (the champion, or with none the trivial baseline) by at least
    min_delta with a paired test p-value at most max_p_value."""
    if comparison is None:
        decision = GateDecision(False, "", None, None, None)
        decision.reasons.append(
            "no paired comparison (MLflow was unreachable when register ran): re-run "
            "`dvc repro --single-item --force register` to decide"
        )
        return decision
    version = comparison.get("champion_version")
    metric, value, reference = comparison["metric"], comparison["challenger"], comparison["reference"]
    decision = GateDecision(False, metric, value, version, reference if version else None, [], comparison)
    if not validation_ok:
        decision.reasons.append("data validation had critical failures")
    if not parity_ok:
        decision.reasons.append("ONNX export parity check failed")
    against = f"champion v{version}" if version else "the trivial baseline (always the most frequent class)"
    delta, p_value = value - reference, comparison["p_value"]
    better = delta > 0 and delta >= min_delta
    significant = p_value <= max_p_value
    verdict = "beats" if better and significant else "does not beat"
    decision.reasons.append(
        f"{metric} {value:.4f} {verdict} {against} {reference:.4f} on the same {comparison['n']} test "
        f"images ({delta:+.4f}, need >= {min_delta} and > 0); right only here {comparison['challenger_only']}"
        f", only there {comparison['reference_only']}: McNemar p = {p_value:.3g} (need <= {max_p_value})"
    )
    decision.promote = better and significant and validation_ok and parity_ok
    return decision


def log_image_model(onnx_path: Path, spec: dict[str, Any]) -> Any:
    """Log the deployable model to the active run: an MLflow pyfunc from code (`spec` from
    export/packaging.pyfunc_spec) that takes encoded image bytes, with the ONNX file as its
    artifact, a signature and an input example."""
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
        artifacts={"onnx": str(onnx_path)},
        code_paths=spec["code_paths"],
        signature=signature,
        input_example=example,
        pip_requirements=spec["pip_requirements"],
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
    """(version, local ONNX file) of the champion of `name`, or None when there is none."""
    import mlflow

    version = champion_version(name)
    if version is None:
        return None
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=str(into)))
    found = sorted(local.rglob("*.onnx"))
    if not found:
        raise FileNotFoundError(f"champion v{version} of '{name}' has no ONNX file in {local}")
    return version, found[0]


def apply_aliases(name: str, version: str, decision: GateDecision) -> None:
    """Move `candidate` to `version` unless a newer version has it; move `champion` too when
    the gate passed and the champion it was compared with still holds the alias (concurrent
    experiments); tag the decision and its paired evidence."""
    import mlflow

    client = mlflow.MlflowClient()
    newest = _alias_version(name, CANDIDATE)
    if newest is None or int(newest) < int(version):
        client.set_registered_model_alias(name, CANDIDATE, version)
    if decision.promote:
        now = champion_version(name)
        if now != decision.champion_version:  # another experiment moved it since the comparison
            decision.promote = False
            decision.reasons.append(
                f"meanwhile v{now} became champion: re-run `dvc repro --single-item --force register` "
                "to compare with it"
            )
        else:
            client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, "gate.promoted", str(decision.promote).lower())
    client.set_model_version_tag(name, version, "gate.reasons", "; ".join(decision.reasons))
    client.set_model_version_tag(name, version, "gate.decision", json.dumps(decision_record(decision)))
    for key, value in (decision.comparison or {}).items():
        client.set_model_version_tag(name, version, f"gate.{key}", str(value))


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
