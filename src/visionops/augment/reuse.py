"""Resized originals kept from the previous data/prepared, so that after images were added,
removed or relabelled only the new or changed ones are decoded again.

An image is known by its file content (sha256 of the bytes, from validate's manifest): the same
bytes resized by the same decoder to the same size and channels give the same pixels, so they
are copied from the previous arrays instead. Augmented copies are always made again (each is
seeded by the image's place in its split). The previous arrays are trusted only when their
sha256 is the one their meta.json records and their decoder (resize method, Pillow's version,
the decoding code) is today's; otherwise every image is decoded, and the reason is printed.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from visionops.data import decode
from visionops.data.prepared import arrays_sha256, open_prepared
from visionops.data.shards import Member
from visionops.errors import VisionOpsError, first_line

CHANGED_SINCE_VALIDATION = "restore the file, or re-run `dvc repro` so that validate checks the data again"


@dataclass(frozen=True)
class KeptRow:
    """Where an image's resized original already lies: a row of a previous images array. Once
    bound to an image of this run (`for_image`), its bytes are checked against the sha256
    validate recorded before the row is used: data/raw changed after validation is an error,
    as a file that no longer decodes is."""

    images: np.ndarray  # the previous train_x or test_x, memory-mapped
    row: int
    member: Member | None = None  # this run's image, whose bytes must still be `sha256`
    sha256: str = ""

    def for_image(self, member: Member, sha256: str) -> KeptRow:
        return replace(self, member=member, sha256=sha256)

    def check(self) -> None:
        """Refuse to stand for an image whose bytes are not the ones validate described."""
        if self.member is None or hashlib.sha256(self.member.read()).hexdigest() != self.sha256:
            where = self.member.path if self.member else "an image"
            raise VisionOpsError(
                f"{where} changed after validation (its bytes are not the ones validate saw)",
                CHANGED_SINCE_VALIDATION,
            )


def decoder_id() -> str:
    """What the resized pixels depend on besides the file: the resize method, Pillow's
    version and the decoding code itself."""
    import PIL

    code = hashlib.sha256(Path(decode.__file__).read_bytes()).hexdigest()[:16]
    return f"{decode.RESIZE_METHOD}; Pillow {PIL.__version__}; decode.py {code}"


def kept_rows(previous: Path, image_size: int, channels: int) -> dict[str, KeptRow]:
    """file sha256 -> its resized original in `previous` (the last data/prepared); {} when
    there is nothing there that can be reused."""
    import pandas as pd

    if not (Path(previous) / "meta.json").is_file():
        return {}
    try:
        prepared = open_prepared(previous)
        files = pd.read_csv(Path(previous) / "files.csv", dtype={"file_sha256": str})
    except (VisionOpsError, OSError, ValueError) as exc:
        return _ignored(previous, f"it cannot be read ({first_line(exc)})")
    meta = prepared.meta
    if (meta.image_size, meta.channels) != (image_size, channels):
        return _ignored(
            previous, f"it holds {meta.image_size} px x{meta.channels}, not {image_size} px x{channels}"
        )
    if meta.decoder != decoder_id() or "file_sha256" not in files:
        return _ignored(previous, "it was decoded by other code (or another Pillow)")
    if meta.arrays_sha256 != arrays_sha256(previous):
        return _ignored(
            previous, "its arrays' sha256 is not the one its meta.json records (damaged or edited)"
        )
    per_train_image = 1 + meta.copies
    kept = {}
    for split, index, key in files[["split", "index", "file_sha256"]].itertuples(index=False):
        images, row = (
            (prepared.train.x, index * per_train_image) if split == "train" else (prepared.test.x, index)
        )
        kept[key] = KeptRow(images, int(row))
    return kept


def _ignored(previous: Path, why: str) -> dict[str, KeptRow]:
    print(f"augment: not reusing {previous}: {why}; every image is decoded again", file=sys.stderr)
    return {}
