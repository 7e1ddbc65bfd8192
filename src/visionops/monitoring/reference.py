"""The reference a registered model is monitored against: what the exported model said about
the held-out images it was judged on (softmax outputs, labels, and the embedding of evenly
spaced rows where the graph outputs one), what those images looked like (monitoring/stats.py),
ATC's threshold for estimating accuracy without labels and the fit that scores how far an
image is from the training domain (monitoring/domain.py). A folder of
.npy files and a JSON record: written by the `reference` stage, shipped inside every registered
version (artifact `reference`), so any clone or server can monitor that version."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from visionops.errors import VisionOpsError
from visionops.monitoring.domain import DomainAccumulator, DomainFit
from visionops.monitoring.stats import STATS, image_stats

FORMAT = "visionops-reference/2"
READABLE = ("visionops-reference/1", FORMAT)  # /1: before the out-of-domain fit (issue 49)
RECORD = "reference.json"
ARRAYS = ("probabilities", "labels", "stats")
EMBEDDINGS = "embeddings"  # optional: models exported before issue 35 have no embedding output
DOMAIN = ("means", "precision", "scale", "rows", "calibration")  # DomainFit's arrays, as domain_<name>.npy
REBUILD = "re-run the stage that writes it: `dvc repro reference`, then register the model again"


@dataclass(frozen=True)
class Reference:
    """What the model saw and said on its held-out images."""

    classes: list[str]
    probabilities: np.ndarray  # float32 [N, K]
    labels: np.ndarray  # int64 [N]
    stats: np.ndarray  # float64 [N, len(STATS)]
    model_sha256: str  # the exported ONNX file this was measured with
    atc_threshold: float
    embeddings: np.ndarray | None = None  # float32 [<= mmd.MAX_ROWS, D] of evenly spaced rows
    domain: DomainFit | None = None  # None without embeddings, for a tiny test split or a /1 reference

    @property
    def accuracy(self) -> float:
        return float((self.probabilities.argmax(1) == self.labels).mean())


def build_reference(
    outputs: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]],
    batches,
    labels: np.ndarray,
    classes: list[str],
    model_sha256: str,
) -> Reference:
    """Run `outputs` (uint8 NHWC -> probabilities [n, K], embedding [n, D] or None) over
    `batches` of (images, sizes) and measure the images; a few MB even for tens of thousands
    of images (no pixels are kept, embeddings only of the rows the MMD test and the domain's
    calibration use, and the domain fit's sums)."""
    from visionops.monitoring.accuracy import atc_threshold
    from visionops.monitoring.mmd import MAX_ROWS, evenly_spaced

    labels = np.asarray(labels, dtype=np.int64)
    keep = set(evenly_spaced(len(labels), MAX_ROWS).tolist())
    domain = DomainAccumulator(len(labels), len(classes))
    probs, stats, embedded, start = [], [], [], 0
    for images, sizes in batches:
        p, embedding = outputs(images)
        probs.append(p.astype(np.float32))
        stats.append(image_stats(images, sizes))
        if embedding is not None:
            rows = [i for i in range(len(images)) if start + i in keep]
            embedded.append(embedding[rows].astype(np.float32))
            domain.add(start, embedding, p, labels[start : start + len(images)])
        start += len(images)
    p = np.concatenate(probs) if probs else np.zeros((0, len(classes)), np.float32)
    if len(p) == 0:
        raise VisionOpsError("no held-out images to build the monitoring reference from", REBUILD)
    return Reference(
        classes,
        p,
        labels,
        np.concatenate(stats),
        model_sha256,
        atc_threshold(p, labels),
        np.concatenate(embedded) if embedded else None,
        domain.fit() if embedded else None,
    )


def save_reference(reference: Reference, folder: Path) -> None:
    """Write the folder whole (staged, then swapped in): a crash leaves the old or the new one."""
    from visionops.io import publish_dir, staging_dir_for, write_json

    staging = staging_dir_for(folder)
    for name in ARRAYS:
        np.save(staging / f"{name}.npy", getattr(reference, name), allow_pickle=False)
    if reference.embeddings is not None:
        np.save(staging / f"{EMBEDDINGS}.npy", reference.embeddings, allow_pickle=False)
    if reference.domain is not None:
        for name in DOMAIN:
            np.save(staging / f"domain_{name}.npy", getattr(reference.domain, name), allow_pickle=False)
    write_json(
        staging / RECORD,
        {
            "format": FORMAT,
            "classes": reference.classes,
            "stats": list(STATS),
            "images": len(reference.labels),
            "accuracy": reference.accuracy,
            "atc_threshold": reference.atc_threshold,
            "model_sha256": reference.model_sha256,
            "embedded_images": 0 if reference.embeddings is None else len(reference.embeddings),
            "domain_calibration_images": 0 if reference.domain is None else len(reference.domain.rows),
        },
    )
    publish_dir(staging, folder)


def load_reference(folder: Path) -> Reference:
    """Read and check a reference folder; every problem is one message with the fix."""
    from visionops.io import read_json

    folder = Path(folder)
    if not (folder / RECORD).is_file():
        raise VisionOpsError(f"{folder} holds no monitoring reference ({RECORD} is missing)", REBUILD)
    record = read_json(folder / RECORD)
    if record.get("format") not in READABLE or record.get("stats") != list(STATS):
        raise VisionOpsError(
            f"{folder / RECORD} is a reference of another format ({record.get('format')!r})", REBUILD
        )
    names = (*ARRAYS, EMBEDDINGS) if record.get("embedded_images") else ARRAYS
    if record.get("domain_calibration_images"):
        names += tuple(f"domain_{name}" for name in DOMAIN)
    try:
        arrays = {name: np.load(folder / f"{name}.npy", allow_pickle=False) for name in names}
    except (OSError, ValueError) as exc:
        raise VisionOpsError(f"{folder}: a reference array is missing or damaged ({exc})", REBUILD) from None
    n, k = record["images"], len(record["classes"])
    shapes = {"probabilities": (n, k), "labels": (n,), "stats": (n, len(STATS))}
    wrong = [name for name, shape in shapes.items() if arrays[name].shape != shape]
    if EMBEDDINGS in arrays and (
        arrays[EMBEDDINGS].ndim != 2 or len(arrays[EMBEDDINGS]) != record["embedded_images"]
    ):
        wrong.append(EMBEDDINGS)
    domain = _domain(arrays, record, n)
    if record.get("domain_calibration_images") and domain is None:
        wrong.append("the domain fit")
    if wrong or n == 0:
        raise VisionOpsError(
            f"{folder}: {', '.join(wrong) or 'the arrays'} do not match its {RECORD} "
            f"({n} images, {k} classes)",
            REBUILD,
        )
    return Reference(
        classes=list(record["classes"]),
        probabilities=arrays["probabilities"],
        labels=arrays["labels"],
        stats=arrays["stats"],
        model_sha256=record["model_sha256"],
        atc_threshold=float(record["atc_threshold"]),
        embeddings=arrays.get(EMBEDDINGS),
        domain=domain,
    )


def _domain(arrays: dict[str, np.ndarray], record: dict, n: int) -> DomainFit | None:
    """The domain fit when its arrays are there and agree (else None: the caller says why)."""
    if not record.get("domain_calibration_images") or EMBEDDINGS not in arrays:
        return None
    fit = DomainFit(*(arrays[f"domain_{name}"] for name in DOMAIN))
    width, cal = arrays[EMBEDDINGS].shape[1], record["domain_calibration_images"]
    shapes_agree = (
        fit.means.ndim == 2
        and fit.means.shape[1] == width
        and fit.precision.shape == (width, width)
        and fit.scale.shape == (6,)
        and bool(np.all(fit.scale[1::2] > 0))
        and fit.rows.shape == fit.calibration.shape == (cal,)
    )
    return fit if shapes_agree and bool(np.all((fit.rows >= 0) & (fit.rows < n))) else None


def test_file_sizes(keys: list[str], described: dict[str, dict]) -> np.ndarray:
    """[n_test, 2] (width, height) of the test images' files, in test order: each image's file
    sha256 (`keys`) looked up in what validate described of it (by content)."""
    missing = [key for key in keys if "width" not in described.get(key, {})]
    if missing:
        raise VisionOpsError(
            f"validate's descriptions lack the size of the test image with sha256 {missing[0][:12]}...",
            "re-run the data stages: `dvc repro augment`, then this stage",
        )
    return np.array(
        [[described[key]["width"], described[key]["height"]] for key in keys], np.float64
    ).reshape(-1, 2)
