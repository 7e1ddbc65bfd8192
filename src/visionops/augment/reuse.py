"""What a new version of data/prepared takes from the previous one: its chunk files, by the
content of the images they hold (issue 48).

An image is known by its file's sha256 (data/raw's index): the same bytes resized by the same
decoder to the same size and channels give the same pixels, and its augmented copies, seeded by
that sha256, are the same rows for the same policy. So a new version references the previous
chunks where they hold an image, and decodes (or augments) only what they do not. The previous
chunks are not believed on their word: a sample of the originals they would lend (2 %, at least
8, drawn by a hash seeded with the previous version's content) is decoded again from data/raw,
and a sample of the copies augmented again; one difference, another decoder (resize method,
Pillow's version, the decoding code), another size or channel count, or an older format, and
every image is decoded anew, with the reason printed.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from visionops import audit
from visionops.data import decode
from visionops.data.prepared import COPIES, ORIGINAL, ChunkInfo, chunk_keys, open_prepared
from visionops.data.shards import Member, RawImages
from visionops.errors import VisionOpsError, first_line

CHANGED_SINCE_VALIDATION = "restore the file, or re-run `dvc repro` so that validate checks the data again"


@dataclass(frozen=True)
class RawImage:
    """An image to decode from data/raw, whose bytes must be the ones its index recorded (and
    validate described): data/raw changed after validation is an error, never silently used."""

    member: Member
    sha256: str

    def read(self) -> bytes:
        data = self.member.read()
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise VisionOpsError(
                f"{self.member.path} changed after validation (its bytes are not the ones validate saw)",
                CHANGED_SINCE_VALIDATION,
            )
        return data


@dataclass(frozen=True)
class StoredRow:
    """Where an image's resized original already lies: a row of a chunk (a memory map)."""

    images: np.ndarray
    row: int


@dataclass
class Catalog:
    """The previous version's chunks: which image content each row holds."""

    root: Path | None = None
    chunks: dict[int, ChunkInfo] = field(default_factory=dict)
    arrays: dict[int, np.ndarray] = field(default_factory=dict)  # number -> memory map
    originals: dict[str, tuple[int, int]] = field(default_factory=dict)  # sha256 -> (chunk, row)
    copies: dict[str, tuple[int, int]] = field(default_factory=dict)  # sha256 -> (chunk, first row)
    sums: dict[int, np.ndarray] = field(default_factory=dict)  # original chunk -> row_sums

    @property
    def next_number(self) -> int:
        return max(self.chunks, default=-1) + 1

    def original(self, key: str) -> StoredRow:
        chunk, row = self.originals[key]
        return StoredRow(self.arrays[chunk], row)


def decoder_id() -> str:
    """What the resized pixels depend on besides the file: the resize method, Pillow's
    version and the decoding code itself."""
    import PIL

    code = hashlib.sha256(Path(decode.__file__).read_bytes()).hexdigest()[:16]
    return f"{decode.RESIZE_METHOD}; Pillow {PIL.__version__}; decode.py {code}"


def policy_id(policy: dict, copies: int) -> str:
    """What the augmented copies depend on besides the original: the serialised policy (with
    albumentations' version and the seed) and how many copies each image gets."""
    text = json.dumps({"policy": policy, "copies": copies}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def previous_chunks(previous: Path, spec, policy: str, raw: RawImages) -> Catalog:
    """The chunks of `previous` (the last data/prepared) that this run can reference; an empty
    Catalog, and why on stderr, when there is nothing there to trust."""
    if not (Path(previous) / "meta.json").is_file():
        return Catalog()
    try:
        prepared = open_prepared(previous)
    except (VisionOpsError, OSError, ValueError) as exc:
        return _ignored(previous, f"it cannot be read ({first_line(exc)})")
    meta = prepared.meta
    if (meta.image_size, meta.channels) != (spec.image_size, spec.channels):
        wanted = f"{spec.image_size} px x{spec.channels}"
        return _ignored(previous, f"it holds {meta.image_size} px x{meta.channels}, not {wanted}")
    if meta.decoder != decoder_id():
        return _ignored(previous, "it was decoded by other code (or another Pillow)")
    catalog = Catalog(Path(previous))
    try:
        for info in meta.chunks:
            catalog.chunks[info.number] = info
            catalog.arrays[info.number] = np.load(Path(previous) / "chunks" / info.name, mmap_mode="r")
            _catalogue(catalog, info, chunk_keys(previous, info.number), policy, spec.copies)
    except (OSError, ValueError) as exc:
        return _ignored(previous, f"a chunk cannot be read ({first_line(exc)})")
    problem = _audit(catalog, spec, raw, meta.content_sha256)
    return _ignored(previous, problem) if problem else catalog


def _catalogue(catalog: Catalog, info: ChunkInfo, keys: list[str], policy: str, copies: int) -> None:
    if info.kind == ORIGINAL:
        if len(keys) != info.rows:
            raise ValueError(f"chunk {info.name} lists {len(keys)} keys for {info.rows} rows")
        catalog.sums[info.number] = np.load(Path(catalog.root) / "chunks" / f"{info.number:04d}.sums.npy")
        for row, key in enumerate(keys):
            catalog.originals.setdefault(key, (info.number, row))
    elif info.kind == COPIES and info.policy == policy and info.copies == copies:
        for group, key in enumerate(keys):
            catalog.copies.setdefault(key, (info.number, group * copies))


def _audit(catalog: Catalog, spec, raw: RawImages, seed: str) -> str | None:
    """Decode a sample of the stored originals again, and augment a sample of the stored copies
    again; what differs, or None."""
    from visionops.augment.pack import copies_chunk, pack_chunk

    members = {entry.sha256: entry.member for entry in raw}
    for kind, stored in (("original", catalog.originals), ("copies", catalog.copies)):
        for key in audit.sample([k for k in stored if k in members], seed):
            original = pack_chunk(spec, [RawImage(members[key], key)])
            chunk, row = stored[key]
            rows = 1 if kind == "original" else spec.copies
            again = original if kind == "original" else copies_chunk(spec, original, [key])
            if not np.array_equal(again, catalog.arrays[chunk][row : row + rows]):
                path = members[key].path
                return f"the stored {kind} of {path} differs from what it makes again (damaged?)"
    return None


def _ignored(previous: Path, why: str) -> Catalog:
    print(f"augment: not reusing {previous}: {why}; every image is decoded again", file=sys.stderr)
    return Catalog()
