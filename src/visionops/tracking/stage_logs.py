"""What each stage logs to its model's MLflow run, as functions of files and plain values.

Each logger can run twice on the same run without duplicating anything (params and
metrics already there are skipped, artifacts overwrite, models and versions are looked up
first), so a stage can log live, or be replayed from the journal after a tracking outage,
or both after a partial failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from visionops.tracking.record import StageLog
from visionops.tracking.runs import log_metrics_once, log_params, log_plain


def _has_logged_model(run_id: str, name: str) -> bool:
    import mlflow

    experiment = mlflow.MlflowClient().get_run(run_id).info.experiment_id
    found = mlflow.search_logged_models(
        experiment_ids=[experiment],
        filter_string=f"source_run_id = '{run_id}' AND name = '{name}'",
        output_format="list",
    )
    return bool(found)


def log_train(run_id: str, files: dict[str, Path], values: StageLog) -> None:
    """Params, tags, per-epoch curves (from the history CSV), summary metrics, plots, the
    training data as the run's input (`dataset_sample`: an .npz of sample images, labels and
    a model input example) and the PyTorch model (`program`: a torch.export .pt2 file)."""
    import mlflow
    import numpy as np
    import pandas as pd

    log_params(run_id, values.params)
    mlflow.set_tags(values.tags)
    for row in pd.read_csv(files["history"]).to_dict("records"):
        log_metrics_once(run_id, {k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
    log_metrics_once(run_id, values.metrics)
    mlflow.log_artifact(str(files["curves"]), "train")
    mlflow.log_artifact(str(files["history"]), "train")
    if _has_logged_model(run_id, "pytorch_model"):
        return
    dataset = values.dataset
    with np.load(files["dataset_sample"]) as sample:
        images, labels, example = sample["images"], sample["labels"], sample["example"]
    log_dataset(images, labels, dataset.name, dataset.digest, dataset.source, dataset.rows)
    log_pytorch_model(files["program"], example)


def log_pytorch_model(program: Path, example: Any) -> Any:
    """Log the PyTorch model, a torch.export program file (so no model code is imported
    here), with a signature; the example has batch >= 2 so the batch dimension stays dynamic."""
    import mlflow
    import torch
    from mlflow.models import infer_signature

    model = torch.export.load(str(program)).module()  # already in inference form: no .eval()
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
    tags = {"rows": str(rows), "sample_rows": str(len(labels)), "pixels": f"in DVC: {source}"}
    mlflow.log_input(dataset, context="training", tags=tags)


LOGGERS = {"train": log_train, "evaluate": log_plain, "compress": log_plain, "export": log_plain}


def logger_for(stage: str):
    """The stage's logger. The registry's is imported by name when needed: only the register
    stage (or a replay of its log) runs it, so no other stage depends on the registry code
    (registry.py imports nothing from here: the import graph has no cycle)."""
    if stage == "register":
        import importlib

        return importlib.import_module("visionops.tracking.registry").log_register
    return LOGGERS[stage]
