"""The gate's evidence: score the champion (a registered ONNX model) on this pipeline's test
split, after checking it solves the same task (same class list in the same order, same input
size and channels), and compare it image by image with the challenger's predictions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from visionops.errors import VisionOpsError

if TYPE_CHECKING:
    import pandas as pd

    from visionops.data.prepared import Prepared


def check_same_task(
    champion: dict[str, Any], challenger: dict[str, Any], model_name: str, version: str
) -> None:
    """Refuse to compare models of different tasks (`champion`: OnnxClassifier.task, compared
    key by key with this run's prepared-data meta): that is not a better model but another one."""
    differ = [key for key in champion if champion[key] != challenger[key]]
    if differ:
        shown = "; ".join(f"{k}: champion {champion[k]!r}, this model {challenger[k]!r}" for k in differ)
        raise VisionOpsError(
            f"champion v{version} of '{model_name}' solves another task ({shown}); comparing them "
            "would promote a model for a different problem",
            f"set register.model_name to a new name for this task (e.g. '{model_name}-"
            f"{len(challenger['classes'])}class-{challenger['image_size']}px'), or retrain on the "
            "champion's classes and input size",
        )


def gate_evidence(
    data: Prepared,
    challenger: np.ndarray,
    champion: tuple[str, Path] | None,
    model_name: str,
    gate_metric: str,
) -> dict[str, Any]:
    """Paired evidence for the gate: `challenger` (predicted class indices on the test split)
    against the champion (version, ONNX file) scored here on the same images or, with no
    champion, against always answering the most frequent training class."""
    from visionops.export.classifier import OnnxClassifier
    from visionops.gate.paired import majority_class, paired_comparison

    if champion is None:
        version = None
        reference = np.full(len(data.test), majority_class(data.train.y[data.train.originals]))
    else:
        version, onnx_path = champion
        model = OnnxClassifier(onnx_path)
        check_same_task(model.task, data.meta.model_meta(), model_name, version)
        reference = model.labels(data.test.x)
    comparison = paired_comparison(data.test.y, challenger, reference, gate_metric, len(data.classes))
    return comparison | {"champion_version": version}


def predicted_indices(predictions: pd.DataFrame, data: Prepared, source: Path) -> np.ndarray:
    """Evaluate's predicted labels (`source`: one row per test image, in test order) as class
    indices, refused when they cannot be this data's test split's."""
    index = {name: i for i, name in enumerate(data.classes)}
    names = predictions["predicted"].astype(str)
    if len(names) != len(data.test) or not names.isin(list(index)).all():
        raise VisionOpsError(
            f"{source} does not match {data.root} ({len(names)} rows for {len(data.test)} test "
            "images, or unknown class names): it is from another run",
            "re-run `dvc repro` so evaluate and register see the same data",
        )
    return names.map(index).to_numpy()
