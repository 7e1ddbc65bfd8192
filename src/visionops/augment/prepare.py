"""Write a version of the prepared data (see data/prepared.py) from the validated image files:
the chunks the previous version holds are referenced (carried as they are), the images they
lack are decoded (and augmented) into new chunks, and the view says which rows each split is;
with the exact normalisation statistics of train."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from visionops.augment.pack import PackSpec, chunk_images, copies_chunk, in_chunks, pack_chunk, sums_of
from visionops.augment.reuse import Catalog, RawImage
from visionops.data.prepared import CHUNKS, COPIES, FILES, FORMAT, ORIGINAL, VIEW, ArrayWriter, ChunkInfo
from visionops.data.shards import RawImages
from visionops.errors import VisionOpsError
from visionops.io import REPRODUCE, link_or_copy

MANIFEST_COLUMNS = {
    "path": object,
    "split": object,
    "label": object,
    "file_sha256": object,
    "decode_ok": bool,
    "quarantined": bool,
}


def usable_files(manifest: pd.DataFrame, classes: list[str], source: Path) -> pd.DataFrame:
    """The validated manifest's decodable, not quarantined rows (split, path, label index, file
    sha256). A manifest missing a column, or with a torn row (a flag that is not true/false), is
    named."""
    for column, kind in MANIFEST_COLUMNS.items():
        if column not in manifest.columns or (kind is bool and manifest[column].dtype != bool):
            raise VisionOpsError(
                f"{source} is damaged or truncated (column '{column}' is missing or not all true/false)",
                REPRODUCE,
            )
    usable = manifest[manifest["decode_ok"] & ~manifest["quarantined"]]
    labels = usable["label"].astype(str).map({name: i for i, name in enumerate(classes)})
    if labels.isna().any():
        unknown = sorted(set(usable["label"].astype(str)[labels.isna()]))[:5]
        raise VisionOpsError(f"{source} has labels that are not among the classes: {unknown}", REPRODUCE)
    return usable.assign(label=labels.astype(np.int64))[["split", "path", "label", "file_sha256"]]


CHUNK_BYTES = 256 * 2**20  # a chunk file is closed once it holds this much


def write_prepared(
    root: Path,
    files: pd.DataFrame,
    raw: RawImages,
    spec: PackSpec,
    chunk_mb: float,
    workers: int = 0,
    progress: bool = True,
    previous: Catalog | None = None,
    policy: str = "",
    max_dead_fraction: float = 1.0,
) -> dict[str, Any]:
    """Write the prepared data of `files` (columns split, path in `raw`, label index) into `root`:
    train with `spec.copies` augmented copies of each image, test resized only. What `previous`
    holds is referenced, not written again; when the rows of its chunks that no image uses pass
    `max_dead_fraction` of all chunk bytes, every row is written afresh. Returns the meta fields
    the data produced (format, counts, mean and std of train's originals, chunks, content)."""
    frames = {
        split: _with_keys(files[files["split"] == split].reset_index(drop=True), raw)
        for split in ("train", "test")
    }
    version = _Version(root, raw, spec, chunk_mb, workers, progress, policy)
    version.write(frames, previous or Catalog(), carry=True)
    if version.dead_fraction > max_dead_fraction:
        print(
            f"augment: unused rows hold {version.dead_fraction:.0%} of the chunks: every row written afresh"
        )
        stored = version.as_catalog()
        version = _Version(root, raw, spec, chunk_mb, workers, progress, policy)
        version.write(frames, stored, carry=False)
    return version.finish(frames)


def _with_keys(frame: pd.DataFrame, raw: RawImages) -> pd.DataFrame:
    """`frame` with each file's sha256 (data/raw's index: hashed when packed)."""
    known = {entry.path: entry.sha256 for entry in raw}
    return frame.assign(file_sha256=list(map(known.__getitem__, frame["path"].tolist())))


class _Version:
    """One version's chunks and view under `root`, built by `write`."""

    def __init__(
        self,
        root: Path,
        raw: RawImages,
        spec: PackSpec,
        chunk_mb: float,
        workers: int,
        progress: bool,
        policy: str,
    ):
        self.root, self.raw, self.spec, self.policy = Path(root), raw, spec, policy
        self.chunk_mb, self.workers, self.progress = chunk_mb, workers, progress
        self.chunks: dict[int, ChunkInfo] = {}
        self.arrays: dict[int, np.ndarray] = {}
        self.originals: dict[str, tuple[int, int]] = {}
        self.copies: dict[str, tuple[int, int]] = {}
        self.sums: dict[int, np.ndarray] = {}
        self.keys: dict[int, list[str]] = {}
        self.carried_from: Path | None = None

    def write(self, frames: dict[str, pd.DataFrame], stored: Catalog, carry: bool) -> None:
        """Reference what `stored` holds (when `carry`), write the rest into new chunks: what is
        in `stored` is read from there, anything else decoded."""
        shutil.rmtree(self.root / CHUNKS, ignore_errors=True)
        (self.root / CHUNKS).mkdir(parents=True)
        self.next = stored.next_number if carry else 0
        members = {}
        for frame in frames.values():
            for path, key in zip(frame["path"].tolist(), frame["file_sha256"].tolist(), strict=True):
                members.setdefault(key, path)
        needed = list(members)
        if carry:
            self._carry(stored, needed, list(dict.fromkeys(frames["train"]["file_sha256"].tolist())))
        new = [key for key in needed if key not in self.originals]
        sources = [
            stored.original(key) if key in stored.originals else RawImage(self.raw.member(members[key]), key)
            for key in new
        ]
        self._originals(new, sources)
        if self.spec.copies:
            train = dict.fromkeys(frames["train"]["file_sha256"].tolist())
            want = [key for key in train if key not in self.copies]
            self._copies(want, stored)

    def _carry(self, stored: Catalog, needed: list[str], train: list[str]) -> None:
        used = {stored.originals[k][0] for k in needed if k in stored.originals}
        used |= {stored.copies[k][0] for k in train if k in stored.copies}
        for number in sorted(used):
            info = stored.chunks[number]
            for suffix in (".npy", ".keys", ".sums.npy") if info.kind == ORIGINAL else (".npy", ".keys"):
                name = f"{number:04d}{suffix}"
                link_or_copy(stored.root / CHUNKS / name, self.root / CHUNKS / name)
            self.chunks[number], self.arrays[number] = info, stored.arrays[number]
            if info.kind == ORIGINAL:
                self.sums[number] = stored.sums[number]
        self.originals = {k: stored.originals[k] for k in needed if k in stored.originals}
        self.copies = {k: stored.copies[k] for k in train if k in stored.copies}
        self.carried_from = stored.root

    def _originals(self, keys: list[str], sources: list) -> None:
        spec = PackSpec(self.spec.image_size, self.spec.channels)
        per_chunk = chunk_images(spec, self.chunk_mb)
        with _ChunkFiles(self, ORIGINAL, len(keys), 1) as out:
            decode = lambda chunk: pack_chunk(spec, chunk)  # noqa: E731
            in_chunks(
                sources, decode, out.take_originals(keys), per_chunk, self.workers, self.progress, "decode"
            )

    def _copies(self, keys: list[str], stored: Catalog) -> None:
        def make(chunk: list[str]) -> np.ndarray:
            made = [_stored_copies(stored, key, self.spec.copies) for key in chunk]
            missing = [i for i, rows in enumerate(made) if rows is None]
            if missing:
                originals = self.read_originals([chunk[i] for i in missing])
                fresh = copies_chunk(self.spec, originals, [chunk[i] for i in missing])
                for n, i in enumerate(missing):
                    made[i] = fresh[n * self.spec.copies : (n + 1) * self.spec.copies]
            return np.concatenate(made) if made else np.zeros((0, *self._shape), np.uint8)

        with _ChunkFiles(self, COPIES, len(keys), self.spec.copies) as out:
            per_chunk = chunk_images(self.spec, self.chunk_mb)
            in_chunks(keys, make, out.take_copies, per_chunk, self.workers, self.progress, "copies")

    @property
    def _shape(self) -> tuple[int, int, int]:
        return (self.spec.image_size, self.spec.image_size, self.spec.channels)

    def read_originals(self, keys: list[str]) -> np.ndarray:
        from visionops.data.prepared import read_rows

        out = np.empty((len(keys), *self._shape), np.uint8)
        for i, key in enumerate(keys):
            chunk, row = self.originals[key]
            out[i] = read_rows(self.arrays[chunk], np.array([row]))[0]
        return out

    @property
    def dead_fraction(self) -> float:
        """The share of the chunks' bytes that no image of this version uses."""
        used: dict[int, set[int]] = {}
        for chunk, row in self.originals.values():
            used.setdefault(chunk, set()).add(row)
        for chunk, row in self.copies.values():
            used.setdefault(chunk, set()).update(range(row, row + self.spec.copies))
        total = sum(info.rows for info in self.chunks.values())
        return (total - sum(len(rows) for rows in used.values())) / total if total else 0.0

    def as_catalog(self) -> Catalog:
        return Catalog(
            self.root,
            dict(self.chunks),
            dict(self.arrays),
            dict(self.originals),
            dict(self.copies),
            dict(self.sums),
        )

    def finish(self, frames: dict[str, pd.DataFrame]) -> dict[str, Any]:
        """The view, files.csv.gz and the meta fields of this version."""
        (self.root / VIEW).mkdir(exist_ok=True)
        counts = {}
        for split, frame in frames.items():
            keys = frame["file_sha256"].tolist()
            np.save(
                self.root / VIEW / f"{split}_original.npy",
                np.array([self.originals[k] for k in keys], np.int32).reshape(-1, 2),
            )
            np.save(self.root / VIEW / f"{split}_label.npy", frame["label"].to_numpy(np.int32))
            if split == "train" and self.spec.copies:
                np.save(
                    self.root / VIEW / "train_copies.npy",
                    np.array([self.copies[k] for k in keys], np.int32).reshape(-1, 2),
                )
            counts[split] = len(frame) * (1 + self.spec.copies if split == "train" else 1)
        listing = pd.concat(
            [f.assign(index=np.arange(len(f)))[["split", "index", "path", "label"]] for f in frames.values()]
        )
        with open(self.root / FILES, "wb") as out:  # gzip without a timestamp: the same rows, the same bytes
            out.write(gzip.compress(listing.to_csv(index=False).encode(), mtime=0))
        train_keys = frames["train"]["file_sha256"].tolist()
        train_rows = [self.sums[c][r] for c, r in map(self.originals.__getitem__, train_keys)]
        sums = sums_of(np.array(train_rows).reshape(-1, 2, self.spec.channels), self.spec.image_size**2)
        mean, std = (
            sums.mean_std() if train_rows else ([0.0] * self.spec.channels, [1.0] * self.spec.channels)
        )
        return {
            "format": FORMAT,
            "counts": counts,
            "mean": mean,
            "std": std,
            "chunks": sorted(self.chunks.values(), key=lambda info: info.number),
            "content_sha256": _content(frames, self.spec, self.policy),
        }


def _stored_copies(stored: Catalog, key: str, copies: int) -> np.ndarray | None:
    if key not in stored.copies:
        return None
    chunk, row = stored.copies[key]
    return np.asarray(stored.arrays[chunk][row : row + copies])


def _content(frames: dict[str, pd.DataFrame], spec: PackSpec, policy: str) -> str:
    """sha256 of what the splits hold: each image's content and label, in order, and what the
    pixels are made with. The same for a version built step by step and at once."""
    digest = hashlib.sha256(f"{spec.image_size} {spec.channels} {spec.copies} {policy}\n".encode())
    for split, frame in frames.items():
        lines = map(f"{split},{{}},{{}}\n".format, frame["label"].tolist(), frame["file_sha256"].tolist())
        digest.update("".join(lines).encode())
    return digest.hexdigest()


class _ChunkFiles:
    """New chunk files of one kind for `total` items (`per_item` rows each), numbered on from
    the version's next number, each at most CHUNK_BYTES; their keys (and, for originals, row
    sums) beside them. A context manager: the files are complete on a clean exit."""

    def __init__(self, version: _Version, kind: str, total: int, per_item: int):
        self.version, self.kind, self.per_item = version, kind, per_item
        row_bytes = int(np.prod(version._shape))
        self.items_per_file = max(1, CHUNK_BYTES // (row_bytes * per_item))
        self.remaining, self.writer, self.number = total, None, -1
        self.file_keys: list[str] = []
        self.file_sums: list[np.ndarray] = []

    def __enter__(self) -> _ChunkFiles:
        return self

    def take_originals(self, keys: list[str]):
        cursor = iter(keys)

        def take(images: np.ndarray, _chunk) -> None:
            from visionops.augment.pack import row_sums

            sums = row_sums(images)
            for i, image in enumerate(images):
                self._add(next(cursor), image[None], sums[i])

        return take

    def take_copies(self, images: np.ndarray, chunk: list[str]) -> None:
        for i, key in enumerate(chunk):
            self._add(key, images[i * self.per_item : (i + 1) * self.per_item], None)

    def _add(self, key: str, rows: np.ndarray, sums: np.ndarray | None) -> None:
        if self.writer is None:
            self._open()
        row = self.writer.rows
        self.writer.append(rows)
        self.file_keys.append(key)
        if sums is not None:
            self.file_sums.append(sums)
        where = self.version.originals if self.kind == ORIGINAL else self.version.copies
        where[key] = (self.number, row)
        if len(self.file_keys) == self.items_this_file:
            self._close()

    def _open(self) -> None:
        version = self.version
        self.number = version.next
        version.next += 1
        self.items_this_file = min(self.items_per_file, self.remaining)
        self.remaining -= self.items_this_file
        shape = (self.items_this_file * self.per_item, *version._shape)
        self.writer = ArrayWriter(
            version.root / CHUNKS / f"{self.number:04d}.npy", shape, np.uint8
        ).__enter__()

    def _close(self) -> None:
        version, number = self.version, self.number
        self.writer.__exit__(None, None, None)
        folder = version.root / CHUNKS
        (folder / f"{number:04d}.keys").write_text(
            "".join(f"{key}\n" for key in self.file_keys), encoding="ascii"
        )
        copies = self.per_item if self.kind == COPIES else 0
        policy = version.policy if self.kind == COPIES else ""
        version.chunks[number] = ChunkInfo(
            number=number, kind=self.kind, rows=self.writer.rows, copies=copies, policy=policy
        )
        version.arrays[number] = np.load(folder / f"{number:04d}.npy", mmap_mode="r")
        if self.kind == ORIGINAL:
            version.sums[number] = (
                np.stack(self.file_sums)
                if self.file_sums
                else np.zeros((0, 2, version.spec.channels), np.int64)
            )
            np.save(folder / f"{number:04d}.sums.npy", version.sums[number])
        self.writer, self.file_keys, self.file_sums = None, [], []

    def __exit__(self, kind, *_) -> None:
        if self.writer is not None:
            if kind is None:
                raise ValueError(f"{self.kind} chunk {self.number:04d}: fewer images than planned")
            self.writer.__exit__(kind, None, None)
