"""What each stage logs to its model's MLflow run, as functions of files and plain values.

Each logger can run twice on the same run without duplicating anything (params and
metrics already there are skipped, artifacts overwrite, models and versions are looked up
first), so a stage can log live, or be replayed from the journal after a tracking outage,
or both after a partial failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from visionops.tracking.runs import log_params

DATASET_SAMPLE = 64  # training images logged with the dataset input (schema and a look)


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


def _has_logged_model(run_id: str, name: str) -> bool:
    import mlflow

    experiment = mlflow.MlflowClient().get_run(run_id).info.experiment_id
    found = mlflow.search_logged_models(
        experiment_ids=[experiment],
        filter_string=f"source_run_id = '{run_id}' AND name = '{name}'",
        output_format="list",
    )
    return bool(found)


def log_train(run_id: str, files: dict[str, Path], values: dict[str, Any]) -> None:
    """Params, tags, per-epoch curves (from the history CSV), summary metrics, plots, the
    training data as the run's input, and the PyTorch model."""
    import mlflow
    import numpy as np
    import pandas as pd

    from visionops.data.prepared import open_prepared, to_model_input, train_val_split
    from visionops.models.serialize import load_model
    from visionops.tracking.registry import log_dataset, log_pytorch_model

    log_params(run_id, values["params"])
    mlflow.set_tags(values["tags"])
    for row in pd.read_csv(files["history"]).to_dict("records"):
        log_metrics_once(run_id, {k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
    log_metrics_once(run_id, values["metrics"])
    mlflow.log_artifact(str(files["curves"]), "train")
    mlflow.log_artifact(str(files["history"]), "train")
    if _has_logged_model(run_id, "pytorch_model"):
        return
    data = open_prepared(files["prepared"])
    rows, _ = train_val_split(data.train, values["val_fraction"], values["seed"])
    source = values["tags"]["dataset.source"]
    sample = rows[:DATASET_SAMPLE]  # the digest identifies the whole data; the pixels stay in DVC
    log_dataset(
        np.asarray(data.train.x[sample]),
        data.train.y[sample],
        f"{source}-prepared",
        values["data_id"],
        "data/prepared",
        rows=len(rows),
    )
    model, _ = load_model(files["model"])
    log_pytorch_model(model, to_model_input(data.test.x[:4], data.meta))


def log_plain(run_id: str, files: dict[str, Path], values: dict[str, Any]) -> None:
    """Params, metrics, tags and artifacts: what evaluate, compress and export log."""
    import mlflow

    log_params(run_id, values.get("params", {}))
    log_metrics_once(run_id, values.get("metrics", {}))
    if values.get("tags"):
        mlflow.set_tags(values["tags"])
    for key, path in files.items():
        folder = values["artifact_dirs"][key]
        if Path(path).is_dir():
            mlflow.log_artifacts(str(path), folder)
        else:
            mlflow.log_artifact(str(path), folder)


def log_register(run_id: str, files: dict[str, Path], values: dict[str, Any]) -> dict[str, Any]:
    """The data reports and pipeline files, the ONNX model, then a registered version with
    the gate's aliases. Returns the registry record the register stage writes."""
    from visionops.tracking import registry

    onnx_path = files.pop("onnx")
    log_plain(run_id, files, values)
    cfg, metrics = values["register"], values["eval"]
    existing = registry.version_of_run(cfg["model_name"], run_id)
    decision = registry.decide(
        values["comparison"],
        cfg["min_delta"],
        cfg["max_p_value"],
        values["validation_ok"],
        values["parity_ok"],
    )
    if existing is not None:
        if existing["decision"].get("comparison") is not None or values["comparison"] is None:
            return existing
        registry.apply_aliases(cfg["model_name"], str(existing["version"]), decision)  # decided at last
        return registry.version_of_run(cfg["model_name"], run_id)
    logged = registry.log_image_model(onnx_path, values["pyfunc"])
    tags = {
        "run_id": run_id,
        "validation.success": str(values["validation_ok"]).lower(),
        "export.parity": str(values["parity_ok"]).lower(),
        **{f"metric.{k}": str(v) for k, v in metrics.items()},
    }
    description = (
        f"{values['source']} classifier, {cfg['gate_metric']}={metrics[cfg['gate_metric']]:.4f}; "
        f"run {run_id}; gate: {'; '.join(decision.reasons)}"
    )
    version = registry.register_version(logged.model_uri, cfg["model_name"], tags, description)
    registry.apply_aliases(cfg["model_name"], version.version, decision)
    aliases = [registry.CANDIDATE] + ([registry.CHAMPION] if decision.promote else [])
    return {
        "model_name": cfg["model_name"],
        "run_id": run_id,
        "version": int(version.version),
        "model_uri": logged.model_uri,
        "aliases": aliases,
        "promoted": decision.promote,
        "decision": registry.decision_record(decision),
    }


LOGGERS = {
    "train": log_train,
    "evaluate": log_plain,
    "compress": log_plain,
    "export": log_plain,
    "register": log_register,
}
