"""Is an image like anything the model was trained for? Its out-of-domain score is the larger of
two, in standard scores: how unlike the classes its embedding is (the squared Mahalanobis
distance of the L2-normalised embedding to the nearest class mean under one shared covariance,
Lee et al., NeurIPS 2018, plus how unusual the embedding's length is, either way: uniform noise
weakens a CIFAR model's features and excites a digits model's) and how unsure the model is (the
entropy of its softmax: the confidence-based detectors' signal, which catches natural photos of
other things that the features miss; the larger, not the sum, as a digits model is confidently
wrong on noise).
Fitted on the reference's held-out images; the threshold comes from reference images the fit
never saw (calibration rows), so a chosen share of in-domain images (`monitor.ood_fpr`) lies
beyond it on new data as on the reference; the window's share beyond it is tested against the
calibration rows' (Fisher's exact test, one-sided). Chosen by benchmarks/drift_power.py on a
CIFAR-10 champion (RESULTS.md): the Mahalanobis distance of the raw embedding scored noise as
more in-domain than CIFAR itself (AUROC 0.32); the energy needs logits that windows and the
request log do not keep; this score did best over four foreign sets and two models."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CALIBRATION = 2000  # at most this many reference rows (at most half) calibrate; the rest fit
MIN_ROWS = 20  # per side: fewer fitting or calibrating images than this and no score is made
IDENTITY = np.array([0.0, 1.0] * 3)  # a DomainFit.scale that leaves the terms as they are


@dataclass(frozen=True)
class DomainFit:
    """The class means and shared precision of the reference's normalised embeddings, the three
    terms' standardisation, and the scores of the calibration rows (`rows`, reference row
    numbers) that the fit left out."""

    means: np.ndarray  # float64 [K', D], of the classes the fitting rows hold
    precision: np.ndarray  # float64 [D, D], pseudo-inverse of the within-class covariance
    scale: np.ndarray  # float64 [6]: mean and deviation of the distance, the log length, the entropy
    rows: np.ndarray  # int64 [n_cal]
    calibration: np.ndarray  # float64 [n_cal], their out-of-domain scores

    def scores(self, embeddings: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        """The out-of-domain score of each image (its embedding and softmax): higher is further out."""
        return standardised(*self.terms(embeddings, probabilities), self.scale)

    def terms(self, embeddings: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, ...]:
        """(squared Mahalanobis distance of each row's direction to its nearest class mean, the
        log of its length, the entropy of its softmax), before standardisation."""
        from visionops.monitoring.accuracy import scores as negative_entropy

        z = np.asarray(embeddings, dtype=np.float64)
        length = np.maximum(np.linalg.norm(z, axis=1), 1e-12)
        u = z / length[:, None]
        up = u @ self.precision
        quadratic = (up * u).sum(1)[:, None] - 2.0 * up @ self.means.T
        quadratic += ((self.means @ self.precision) * self.means).sum(1)[None, :]
        distance = np.maximum(quadratic.min(1), 0.0) if len(z) else np.zeros(0)
        return distance, np.log(length), -negative_entropy(probabilities)

    def threshold(self, fpr: float) -> float:
        """The calibration score that a share `fpr` of new in-domain images exceed at most
        (the conformal quantile: the ceil((n + 1)(1 - fpr))-th smallest)."""
        ordered = np.sort(self.calibration)
        rank = min(len(ordered), int(np.ceil((len(ordered) + 1) * (1.0 - fpr))))
        return float(ordered[rank - 1])


def calibration_rows(n: int) -> np.ndarray:
    """The reference rows that calibrate: evenly spaced, at most half of them and CALIBRATION."""
    from visionops.monitoring.mmd import evenly_spaced

    return evenly_spaced(n, min(n // 2, CALIBRATION))


class DomainAccumulator:
    """Sums of the fitting rows' normalised embeddings (per class) and their outer products, and
    the calibration rows' embeddings and softmax outputs: one batch at a time, so memory does
    not grow with the reference (D x D plus at most CALIBRATION rows)."""

    def __init__(self, n: int, classes: int) -> None:
        self.calibrating = calibration_rows(n)
        self._is_calibration = np.zeros(n, dtype=bool)
        self._is_calibration[self.calibrating] = True
        self.classes = classes
        self.sums: np.ndarray | None = None
        self.outer: np.ndarray | None = None
        self.counts = np.zeros(classes, dtype=np.int64)
        self.held: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, start: int, embeddings: np.ndarray, probabilities: np.ndarray, labels: np.ndarray) -> None:
        """Rows start .. start + len(embeddings) of the reference: what the model said, and
        their true labels."""
        z = embeddings.astype(np.float64)
        calibrating = self._is_calibration[start : start + len(z)]
        self.held.append((z[calibrating].astype(np.float32), probabilities[calibrating].astype(np.float32)))
        u = z / np.maximum(np.linalg.norm(z, axis=1), 1e-12)[:, None]
        fit, fit_labels = u[~calibrating], labels[~calibrating]
        if self.sums is None:
            self.sums = np.zeros((self.classes, z.shape[1]))
            self.outer = np.zeros((z.shape[1], z.shape[1]))
        np.add.at(self.sums, fit_labels, fit)
        self.counts += np.bincount(fit_labels, minlength=self.classes)
        self.outer += fit.T @ fit

    def fit(self) -> DomainFit | None:
        """The fit, or None when too few rows fit or calibrate (a tiny test split)."""
        from scipy.linalg import pinvh

        fitting = int(self.counts.sum())
        if self.sums is None or fitting < MIN_ROWS or len(self.calibrating) < MIN_ROWS:
            return None
        present = self.counts > 0
        means = self.sums[present] / self.counts[present, None]
        between = (means * self.counts[present, None]).T @ means  # sum over classes of n_k mu_k mu_k^T
        covariance = oas((self.outer - between) / fitting, fitting)
        fit = DomainFit(means, pinvh(covariance), IDENTITY, self.calibrating, np.zeros(0))
        terms = fit.terms(*(np.concatenate(side) for side in zip(*self.held, strict=True)))
        # each term in units of its spread on the calibration rows, so none dominates by its units
        scale = np.array([value for term in terms for value in (term.mean(), term.std() or 1.0)])
        calibration = standardised(*terms, scale)
        return DomainFit(means, fit.precision, scale, self.calibrating, calibration)


def standardised(
    distance: np.ndarray, log_length: np.ndarray, entropy: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """The score: the larger of the features' (the distance's standard score plus the log
    length's, unsigned) and the entropy's standard score."""
    features = (distance - scale[0]) / scale[1] + np.abs((log_length - scale[2]) / scale[3])
    return np.maximum(features, (entropy - scale[4]) / scale[5])


def oas(covariance: np.ndarray, n: int) -> np.ndarray:
    """The covariance shrunk toward a scaled identity by the Oracle Approximating Shrinkage
    coefficient (Chen et al., 2010; sklearn's OAS, from the covariance rather than the rows):
    a few hundred images of a wide embedding estimate it poorly, and nearly not at all when
    there are more dimensions than images."""
    from sklearn.covariance import shrunk_covariance

    p = len(covariance)
    mu = np.trace(covariance) / p
    alpha = np.mean(covariance**2)
    denominator = (n + 1) * (alpha - mu**2 / p)
    shrinkage = 1.0 if denominator == 0 else min((alpha + mu**2) / denominator, 1.0)
    return shrunk_covariance(covariance, shrinkage)


@dataclass(frozen=True)
class DomainShare:
    """How many window images lie beyond the threshold, against the calibration rows."""

    beyond: np.ndarray  # bool [N], per window image
    threshold: float
    reference_share: float  # of the calibration rows beyond it (about monitor.ood_fpr)
    p_value: float  # Fisher's exact test: the window's share is larger

    @property
    def share(self) -> float:
        return float(self.beyond.mean()) if len(self.beyond) else 0.0

    def bounds(self) -> dict[str, float]:
        """The share's 95 % Wilson interval: {"low", "high"}."""
        from visionops.monitoring.accuracy import interval

        return interval(int(self.beyond.sum()), len(self.beyond))


def domain_share(
    fit: DomainFit, embeddings: np.ndarray, probabilities: np.ndarray, fpr: float
) -> DomainShare:
    """The window's images beyond the threshold that `fpr` sets, tested against the reference's."""
    from scipy.stats import fisher_exact

    threshold = fit.threshold(fpr)
    beyond = fit.scores(embeddings, probabilities) > threshold
    ref_beyond = int((fit.calibration > threshold).sum())
    table = [[int(beyond.sum()), int((~beyond).sum())], [ref_beyond, len(fit.calibration) - ref_beyond]]
    p_value = float(fisher_exact(table, alternative="greater").pvalue)
    return DomainShare(beyond, threshold, ref_beyond / len(fit.calibration), p_value)
