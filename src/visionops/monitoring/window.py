"""What the model sees: the newest images of a folder, decoded and resized by the pipeline's
own code (`data/decode`), classified in batches and measured (monitoring/stats.py). Only the
outputs and the numbers are kept, so memory does not grow with the window."""

from __future__ import annotations

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
