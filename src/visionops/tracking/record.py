"""What a stage hands tracking: one typed record of plain values (the files go beside it),
JSON-serialisable so the journal keeps it whole through an outage and replays it as it was."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetInput(_Record):
    """The training data as the run's MLflow input: a sample's schema, the whole data's digest."""

    name: str
    digest: str  # sha256 of the prepared arrays
    source: str  # where the pixels are (the prepared data's folder, in DVC)
    rows: int  # training rows (the sample logged is a few of them)


class Registration(_Record):
    """What the registry needs beyond params/metrics/tags to register a version and move aliases."""

    settings: dict[str, Any]  # the register params section (model name, gate metric, ...)
    evaluation: dict[str, float | int]  # the evaluate stage's numbers (gate metric included)
    hashes: dict[str, str]  # sha256 of model.pt and the ONNX: version tags
    validation_ok: bool
    parity_ok: bool
    decision: dict[str, Any]  # gate/decision.decision_record
    pyfunc: dict[str, Any]  # serving/packaging.pyfunc_spec
    source: str  # the data source's name, for the version's description


class StageLog(_Record):
    """One stage's log: params, metrics and tags for its run, the run folder of each file
    handed over (`artifact_dirs[key]`), and what train and register add."""

    params: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {}
    artifact_dirs: dict[str, str] = {}
    dataset: DatasetInput | None = None  # train
    registration: Registration | None = None  # register
