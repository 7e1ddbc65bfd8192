"""Metrics on inputs with known answers, and the plots render."""

import numpy as np
import pytest

from visionops.evaluation.metrics import classification_metrics, expected_calibration_error
from visionops.evaluation.plots import plot_confusion_matrix, plot_history
from visionops.export.classifier import softmax


def test_metrics_on_a_known_confusion():
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.4, 0.6]])
    m = classification_metrics(y, probs, ["a", "b"])
    assert m["accuracy"] == 0.75
    assert m["confusion_matrix"] == [[1, 1], [0, 2]]
    assert m["per_class"][0] == {
        "class": "a",
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
    }
    assert m["f1_macro"] == pytest.approx((2 / 3 + 0.8) / 2)


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_overconfident():
    y = np.array([0, 1] * 50)
    calibrated = np.tile([[0.5, 0.5]], (100, 1))
    calibrated[:, 0] += 1e-9  # predicts class 0, 50 % right, 50 % confident
    assert expected_calibration_error(y, calibrated) == pytest.approx(0.0, abs=1e-6)
    overconfident = np.tile([[0.99, 0.01]], (100, 1))
    assert expected_calibration_error(y, overconfident) == pytest.approx(0.49)


def test_softmax_rows_sum_to_one_even_for_large_logits():
    p = softmax(np.array([[1000.0, 0.0], [1.0, 1.0]]))
    assert np.allclose(p.sum(1), 1) and p[0, 0] == pytest.approx(1.0)


def test_plots_write_png_files(tmp_path):
    plot_confusion_matrix([[3, 1], [0, 4]], ["a", "b"], tmp_path / "cm.png")
    plot_history(
        [{"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.4}],
        tmp_path / "h.png",
    )
    for name in ("cm.png", "h.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cleanlab_finds_deliberately_flipped_test_labels(trained, digits_arrays, tmp_path):
    """Issue 14: flip 5 % of the digits test labels; the evaluate stage's label-issue search
    must flag at least 70 % of them with precision at least 50 %."""
    import torch

    from visionops.data.prepared import to_model_input
    from visionops.evaluation.label_issues import find_label_issues
    from visionops.evaluation.plots import plot_label_issues

    model, _, meta = trained
    images, labels = digits_arrays["test_x"], digits_arrays["test_y"].astype(int)
    with torch.inference_mode():
        probs = softmax(model.cpu().eval()(torch.from_numpy(to_model_input(images, meta))).numpy())
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(labels), size=round(0.05 * len(labels)), replace=False)
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + rng.integers(1, 10, len(flipped))) % 10
    issues = find_label_issues(noisy, probs, meta["classes"])
    found = set(issues["row"]) & set(flipped)
    assert len(found) >= 0.7 * len(flipped), (len(found), len(flipped))
    assert len(found) >= 0.5 * len(issues), (len(found), len(issues))
    top = issues.iloc[0]
    assert (
        top["given"] == str(noisy[top["row"]])
        and top["self_confidence"] == probs[top["row"], noisy[top["row"]]]
    )
    assert (np.diff(issues["self_confidence"].to_numpy()) >= 0).all()  # most suspicious first
    plot_label_issues(images, issues, tmp_path / "issues.png")
    assert (tmp_path / "issues.png").stat().st_size > 1000
    assert find_label_issues(labels[:3], probs[:3], meta["classes"]).empty  # too few to judge


def test_train_label_errors_are_found_out_of_fold_by_a_cheap_model(digits_arrays):
    """Issue 14 (optional part): the trained model has learnt the train labels, so train is
    searched with k-fold out-of-fold probabilities of a logistic regression on thumbnails."""
    from visionops.evaluation.label_issues import (
        find_label_issues,
        out_of_fold_probabilities,
        thumbnail_features,
    )

    images, labels = digits_arrays["train_x"], digits_arrays["train_y"].astype(int)
    rng = np.random.default_rng(1)
    flipped = rng.choice(len(labels), size=round(0.05 * len(labels)), replace=False)
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + rng.integers(1, 10, len(flipped))) % 10
    features = thumbnail_features(images, np.arange(len(images)))
    assert features.shape == (len(images), 256) and features.min() >= 0.0 and features.max() <= 1.0
    probs = out_of_fold_probabilities(features, noisy)
    issues = find_label_issues(noisy, probs, [str(c) for c in range(10)])
    found = set(issues["row"]) & set(flipped)
    assert len(found) >= 0.7 * len(flipped), (len(found), len(flipped))
    assert len(found) >= 0.5 * len(issues), (len(found), len(issues))
