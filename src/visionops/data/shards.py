"""data/raw as a few tar shards and an index, instead of one file per image.

DVC hashes, caches, pushes and pulls every file of an output one by one: at 60,000 images
that was most of the time before training (and a minute each way to a remote). Packed, it
handles a few files of up to SHARD_BYTES each. Every image keeps its path (`train/cat/x.jpg`):
it is the member's name inside its shard (`tar -tf data/raw/shards/raw-000.tar` lists them, `tar -x`
unpacks them) and the key of `index.csv`, which gives each path's split, label, shard and
byte range, so that readers fetch one image without scanning a shard (as WebDataset's and
FFCV's readers do). Shards are plain ustar/PAX tar with fixed metadata (mtime 0, uid 0, no
owner names): the same images in the same order give the same bytes.
"""

from __future__ import annotations

import csv
import io
import re
import sys
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from visionops.errors import VisionOpsError

SHARD_BYTES = 256 * 2**20  # a shard is closed once it holds this much
INDEX = "index.csv"
SHARDS = "shards"
INDEX_COLUMNS = ["path", "split", "label", "shard", "offset", "size"]
REBUILD = "re-create it with `dvc repro -f -s download` (or `dvc checkout data/raw` for the recorded version)"


@dataclass(frozen=True)
class Member:
    """Where one image's bytes are: a byte range of a shard. Small and picklable, so that
    worker processes read the bytes themselves instead of receiving them."""

    path: str  # train/cat/x.jpg, as users see it
    shard: Path
    offset: int
    size: int

    def read(self) -> bytes:
        """The image file's bytes."""
        with open(self.shard, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read(self.size)
        if len(data) != self.size:
            raise VisionOpsError(f"{self.shard} ends inside {self.path} (truncated shard)", REBUILD)
        return data

    def open(self) -> io.BytesIO:
        """The bytes as a file object (what Pillow opens)."""
        return io.BytesIO(self.read())


@dataclass(frozen=True)
class Entry:
    """One image of data/raw: its split, its class folder's name and where its bytes are."""

    split: str
    label: str
    member: Member

    @property
    def path(self) -> str:
        return self.member.path


class ShardWriter:
    """Write images into root/shards/raw-NNN.tar, then root/index.csv on close (use `with`)."""

    def __init__(self, root: Path, shard_bytes: int = SHARD_BYTES) -> None:
        self.root, self.shard_bytes = Path(root), shard_bytes
        (self.root / SHARDS).mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, tuple[str, int, int]] = {}
        self._tar: tarfile.TarFile | None = None
        self._name = ""
        self._count = 0

    def add(self, split: str, label: str, name: str, data: bytes) -> None:
        """Store one image file as split/label/name; a path given twice is an error."""
        path = f"{split}/{label}/{name}"  # a class folder's name and a flat file name: no '/' in either
        if path in self.rows:
            raise VisionOpsError(
                f"two images would both be stored as {path}",
                "rename one of them: nested folders are flattened with '__', so 'a/b.jpg' "
                "and 'a__b.jpg' in one class collide",
            )
        tar = self._shard_for(len(data))
        info = tarfile.TarInfo(path)
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        tar.addfile(info, io.BytesIO(data))
        padded = -(-len(data) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
        self.rows[path] = (self._name, tar.offset - padded, len(data))

    def _shard_for(self, size: int) -> tarfile.TarFile:
        if self._tar is not None and self._tar.offset and self._tar.offset + size > self.shard_bytes:
            self._tar.close()
            self._tar = None
        if self._tar is None:
            self._name = f"raw-{self._count:03d}.tar"
            self._count += 1
            shard = self.root / SHARDS / self._name
            self._tar = tarfile.open(shard, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115 (closed in add/exit)
        return self._tar

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, kind, *_) -> None:
        if self._tar is not None:
            self._tar.close()
        if kind is None:
            self._write_index()

    def _write_index(self) -> None:
        with open(self.root / INDEX, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(INDEX_COLUMNS)
            for path in sorted(self.rows, key=sort_key):
                split, label, _ = path.split("/", 2)
                writer.writerow([path, split, label, *self.rows[path]])


def sort_key(path: str) -> tuple[str, ...]:
    """Split, then class, then file name: the order of a walk through class folders."""
    return tuple(path.split("/", 2))


class RawImages:
    """Read data/raw: the images in index order, and any one image's bytes by path."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        index = self.root / INDEX
        if not index.is_file():
            raise VisionOpsError(
                f"{self.root} has no {INDEX}: it is not packed raw data (a folder of class "
                "folders from an older visionops, or a half-restored checkout)",
                REBUILD,
            )
        self._shards: dict[str, tuple[Path, int]] = {}  # one Path (and size) per shard, shared
        self.entries = [self._entry(number, row, index) for number, row in enumerate(_read_index(index), 2)]
        self._by_path = {entry.path: entry for entry in self.entries}
        if len(self._by_path) != len(self.entries):  # one image would silently replace another
            twice = Counter(entry.path for entry in self.entries).most_common(1)[0][0]
            raise VisionOpsError(f"{index} is damaged: {twice} is listed twice", REBUILD)

    def _entry(self, number: int, row: dict[str, str], index: Path) -> Entry:
        """One checked row: a shard of this data/raw (never a path elsewhere), a byte range inside
        it, and a path whose split and class folder are the row's."""
        try:
            path, split, label, name = row["path"], row["split"], row["label"], row["shard"]
            offset, size = int(row["offset"]), int(row["size"])
        except (KeyError, TypeError, ValueError):
            raise VisionOpsError(f"{index} is damaged (line {number}: {row})", REBUILD) from None
        problem = _row_problem(path, split, label, name, offset, size)
        if problem is None:
            shard, shard_size = self._shard(name)
            if shard_size < 0:
                problem = f"shard {name} does not exist in {self.root / SHARDS}"
            elif offset + size > shard_size:
                problem = f"bytes {offset}-{offset + size} lie beyond the end of {name} ({shard_size} bytes)"
        if problem is not None:
            raise VisionOpsError(f"{index} is damaged (line {number}, {path!r}): {problem}", REBUILD)
        return Entry(sys.intern(split), sys.intern(label), Member(path, shard, offset, size))

    def _shard(self, name: str) -> tuple[Path, int]:
        """(path, size in bytes; -1 when missing) of shard `name`, looked up once."""
        if name not in self._shards:
            shard = self.root / SHARDS / name
            self._shards[name] = (shard, shard.stat().st_size if shard.is_file() else -1)
        return self._shards[name]

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def member(self, path: str) -> Member:
        """The image stored as `path` (train/cat/x.jpg)."""
        try:
            return self._by_path[path].member
        except KeyError:
            raise VisionOpsError(f"{path} is not in {self.root / INDEX}", REBUILD) from None

    def counts(self, classes: list[str]) -> dict[str, dict[str, int]]:
        """Images per class per split (zero for a class with none)."""
        found = {split: dict.fromkeys(classes, 0) for split in ("train", "test")}
        for entry in self.entries:
            found.setdefault(entry.split, dict.fromkeys(classes, 0))
            found[entry.split][entry.label] = found[entry.split].get(entry.label, 0) + 1
        return found


def pack_tree(tree: Path, root: Path) -> RawImages:
    """Pack the files of tree/<split>/<class>/ exactly as laid out (hidden ones left out) into
    root: for folders already in data/raw's layout (an older visionops' data/raw, benchmarks'
    image subsets). A user's own folder goes through the folder source instead, which finds
    its classes and splits."""
    with ShardWriter(root) as shards:
        for path in sorted(Path(tree).glob("*/*/*")):
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(tree).parts):
                shards.add(*path.relative_to(tree).parts, path.read_bytes())
    return RawImages(root)


def unpack(root: Path, dest: Path, split: str | None = None) -> Path:
    """The images of the data/raw at root as files under dest/<split>/<class>/ (what `tar -xf`
    of each shard gives; only `split` if given): to look at them, edit them, or predict on them.
    The inverse of `pack_tree`; returns dest."""
    for shard in sorted((Path(root) / "shards").glob("raw-*.tar")):
        with tarfile.open(shard) as tar:
            members = [m for m in tar if split is None or m.name.startswith(f"{split}/")]
            tar.extractall(dest, members=members, filter="data")
    return Path(dest)


SHARD_NAME = re.compile(r"raw-\d{3,}\.tar")


def _row_problem(path: str, split: str, label: str, shard: str, offset: int, size: int) -> str | None:
    """What is wrong with one index row on its face, or None."""
    parts = path.split("/")  # a plain split: PurePosixPath doubled the time to open 60,000 rows
    if not SHARD_NAME.fullmatch(shard):
        return f"shard {shard!r} is not a shard's name (raw-NNN.tar)"
    if offset < 0 or size < 0:
        return f"offset {offset} and size {size} must not be negative"
    if len(parts) != 3 or any(part in ("", ".", "..") for part in parts):
        return "the path is not split/class/file"
    if parts[0] != split or parts[1] != label:
        return f"its split and class ({split}, {label}) are not those of its path"
    return None


def _read_index(index: Path) -> list[dict[str, str]]:
    try:
        with open(index, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames != INDEX_COLUMNS:
                raise VisionOpsError(f"{index} does not have the columns {INDEX_COLUMNS}", REBUILD)
            return list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise VisionOpsError(f"{index} is damaged: not a CSV index ({type(exc).__name__})", REBUILD) from None
