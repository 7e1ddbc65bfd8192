"""Score a registered model on this pipeline's test split, after checking it solves the same
task: same class list in the same order, same input size and channels."""

from __future__ import annotations

from typing import Any

import numpy as np

from visionops.errors import VisionOpsError

CHUNK = 512  # test images read and scored at a time: memory stays flat in the split size


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


def predict_labels(model, images: np.ndarray) -> np.ndarray:
    """Predicted class indices of an OnnxClassifier for uint8 NHWC `images` (a memory map is
    read CHUNK rows at a time)."""
    from visionops.data.prepared import read_rows

    predicted = [
        model.logits(read_rows(images, np.arange(start, min(start + CHUNK, len(images))))).argmax(1)
        for start in range(0, len(images), CHUNK)
    ]
    return np.concatenate(predicted) if predicted else np.zeros(0, np.int64)
