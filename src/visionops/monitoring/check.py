"""One monitoring check: the window against the reference, by the policy in params.yaml
(`monitor:`). The verdict is `out_of_domain` when significantly more of the window is unlike
the reference than the reference itself, and over monitor.max_ood_share of it (its whole 95 %
interval): a person must look, as no retraining on the old data would help; `degraded` when
accuracy (labelled, else estimated) fell more than the policy allows; `drift` when a shift
test rejects; `ok` otherwise; drift and degraded mean retraining is due. Degraded takes
evidence: the accuracy's whole 95 % interval under the floor, so a small window's noise is not
read as a fall. The accuracy estimate is of the in-domain images only, and none at all when
over monitor.max_ood_for_estimate of the window is out of domain."""

from __future__ import annotations

from typing import Any

import numpy as np

from visionops.config import MonitorParams
from visionops.errors import VisionOpsError
from visionops.monitoring.accuracy import atc_threshold, estimate, labelled
from visionops.monitoring.domain import MIN_ROWS, DomainShare, domain_share
from visionops.monitoring.reference import Reference
from visionops.monitoring.shift import Test, drifted, shift_tests
from visionops.monitoring.window import Window

OK, DRIFT, DEGRADED, OUT_OF_DOMAIN = "ok", "drift", "degraded", "out_of_domain"
IN_DOMAIN = "in-domain images"  # what an estimate with a domain score is of
RETRAIN = (DRIFT, DEGRADED)  # out_of_domain: retraining on the old data would not help
SUBJECTS = {"predicted_classes": "predicted class shares", "embedding": "the model's embedding (MMD)"}


def check(
    reference: Reference, window: Window, policy: MonitorParams, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """The check's record: verdict, reasons, every test, the out-of-domain share, accuracy
    estimated (and labelled)."""
    n = len(window.probabilities)
    if n < policy.min_window:
        raise VisionOpsError(
            f"the window holds {n} readable image(s); the tests need at least {policy.min_window} "
            f"(monitor.min_window)",
            "point monitor at a folder with more recent images, or wait until more have arrived",
        )
    embeddings = _embeddings(reference, window)
    domain = None
    if embeddings is not None and reference.domain is not None:
        domain = domain_share(reference.domain, window.embeddings, window.probabilities, policy.ood_fpr)
    tests = shift_tests(
        reference.probabilities,
        reference.stats,
        window.probabilities,
        window.stats,
        reference.classes,
        embeddings,
        policy.alpha,
        extra=() if domain is None else (_domain_test(domain),),
    )
    rejected = drifted(tests, policy.alpha)
    out_of_domain = _out_of_domain(domain, rejected, policy)
    estimated, reference_accuracy = _estimate(reference, window, domain, policy)
    truth = _labelled_accuracy(window, reference.classes, labels or {})
    reasons = [_domain_reason(domain, rejected, policy)] if out_of_domain else []
    degraded = _degraded(truth, estimated, reference, reference_accuracy, policy)
    reasons += [degraded] if degraded else []
    told = [t for t in rejected if not (out_of_domain and t.family == "domain")]  # not twice
    reasons += shift_reasons(told, len(reference.classes))
    verdict = OUT_OF_DOMAIN if out_of_domain else DEGRADED if degraded else DRIFT if rejected else OK
    return {
        "verdict": verdict,
        "retrain": verdict in RETRAIN,
        "reasons": reasons or [f"no test rejects at alpha {policy.alpha} and accuracy holds"],
        "images": n,
        "skipped": len(window.skipped),
        "reference": {
            "images": len(reference.labels),
            "accuracy": reference.accuracy,
            "in_domain_accuracy": reference_accuracy,
        },
        "out_of_domain": _domain_record(domain, reference, window, policy),
        "accuracy": {"estimated": estimated, "labelled": truth},
        "alpha": policy.alpha,
        "tests": [test.as_dict() for test in tests],
        "embedding_test": _embedding_note(reference, window),
    }


def _domain_test(domain: DomainShare) -> tuple:
    note = f"{domain.share:.1%} of the window out of domain (reference {domain.reference_share:.1%})"
    return ("domain", "share", domain.share, domain.p_value, note)


def _out_of_domain(domain: DomainShare | None, rejected: list[Test], policy: MonitorParams) -> bool:
    """More of the window out of domain than of the reference (the test rejects), and over
    monitor.max_ood_share of it with 95 % confidence: evidence of a large share, not noise."""
    if domain is None or not any(t.family == "domain" for t in rejected):
        return False
    return domain.bounds()["low"] > policy.max_ood_share


def _domain_reason(domain: DomainShare, rejected: list[Test], policy: MonitorParams) -> str:
    test = next(t for t in rejected if t.family == "domain")
    bounds = domain.bounds()
    return (
        f"{domain.share:.0%} of the images are out of domain (95 % interval {bounds['low']:.0%}-"
        f"{bounds['high']:.0%}, over monitor.max_ood_share {policy.max_ood_share:.0%}): more unlike "
        f"the classes the model learned, or more unsure, than all but {policy.ood_fpr:.0%} of the "
        f"reference's images (the reference: {domain.reference_share:.1%}; p={test.p_value:.2g}, "
        f"adjusted {test.p_adjusted:.2g})"
    )


def _estimate(
    reference: Reference, window: Window, domain: DomainShare | None, policy: MonitorParams
) -> tuple[dict[str, Any], float]:
    """(ATC's estimate, the reference accuracy it compares with). With a domain score: of the
    in-domain images, calibrated on the reference's in-domain calibration rows, or "not
    estimable" over monitor.max_ood_for_estimate out of domain; without one: of every image."""
    n = len(window.probabilities)
    if domain is None:
        whole = estimate(window.probabilities, reference.atc_threshold)
        return whole | {"estimable": True, "images": n, "of": "every image"}, reference.accuracy
    fit = reference.domain
    inside = fit.calibration <= domain.threshold
    probs, labels = reference.probabilities[fit.rows][inside], reference.labels[fit.rows][inside]
    reference_accuracy = float((probs.argmax(1) == labels).mean())
    if domain.share > policy.max_ood_for_estimate:
        why = (
            f"{domain.share:.0%} of the window is out of domain, over monitor.max_ood_for_estimate "
            f"{policy.max_ood_for_estimate:.0%}: the model's confidence on images unlike any it "
            "learned says nothing about its accuracy"
        )
        return {"estimable": False, "value": None, "reason": why, "images": 0, "of": IN_DOMAIN}, (
            reference_accuracy
        )
    kept = window.probabilities[~domain.beyond]
    found = estimate(kept, atc_threshold(probs, labels))
    return found | {"estimable": True, "images": len(kept), "of": IN_DOMAIN}, reference_accuracy


def _degraded(
    truth: dict | None,
    estimated: dict[str, Any],
    reference: Reference,
    reference_accuracy: float,
    policy: MonitorParams,
) -> str:
    """The reason line when accuracy fell (its whole 95 % interval under the floor), else ''."""
    if truth is not None:
        which, judged, base = "labelled accuracy", truth, reference.accuracy
    elif estimated["estimable"]:
        which, judged, base = "estimated accuracy", estimated, reference_accuracy
        which += " of the in-domain images" if estimated["of"] == IN_DOMAIN else ""
    else:
        return ""
    floor = base - policy.max_accuracy_drop
    if judged["high"] >= floor:
        return ""
    return (
        f"{which} {judged['value']:.3f} (95 % interval up to {judged['high']:.3f}) is under "
        f"{floor:.3f} (reference {base:.3f} - monitor.max_accuracy_drop {policy.max_accuracy_drop})"
    )


def _domain_record(
    domain: DomainShare | None, reference: Reference, window: Window, policy: MonitorParams
) -> dict[str, Any]:
    """The out-of-domain share with its interval, or why there is none."""
    if domain is None:
        why = (
            _embedding_note(reference, window)
            if _embeddings(reference, window) is None
            else f"not measured: the reference holds no domain fit (a test split under {2 * MIN_ROWS} "
            "images, or a reference built before issue 49: `dvc repro reference`, then register)"
        )
        return {"measured": False, "note": why}
    return {
        "measured": True,
        "value": domain.share,
        **domain.bounds(),
        "images": int(domain.beyond.sum()),
        "reference_share": domain.reference_share,
        "threshold": domain.threshold,
        "fpr": policy.ood_fpr,
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


def shift_reasons(rejected: list[Test], classes: int) -> list[str]:
    """One line for the model's outputs (however many classes moved), one for the class
    shares, one for the out-of-domain share, one per image statistic: what a person reads first."""
    reasons = []
    softmax = [t for t in rejected if t.family == "softmax"]
    if softmax:
        top = softmax[0]
        reasons.append(
            f"the model's outputs shifted: softmax of {len(softmax)} of {classes} classes "
            f"(strongest '{top.name}', p={top.p_value:.2g}, adjusted {top.p_adjusted:.2g})"
        )
    for test in rejected:
        if test.family == "domain":
            reasons.append(
                f"more images out of domain than in the reference (p={test.p_value:.2g}, adjusted "
                f"{test.p_adjusted:.2g}): {test.note}"
            )
        elif test.family != "softmax":
            subject = SUBJECTS.get(test.family, f"image {test.name}")
            reasons.append(
                f"{subject} shifted (p={test.p_value:.2g}, adjusted {test.p_adjusted:.2g}): {test.note}"
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
