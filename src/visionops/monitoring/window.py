"""What the model sees: the newest images of a folder, decoded and resized by the pipeline's
own code (`data/decode`), classified in batches and measured (monitoring/stats.py). Only the
outputs and the numbers are kept, so memory does not grow with the window."""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from visionops.monitoring.stats import STATS, image_stats

BATCH = 64  # images decoded and classified at a time


@dataclass
class Window:
    """The images of one check and what the model said about them."""

    paths: list[Path]  # the files, in row order (empty for a window read from the request log)
    probabilities: np.ndarray  # [N, K]
    stats: np.ndarray  # [N, len(STATS)]
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, why it was not read)
    embeddings: np.ndarray | None = None  # [N, D] where the model outputs an embedding


def newest(files: list[Path], size: int) -> list[Path]:
    """The `size` most recently modified files (all when fewer), oldest first; ties by path."""
    order = sorted(files, key=lambda p: (p.stat().st_mtime_ns, str(p)))
    return order[-size:]


def sample_rank(seed: int, name: str) -> bytes:
    """Where `name` falls in the seeded sample's order: the `size` smallest form the sample, so
    the same files and seed give the same window, and a listing is never held whole to draw it."""
    return hashlib.sha256(f"{seed}\0{name}".encode()).digest()


def sampled(files: list[Path], size: int, seed: int) -> list[Path]:
    """`size` of `files` (all when fewer) drawn evenly at random, the same for the same seed, in
    path order: a window over a whole folder rather than its newest corner."""
    return sorted(heapq.nsmallest(size, files, key=lambda path: sample_rank(seed, str(path))))


@dataclass(frozen=True)
class Selection:
    """How a window was chosen, for the report and the MLflow run: a team reading checks over
    time must know what each one looked at and what it left out."""

    sources: list[str]  # the folders, files or s3:// prefixes given
    rule: str  # "newest 1000 by modification time" or "1000 drawn at random (seed 0)"
    found: int  # image files there
    chosen: int  # of them, in the window

    def as_dict(self) -> dict:
        return {"sources": self.sources, "rule": self.rule, "found": self.found, "chosen": self.chosen,
                "left_out": self.found - self.chosen}  # fmt: skip


def rule(size: int, seed: int | None) -> str:
    return f"newest {size} by modification time" if seed is None else f"{size} drawn at random (seed {seed})"


def observe(
    outputs: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]],
    files: list[Path],
    channels: int,
    size: int,
    progress: bool = True,
) -> Window:
    """Decode, classify and measure `files` (`outputs`: uint8 NHWC -> probabilities, embedding
    or None); an unreadable file is skipped with its reason."""
    from tqdm import tqdm

    from visionops.data.file_batches import decode_batches

    kept, skipped, probs, stats, embedded = [], [], [], [], []
    with tqdm(total=len(files), desc="monitor", unit="img", disable=None if progress else True) as bar:
        for batch in decode_batches(files, channels, size, BATCH):
            skipped += batch.skipped
            if batch.images:
                images = np.stack(batch.images)
                p, embedding = outputs(images)
                probs.append(p)
                if embedding is not None:
                    embedded.append(embedding)
                stats.append(image_stats(images, np.asarray(batch.sizes, dtype=np.float64)))
                kept += batch.paths
            bar.update(len(batch))
    k = probs[0].shape[1] if probs else 0
    return Window(
        kept,
        np.concatenate(probs) if probs else np.zeros((0, k)),
        np.concatenate(stats) if stats else np.zeros((0, len(STATS))),
        skipped,
        np.concatenate(embedded) if embedded else None,
    )
