"""The out-of-domain score (issue 49) on synthetic embeddings whose truth is known: the fit
streamed in batches equals the fit at once, the threshold flags the chosen share of new
in-domain images and nearly every far one, and the check's verdict, estimate and policy follow
the share: out_of_domain first, no estimate for a window mostly out of domain, an in-domain
estimate for a mixed one."""

from __future__ import annotations

import numpy as np
import pytest

from visionops.config import MonitorParams
from visionops.monitoring.accuracy import atc_threshold
from visionops.monitoring.check import DRIFT, OK, OUT_OF_DOMAIN, check
from visionops.monitoring.domain import DomainAccumulator
from visionops.monitoring.reference import Reference
from visionops.monitoring.window import Window

K, D = 5, 16
CLASSES = [str(k) for k in range(K)]


class World:
    """Five Gaussian classes in 16 dimensions sharing one covariance, and a model that is right
    with exactly its top probability (so a window's true accuracy is known)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.means = self.rng.normal(0, 3, (K, D))
        self.mix = self.rng.normal(size=(D, D)) / np.sqrt(D)

    def images(self, n: int, far: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(embeddings, probabilities, labels) of n images (far: from a cloud nowhere near any class)."""
        labels = self.rng.integers(0, K, n)
        centre = self.rng.normal(0, 3, D) + 15.0 if far else self.means[labels]
        embeddings = centre + self.rng.normal(size=(n, D)) @ self.mix
        top = np.clip(self.rng.beta(4.0, 1.0, n), 1 / K + 0.01, 1.0)
        right = self.rng.random(n) < top
        predicted = np.where(right, labels, (labels + self.rng.integers(1, K, n)) % K)
        probabilities = np.tile(((1 - top) / (K - 1))[:, None], (1, K))
        probabilities[np.arange(n), predicted] = top
        return embeddings, probabilities, labels

    def reference(self, n: int = 3000) -> Reference:
        embeddings, probabilities, labels = self.images(n)
        domain = DomainAccumulator(n, K)
        for start in range(0, n, 256):  # streamed, as build_reference feeds it
            rows = slice(start, start + 256)
            domain.add(start, embeddings[rows], probabilities[rows], labels[rows])
        stats = np.tile([120.0, 60.0, 1.0, 32.0, 32.0], (n, 1)) + self.rng.normal(0, 1, (n, 5))
        return Reference(
            CLASSES,
            probabilities.astype(np.float32),
            labels,
            stats,
            "sha",
            atc_threshold(probabilities, labels),
            embeddings[:1000].astype(np.float32),
            domain.fit(),
        )

    def window(self, n: int, far_share: float = 0.0) -> tuple[Window, float]:
        """A window with `far_share` of it far away, and the true accuracy of its other images."""
        far = round(n * far_share)
        inside, p_in, labels = self.images(n - far)
        outside, p_out, _ = self.images(far, far=True)
        stats = np.tile([120.0, 60.0, 1.0, 32.0, 32.0], (n, 1)) + self.rng.normal(0, 1, (n, 5))
        embeddings = np.concatenate([inside, outside])
        window = Window([], np.concatenate([p_in, p_out]), stats, embeddings=embeddings)
        return window, float((p_in.argmax(1) == labels).mean()) if len(labels) else float("nan")


def test_the_fit_streams_and_flags_the_chosen_share_of_in_domain_images_and_nearly_every_far_one():
    world = World(0)
    embeddings, probabilities, labels = world.images(3000)
    batched, whole = DomainAccumulator(3000, K), DomainAccumulator(3000, K)
    for start in range(0, 3000, 100):
        rows = slice(start, start + 100)
        batched.add(start, embeddings[rows], probabilities[rows], labels[rows])
    whole.add(0, embeddings, probabilities, labels)
    a, b = batched.fit(), whole.fit()
    assert np.allclose(a.precision, b.precision) and np.allclose(a.calibration, b.calibration)
    assert len(a.rows) == 1500 and a.means.shape == (K, D)  # half calibrate, half fit
    fresh, fresh_probabilities, _ = world.images(20_000)
    for fpr in (0.01, 0.05, 0.2):
        flagged = (a.scores(fresh, fresh_probabilities) > a.threshold(fpr)).mean()
        assert fpr * 0.6 < flagged < fpr * 1.4 + 0.005, (fpr, flagged)
    far, far_probabilities, _ = world.images(2000, far=True)
    assert (a.scores(far, far_probabilities) > a.threshold(0.05)).mean() > 0.95


def test_a_tiny_reference_has_no_domain_fit_and_the_check_says_so():
    world = World(1)
    embeddings, probabilities, labels = world.images(30)
    tiny = DomainAccumulator(30, K)
    tiny.add(0, embeddings, probabilities, labels)
    assert tiny.fit() is None  # 15 calibrating images cannot set a 5 % threshold
    reference = world.reference()
    older = Reference(*[getattr(reference, f) for f in ("classes", "probabilities", "labels", "stats")],
                      "sha", reference.atc_threshold, reference.embeddings)  # fmt: skip
    window, _ = world.window(300)
    result = check(older, window, MonitorParams())
    assert not result["out_of_domain"]["measured"] and "no domain fit" in result["out_of_domain"]["note"]
    assert result["accuracy"]["estimated"]["of"] == "every image"


def test_clean_mixed_and_foreign_windows_get_the_verdict_and_estimate_they_deserve():
    world = World(2)
    reference = world.reference()
    policy = MonitorParams()
    clean, truth = world.window(500)
    result = check(reference, clean, policy)
    assert result["verdict"] == OK and result["out_of_domain"]["value"] < 0.12
    estimated = result["accuracy"]["estimated"]
    assert estimated["of"] == "in-domain images" and abs(estimated["value"] - truth) < 0.05

    mixed, truth = world.window(500, far_share=0.3)
    result = check(reference, mixed, policy)
    share = result["out_of_domain"]
    assert abs(share["value"] - 0.3) < 0.1 and share["low"] > policy.max_ood_share
    assert result["verdict"] == OUT_OF_DOMAIN and not result["retrain"]
    assert result["reasons"][0].startswith(f"{share['value']:.0%} of the images are out of domain")
    estimated = result["accuracy"]["estimated"]  # the far images' confident outputs left out
    assert estimated["estimable"] and abs(estimated["value"] - truth) < 0.05

    foreign, _ = world.window(500, far_share=1.0)
    result = check(reference, foreign, policy)
    assert result["verdict"] == OUT_OF_DOMAIN and result["out_of_domain"]["value"] > 0.95
    estimated = result["accuracy"]["estimated"]
    assert not estimated["estimable"] and estimated["value"] is None
    assert "max_ood_for_estimate" in estimated["reason"]
    assert not any("accuracy" in reason for reason in result["reasons"])  # no verdict on no estimate


def test_a_small_excess_is_drift_not_out_of_domain():
    """12 % of the window out of domain is significant against 5 % but under max_ood_share."""
    world = World(3)
    reference = world.reference()
    window, _ = world.window(1000, far_share=0.08)
    result = check(reference, window, MonitorParams())
    assert result["verdict"] == DRIFT and result["retrain"]
    assert any(reason.startswith("more images out of domain") for reason in result["reasons"])
    lenient = check(reference, window, MonitorParams(max_ood_share=0.06))
    assert lenient["verdict"] == OUT_OF_DOMAIN


def test_a_max_ood_share_under_the_reference_rate_is_refused():
    with pytest.raises(ValueError, match=r"max_ood_share 0\.05 is not above monitor\.ood_fpr 0\.1"):
        MonitorParams(ood_fpr=0.1, max_ood_share=0.05)
