"""A user's image files, decoded a batch at a time by the pipeline's own decode: what `visionops
predict` and `visionops monitor` classify. Memory stays flat in the number of files, and an
unreadable file is reported in its batch, never raised."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from visionops.data.decode import decode_file
from visionops.errors import VisionOpsError, first_line


def decode_batches(files: list[Path], channels: int, size: int, batch: int) -> Iterator[DecodedBatch]:
    """`files` decoded `batch` at a time, in order."""
    for start in range(0, len(files), batch):
        decoded = DecodedBatch([], [], [], [])
        for path in files[start : start + batch]:
            try:
                pixels, original = decode_file(path, channels, size)
            except (OSError, ValueError, VisionOpsError) as exc:
                decoded.skipped.append((path, first_line(exc)))
                continue
            decoded.paths.append(path)
            decoded.images.append(pixels)
            decoded.sizes.append(original)
        yield decoded


@dataclass
class DecodedBatch:
    """One batch of `decode_batches`: the decoded files, their pixels and original (width,
    height), and (file, reason) for each file that could not be read."""

    paths: list[Path]
    images: list[np.ndarray]
    sizes: list[tuple[int, int]]
    skipped: list[tuple[Path, str]]

    def __len__(self) -> int:
        return len(self.paths) + len(self.skipped)
