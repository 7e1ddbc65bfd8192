"""Chain of custody from training to the registry. train, evaluate and export each record the
sha256 of the exact model file they wrote or measured (export also of the ONNX it wrote,
evaluate of its per-image predictions); before anything goes to MLflow, register checks that
the links agree and that the ONNX really loads. A hand-edited, truncated or stale file is
refused by name, so no version is ever judged on another model's evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from visionops.errors import VisionOpsError, first_line
from visionops.io import file_sha256

REPRODUCE = "re-run `dvc repro`: it re-runs the stale stages, so evaluate, export and register see one model"


class Report(NamedTuple):
    """A stage's JSON record and where it came from (for messages)."""

    path: Path
    data: dict[str, Any]


def verify_chain(run: Report, evaluation: Report, export: Report, onnx: Path, predictions: Path) -> dict:
    """Check every link, then that the ONNX loads; return the hashes as registry tags."""
    model = _recorded(run, "model_sha256")
    for report in (evaluation, export):
        measured = _recorded(report, "model_sha256")
        if measured != model:
            raise VisionOpsError(
                f"{report.path} describes model {measured[:12]}…, but the run in {run.path} trained "
                f"{model[:12]}…: they are from different trainings",
                REPRODUCE,
            )
    _same_file(onnx, _recorded(export, "onnx_sha256"), export.path)
    _same_file(predictions, _recorded(evaluation, "predictions_sha256"), evaluation.path)
    check_onnx_loads(onnx)
    return {"model.sha256": model, "onnx.sha256": export.data["onnx_sha256"]}


def check_onnx_loads(path: Path) -> None:
    """onnx.checker and an ONNX Runtime session with the metadata visionops needs; any failure
    is a message naming the file."""
    import onnx

    from visionops.export.classifier import OnnxClassifier

    try:
        onnx.checker.check_model(str(path))
        OnnxClassifier(path, threads=1)
    except VisionOpsError as exc:
        raise VisionOpsError(exc.cause, REPRODUCE) from None
    except Exception as exc:  # onnx's ValidationError, protobuf's DecodeError, ORT's InvalidProtobuf, ...
        raise VisionOpsError(f"{path} is not a loadable ONNX model ({first_line(exc)})", REPRODUCE) from None


def _recorded(report: Report, key: str) -> str:
    value = report.data.get(key)
    if not isinstance(value, str) or len(value) != 64:
        raise VisionOpsError(
            f"{report.path} does not record `{key}` (written by an older visionops, or edited)",
            REPRODUCE,
        )
    return value


def _same_file(path: Path, expected: str, recorded_in: Path) -> None:
    actual = file_sha256(path)
    if actual != expected:
        raise VisionOpsError(
            f"{path} is not the file {recorded_in} was made from (sha256 {actual[:12]}…, recorded "
            f"{expected[:12]}…): it was changed after its stage ran",
            f"{REPRODUCE} (or `dvc checkout {path}` restores the recorded one)",
        )
