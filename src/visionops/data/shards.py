"""data/raw as a few tar shards and an index, instead of one file per image.

DVC hashes, caches, pushes and pulls every file of an output one by one: at 60,000 images
that was most of the time before training (and a minute each way to a remote). Packed, it
handles a few files of up to SHARD_BYTES each. Every image keeps its path (`train/cat/x.jpg`):
it is the member's name inside its shard (`tar -tf data/raw/shards/raw-000.tar` lists them, `tar -x`
unpacks them) and the key of `index.csv`, which gives each path's split, label, shard and
byte range and the SHA-256 of its bytes, so that readers fetch one image without scanning a
shard (as WebDataset's and FFCV's readers do). Shards are plain ustar/PAX tar with fixed
metadata (mtime 0, uid 0, no owner names): the same images in the same order give the same
bytes. That is what lets a re-pack copy an unchanged image's tar blocks from the previous
data/raw instead of reading its file and building its header again (`ShardWriter.add_known`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import sys
import tarfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from visionops.errors import VisionOpsError

SHARD_BYTES = 256 * 2**20  # a shard is closed once it holds this much
INDEX = "index.csv"
SHARDS = "shards"
INDEX_COLUMNS = ["path", "split", "label", "shard", "offset", "size", "sha256"]
MAX_HEADER = 64 * 2**10  # a member's tar header blocks (PAX records for a long name) at most
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
    """One image of data/raw: its split, its class folder's name, where its bytes are and their
    SHA-256 (as recorded when packed)."""

    split: str
    label: str
    member: Member
    sha256: str

    @property
    def path(self) -> str:
        return self.member.path


class ShardWriter:
    """Write images into root/shards/raw-NNN.tar, then root/index.csv on close (use `with`).
    Given the `previous` data/raw, an image it already holds under the same path with the same
    bytes is copied from there (`add_known`): the result is the bytes a fresh pack writes."""

    def __init__(self, root: Path, shard_bytes: int = SHARD_BYTES, previous: RawImages | None = None) -> None:
        self.root, self.shard_bytes = Path(root), shard_bytes
        (self.root / SHARDS).mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, tuple[str, int, int, str]] = {}
        self._tar: tarfile.TarFile | None = None
        self._name = ""
        self._count = 0
        self._previous = _header_starts(previous) if previous is not None else {}
        self._opened: dict[Path, io.BufferedReader] = {}

    def add(self, split: str, label: str, name: str, data: bytes) -> None:
        """Store one image file as split/label/name; a path given twice is an error."""
        path = self._new_path(split, label, name)
        tar = self._shard_for(len(data))
        info = tarfile.TarInfo(path)
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        tar.addfile(info, io.BytesIO(data))
        offset = tar.offset - _padded(len(data))
        self.rows[path] = (self._name, offset, len(data), hashlib.sha256(data).hexdigest())

    def add_known(self, split: str, label: str, name: str, sha256: str, load: Callable[[], bytes]) -> bool:
        """`add(split, label, name, load())` for an image whose SHA-256 is known beforehand:
        when the previous data/raw holds this path with these bytes (checked), its tar blocks
        are copied and `load` is never called. True when copied."""
        blocks = self._previous_blocks(f"{split}/{label}/{name}", sha256)
        if blocks is None:
            self.add(split, label, name, load())
            return False
        blob, header_bytes, size = blocks
        path = self._new_path(split, label, name)
        tar = self._shard_for(size)
        self.rows[path] = (self._name, tar.offset + header_bytes, size, sha256)
        tar.fileobj.write(blob)  # what tar.addfile writes: header, data, zero padding
        tar.offset += len(blob)
        return True

    def _previous_blocks(self, path: str, sha256: str) -> tuple[bytes, int, int] | None:
        """(header + data + padding, header bytes, data bytes) of `path` in the previous
        data/raw when its data has this SHA-256 and its header is a plain one for this path
        and size; None otherwise (the image is then packed afresh)."""
        known = self._previous.get(path)
        if known is None or known[0].sha256 != sha256:
            return None
        entry, start = known
        member = entry.member
        header_bytes = member.offset - start
        if not 0 < header_bytes <= MAX_HEADER or header_bytes % tarfile.BLOCKSIZE:
            return None
        handle = self._opened.get(member.shard)
        if handle is None:
            handle = self._opened[member.shard] = open(member.shard, "rb")  # noqa: SIM115 (closed in exit)
        handle.seek(start)
        blob = handle.read(header_bytes + _padded(member.size))
        data = blob[header_bytes : header_bytes + member.size]
        if len(data) != member.size or hashlib.sha256(data).hexdigest() != sha256:
            return None
        if not _plain_header(blob[:header_bytes], path, member.size):
            return None
        return blob, header_bytes, member.size

    def counts(self, classes: list[str]) -> dict[str, dict[str, int]]:
        """Images per class per split of what was added (zero for a class with none), from the
        rows kept for the index: reading the index back took 0.3-0.5 s at 60,000 images."""
        found = {split: dict.fromkeys(classes, 0) for split in ("train", "test")}
        for path in self.rows:
            split, label, _ = path.split("/", 2)
            found.setdefault(split, dict.fromkeys(classes, 0))
            found[split][label] = found[split].get(label, 0) + 1
        return found

    def _new_path(self, split: str, label: str, name: str) -> str:
        path = f"{split}/{label}/{name}"  # a class folder's name and a flat file name: no '/' in either
        if path in self.rows:
            raise VisionOpsError(
                f"two images would both be stored as {path}",
                "rename one of them: nested folders are flattened with '__', so 'a/b.jpg' "
                "and 'a__b.jpg' in one class collide",
            )
        return path

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
        for handle in self._opened.values():
            handle.close()
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


def _plain_header(header: bytes, path: str, size: int) -> bool:
    """Whether `header` (a member's header blocks) ends in an intact tar header block for
    `size` bytes and names `path` (in that block, or in the PAX record before it). Checks the
    two fields tarfile's own reader checks first, without parsing every field (frombuf took
    two thirds of the time to copy 60,000 images)."""
    last = header[-tarfile.BLOCKSIZE :]
    try:
        intact = tarfile.nti(last[148:156]) in tarfile.calc_chksums(last)
        return intact and tarfile.nti(last[124:136]) == size and path.encode() in header
    except tarfile.HeaderError:  # a field that is no number
        return False


def _padded(size: int) -> int:
    """Bytes a member's data takes in a tar: whole 512-byte blocks."""
    return -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


def _header_starts(raw: RawImages) -> dict[str, tuple[Entry, int]]:
    """path -> (its entry, where its tar header starts). Members lie back to back in a shard,
    so a member's header begins where the one before it ends (data padded to a block)."""
    by_shard: dict[Path, list[Entry]] = defaultdict(list)
    for entry in raw:
        by_shard[entry.member.shard].append(entry)
    starts = {}
    for entries in by_shard.values():
        end = 0
        for entry in sorted(entries, key=lambda e: e.member.offset):
            starts[entry.path] = (entry, end)
            end = entry.member.offset + _padded(entry.member.size)
    return starts


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
            offset, size, sha256 = int(row["offset"]), int(row["size"]), row["sha256"]
        except (KeyError, TypeError, ValueError):
            raise VisionOpsError(f"{index} is damaged (line {number}: {row})", REBUILD) from None
        problem = _row_problem(path, split, label, name, offset, size) or _sha256_problem(sha256)
        if problem is None:
            shard, shard_size = self._shard(name)
            if shard_size < 0:
                problem = f"shard {name} does not exist in {self.root / SHARDS}"
            elif offset + size > shard_size:
                problem = f"bytes {offset}-{offset + size} lie beyond the end of {name} ({shard_size} bytes)"
        if problem is not None:
            raise VisionOpsError(f"{index} is damaged (line {number}, {path!r}): {problem}", REBUILD)
        return Entry(sys.intern(split), sys.intern(label), Member(path, shard, offset, size), sha256)

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


def _sha256_problem(sha256: str | None) -> str | None:
    if not isinstance(sha256, str) or len(sha256) != 64 or sha256.strip("0123456789abcdef"):
        return f"sha256 {sha256!r} is not 64 lowercase hex digits"
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
