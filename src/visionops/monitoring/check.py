"""One monitoring check: the window against the reference, by the policy in params.yaml
(`monitor:`). The verdict is `degraded` when accuracy (labelled, else estimated) fell more than
the policy allows, `drift` when a shift test rejects, `ok` otherwise; both of the first two
mean retraining is due. Degraded takes evidence: the accuracy's whole 95 % interval under the
floor, so a small window's noise is not read as a fall."""

from __future__ import annotations

from typing import Any

import numpy as np

from visionops.config import MonitorParams
from visionops.errors import VisionOpsError
from visionops.monitoring.accuracy import estimate, labelled
from visionops.monitoring.reference import Reference
from visionops.monitoring.shift import drifted, shift_tests
from visionops.monitoring.window import Window

OK, DRIFT, DEGRADED = "ok", "drift", "degraded"
SUBJECTS = {"predicted_classes": "predicted class shares", "embedding": "the model's embedding (MMD)"}


def check(
    reference: Reference, window: Window, policy: MonitorParams, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """The check's record: verdict, reasons, every test, accuracy estimated (and labelled)."""
    n = len(window.probabilities)
    if n < policy.min_window:
        raise VisionOpsError(
            f"the window holds {n} readable image(s); the tests need at least {policy.min_window} "
            f"(monitor.min_window)",
            "point monitor at a folder with more recent images, or wait until more have arrived",
        )
    tests = shift_tests(
        reference.probabilities,
        reference.stats,
        window.probabilities,
        window.stats,
        reference.classes,
        _embeddings(reference, window),
        policy.alpha,
    )
    rejected = drifted(tests, policy.alpha)
    estimated = estimate(window.probabilities, reference.atc_threshold)
    truth = _labelled_accuracy(window, reference.classes, labels or {})
    judged = truth if truth is not None else estimated
    floor = reference.accuracy - policy.max_accuracy_drop
    degraded = judged["high"] < floor  # the whole interval under the floor: evidence, not noise
    reasons = []
    if degraded:
        which = "labelled" if truth is not None else "estimated"
        reasons.append(
            f"{which} accuracy {judged['value']:.3f} (95 % interval up to {judged['high']:.3f}) is under "
            f"{floor:.3f} (reference "
            f"{reference.accuracy:.3f} - monitor.max_accuracy_drop {policy.max_accuracy_drop})"
        )
    reasons += shift_reasons(rejected, len(reference.classes))
    verdict = DEGRADED if degraded else DRIFT if rejected else OK
    return {
        "verdict": verdict,
        "retrain": verdict != OK,
        "reasons": reasons or [f"no test rejects at alpha {policy.alpha} and accuracy holds"],
        "images": n,
        "skipped": len(window.skipped),
        "reference": {"images": len(reference.labels), "accuracy": reference.accuracy},
        "accuracy": {"estimated": estimated, "labelled": truth},
        "alpha": policy.alpha,
        "tests": [test.as_dict() for test in tests],
        "embedding_test": _embedding_note(reference, window),
    }


def _embeddings(reference: Reference, window: Window) -> tuple[np.ndarray, np.ndarray] | None:
    """(reference, window) embeddings when both sides have them, of the same width."""
    ref, seen = reference.embeddings, window.embeddings
    if ref is None or seen is None or len(seen) == 0 or ref.shape[1] != seen.shape[1]:
        return None
    return ref, seen


def _embedding_note(reference: Reference, window: Window) -> str:
    """Why the MMD test ran or did not: a model exported before it had no embedding output."""
    if _embeddings(reference, window) is not None:
        return "ran"
    if reference.embeddings is None:
        return (
            "not run: the reference holds no embeddings (a model exported before issue 35); "
            "`dvc repro` and register again to add them"
        )
    return "not run: the window's records hold no embedding (logged by an older model or server)"


def shift_reasons(rejected: list, classes: int) -> list[str]:
    """One line for the model's outputs (however many classes moved), one for the class
    shares, one per image statistic: what a person reads first."""
    reasons = []
    softmax = [t for t in rejected if t.family == "softmax"]
    if softmax:
        top = softmax[0]
        reasons.append(
            f"the model's outputs shifted: softmax of {len(softmax)} of {classes} classes "
            f"(strongest '{top.name}', p={top.p_value:.2g}, Bonferroni {top.p_adjusted:.2g})"
        )
    for test in rejected:
        if test.family != "softmax":
            subject = SUBJECTS.get(test.family, f"image {test.name}")
            reasons.append(
                f"{subject} shifted (p={test.p_value:.2g}, Bonferroni {test.p_adjusted:.2g}): {test.note}"
            )
    return reasons


def _labelled_accuracy(window: Window, classes: list[str], labels: dict[str, str]) -> dict | None:
    """Accuracy on the window's images that `labels` (path or file name -> class) covers."""
    if not labels:
        return None
    index = {name: i for i, name in enumerate(classes)}
    rows, truth = [], []
    for row, path in enumerate(window.paths):
        label = labels.get(str(path), labels.get(path.name))
        if label is not None:
            if label not in index:
                raise VisionOpsError(
                    f"label '{label}' of {path} is not one of the model's classes ({', '.join(classes)})",
                    "fix the labels CSV: its label column holds class names as the model knows them",
                )
            rows.append(row)
            truth.append(index[label])
    if not rows:
        raise VisionOpsError(
            "the labels CSV names none of the window's images",
            "its path column holds the images' paths or file names",
        )
    return labelled(window.probabilities[rows].argmax(1), np.asarray(truth))
