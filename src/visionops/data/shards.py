"""data/raw as a few tar shards and an index, instead of one file per image; a new version of
the data adds shards and never rewrites one.

DVC hashes, caches, pushes and pulls every file of an output one by one: at 60,000 images
that was most of the time before training (and a minute each way to a remote). Packed, it
handles a few files of up to SHARD_BYTES each. `index.csv` is the map: each image's path
(`train/cat/x.jpg`), split, label, shard and byte range and the SHA-256 of its bytes, so that
readers fetch one image without scanning a shard (as WebDataset's and FFCV's readers do).

**A version costs what it adds** (issue 48). DVC stores and moves a file once, whatever number
of versions use it, so a shard, once written, is never rewritten by a later version: an image
whose bytes the previous data/raw holds (under any path) stays where it is, and the new index
points there; new images go into new shards, numbered after the previous ones. A removed image
is a row the index no longer has; a relabelled or moved one, a row with another path pointing at
the same bytes. Shards no live image uses are dropped; the bytes of removed images that still
share a shard with live ones are reclaimed by compaction, when they exceed `max_dead_fraction`
of all shard bytes: every live image is then packed afresh, in path order (`visionops compact`
asks for it now). Shards are plain ustar/PAX tar with fixed metadata (mtime 0, uid 0, no owner
names): `tar -tf` lists what a shard holds, under the path each image had when it was packed;
the index says what each is now (`unpack` writes the images as the index names them). The same
images packed from nothing give the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import sys
import tarfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import groupby, repeat
from operator import add, le
from pathlib import Path
from typing import NamedTuple

from visionops import audit
from visionops.data.raw_index import REBUILD, IndexState, read_index, sort_key, write_index
from visionops.errors import VisionOpsError
from visionops.io import link_or_copy

SHARD_BYTES = 256 * 2**20  # a shard is closed once it holds this much
SHARDS = "shards"
COMPACT_ENV = "VISIONOPS_COMPACT"  # "1": the download stage re-packs every image (`visionops compact`)


class Member(NamedTuple):
    """Where one image's bytes are: a byte range of a shard. Small and picklable, so that
    worker processes read the bytes themselves instead of receiving them. A named tuple, as
    Entry: a frozen dataclass cost 0.1 s a stage to build 60,000 rows of each."""

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


class Entry(NamedTuple):
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
    """Write a version of data/raw into `root`: `add` an image's bytes, or `add_known` its SHA-256
    and a way to read it (never called when the bytes are stored already); `root`/index.csv and
    the shards are complete on a clean exit of the `with` block. Given the `previous` data/raw,
    an image it holds is not written again: its shard is carried into `root` as it is (a hard
    link, else a copy). Identical bytes under two paths are stored once."""

    def __init__(
        self,
        root: Path,
        shard_bytes: int = SHARD_BYTES,
        previous: RawImages | None = None,
        max_dead_fraction: float = 1.0,
        compact: bool = False,
    ) -> None:
        self.root, self.shard_bytes = Path(root), shard_bytes
        (self.root / SHARDS).mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, tuple[str, int, int, str]] = {}  # path -> shard, offset, size, sha256
        self._stored: dict[str, tuple[str, int, int]] = {}  # sha256 -> where this version holds it
        self._previous = _trusted(previous) if previous is not None else {}
        self._previous_root = previous.root if previous is not None else None
        self._previous_index: IndexState | None = previous.index if previous is not None else None
        self._previous_rows = {  # path -> its previous location, where it may stay
            entry.path: (entry.member.shard.name, entry.member.offset, entry.member.size, entry.sha256)
            for entry in previous or []
            if self._previous.get(entry.sha256) is not None
        }
        self._max_dead, self._compact = max_dead_fraction, compact
        self._tar: tarfile.TarFile | None = None
        self._name = ""
        self._count = _next_number(previous)
        self._written: set[str] = set()  # the shards this version wrote (the others: the previous one's)
        self.report = PackReport()

    def add(self, split: str, label: str, name: str, data: bytes) -> None:
        """Store one image file as split/label/name; a path given twice is an error."""
        self.add_known(split, label, name, hashlib.sha256(data).hexdigest(), lambda: data)

    def add_known(self, split: str, label: str, name: str, sha256: str, load: Callable[[], bytes]) -> bool:
        """`add(split, label, name, load())` for an image whose SHA-256 is known beforehand; when
        this version or the previous one holds these bytes already, `load` is never called and
        nothing is written. True when nothing was read."""
        path = self._new_path(split, label, name)
        same = self._previous_rows.get(path)
        where = (
            same[:3] if same is not None and same[3] == sha256 else None
        )  # an unchanged row stays as it is
        where = where or self._stored.get(sha256) or self._previous.get(sha256)
        if where is None:
            where = self._write(path, load())
            self.report.packed += 1
        elif sha256 not in self._stored:
            self.report.kept += 1
        found = sha256 in self._stored or where[0] not in self._written
        self._stored.setdefault(sha256, where)
        self.rows[path] = (*where, sha256)
        return found

    def _write(self, path: str, data: bytes) -> tuple[str, int, int]:
        tar = self._shard_for(len(data))
        info = tarfile.TarInfo(path)
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        tar.addfile(info, io.BytesIO(data))
        return self._name, tar.offset - _padded(len(data)), len(data)

    def counts(self, classes: list[str]) -> dict[str, dict[str, int]]:
        """Images per class per split of what was added (zero for a class with none), from the
        rows kept for the index: reading the index back took 0.3-0.5 s at 60,000 images."""
        found = {split: dict.fromkeys(classes, 0) for split in ("train", "test")}
        folders = Counter(head for head, _, _ in map(str.rpartition, self.rows, repeat("/")))
        for folder, count in sorted(folders.items()):
            split, label = folder.split("/")
            found.setdefault(split, dict.fromkeys(classes, 0))
            found[split][label] = found[split].get(label, 0) + count
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
            self._written.add(self._name)
            self._count += 1
            shard = self.root / SHARDS / self._name
            self._tar = tarfile.open(shard, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115 (closed in add/exit)
        return self._tar

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, kind, *_) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None
        if kind is None:
            self._carry_previous_shards()
            if self._compact or self.report.dead_fraction > self._max_dead:
                self._compact_now()
            self._write_index()

    def _carry_previous_shards(self) -> None:
        """Bring every previous shard a live image still uses into this version, unchanged, and
        count the bytes of removed images they hold."""
        used = {shard for shard, *_ in self.rows.values()} - self._written
        for shard in sorted(used):
            link_or_copy(self._previous_root / SHARDS / shard, self.root / SHARDS / shard)
            self.report.carried.append(shard)
        located = {(shard, offset): (path, size) for path, (shard, offset, size, _) in self.rows.items()}
        live = _live_bytes((shard, path, size) for (shard, _), (path, size) in located.items())
        for shard in [*used, *self._written]:
            total = (self.root / SHARDS / shard).stat().st_size
            self.report.shard_bytes += total
            self.report.dead_bytes += _dead(total, live[shard])

    def _compact_now(self) -> None:
        """Pack every live image afresh, in path order, into shards numbered from 0, then drop the
        old ones: no byte of a removed image is left."""
        old = {name: self.root / SHARDS / name for name in {shard for shard, *_ in self.rows.values()}}
        fresh = self.root / ".compacting"
        shutil.rmtree(fresh, ignore_errors=True)
        with ShardWriter(fresh, self.shard_bytes) as packed:
            for path in sorted(self.rows, key=sort_key):
                shard, offset, size, _ = self.rows[path]
                packed.add(*path.split("/", 2), Member(path, old[shard], offset, size).read())
        shutil.rmtree(self.root / SHARDS)
        (fresh / SHARDS).rename(self.root / SHARDS)
        shutil.rmtree(fresh)
        self.rows = packed.rows
        self._previous_index = None  # every row into one fragment again
        self.report = PackReport(self.report.kept, self.report.packed, [], packed.report.shard_bytes, 0, True)

    def _write_index(self) -> None:
        rows = {
            path: (path, *path.split("/", 2)[:2], shard, str(offset), str(size), sha256)
            for path, (shard, offset, size, sha256) in self.rows.items()
        }
        self.report.index = write_index(self.root, rows, self._previous_index, self._previous_root)


@dataclass
class PackReport:
    """What a pack did: images kept where the previous data/raw had them, images packed, the
    previous shards carried over unchanged, and the bytes of removed images still in them."""

    kept: int = 0
    packed: int = 0
    carried: list[str] = field(default_factory=list)
    shard_bytes: int = 0
    dead_bytes: int = 0
    compacted: bool = False
    index: str = ""  # what the index's fragments say of the version (raw_index.write_index)

    @property
    def dead_fraction(self) -> float:
        return self.dead_bytes / self.shard_bytes if self.shard_bytes else 0.0

    def summary(self) -> str:
        done = f"{self.kept} image(s) kept where they were, {self.packed} packed"
        if self.compacted:
            return f"{done}; compacted: all packed afresh ({self.shard_bytes / 1e6:.1f} MB); {self.index}"
        return (
            f"{done}; {len(self.carried)} shard(s) carried unchanged; removed images hold "
            f"{self.dead_fraction:.1%} of {self.shard_bytes / 1e6:.1f} MB; {self.index}"
        )


def _live_bytes(members: Iterator[tuple[str, str, int]]) -> dict[str, int]:
    """shard -> bytes its live images take: each image's header blocks (three for a name
    past ustar's 100 bytes: PAX) and its data, once per stored copy."""
    live: dict[str, int] = defaultdict(int)
    for shard, path, size in members:
        live[shard] += tarfile.BLOCKSIZE * (1 if len(path.encode()) <= 100 else 3) + _padded(size)
    return live


def _dead(total: int, live: int) -> int:
    """A shard's bytes that no live image uses (beyond the archive's end padding)."""
    return max(0, total - live - tarfile.RECORDSIZE)


def dead_share(raw: RawImages) -> tuple[float, int]:
    """(share of the shard bytes that removed images hold, all shard bytes) of a data/raw."""
    located = {(e.member.shard, e.member.offset): e for e in raw}
    live = _live_bytes((shard.name, e.path, e.member.size) for (shard, _), e in located.items())
    sizes = {shard.name: shard.stat().st_size for shard, _ in located}
    total = sum(sizes.values())
    return (sum(_dead(size, live[name]) for name, size in sizes.items()) / total if total else 0.0), total


def _trusted(previous: RawImages) -> dict[str, tuple[str, int, int]]:
    """sha256 -> (shard, offset, size) of the previous images whose shard can be carried: each
    shard's first and last image and a content-seeded sample of the rest read back and checked
    against their SHA-256. A shard that fails is left behind (its images are read from the
    source again), with a message."""
    located: list[tuple[str, tuple[str, int, int]]] = []  # (sha256, where) in shard and byte order
    for shard, group in groupby(sorted(previous, key=_location), key=_shard_of):
        entries = list(group)
        if not all(_intact(e) for e in _audited(entries)):
            print(
                f"download: {shard} does not hold what the previous index says: its images are packed again"
            )
            continue
        located += [(e.sha256, (shard.name, e.member.offset, e.member.size)) for e in entries]
    return dict(reversed(located))  # bytes stored twice: the first copy


def _location(entry: Entry) -> tuple[Path, int]:
    return entry.member.shard, entry.member.offset


def _shard_of(entry: Entry) -> Path:
    return entry.member.shard


def _audited(entries: list[Entry]) -> list[Entry]:
    """A shard's first and last image and a sample of the rest (visionops.audit: 2 %, 8 to 200,
    seeded by their SHA-256s), so a 60,000-image shard costs 200 reads, not 1,200."""
    if len(entries) <= 2:
        return entries
    middle = {entry.sha256: entry for entry in entries[1:-1]}
    return [entries[0], *(middle[key] for key in audit.sample(list(middle))), entries[-1]]


def _intact(entry: Entry) -> bool:
    try:
        return hashlib.sha256(entry.member.read()).hexdigest() == entry.sha256
    except (OSError, VisionOpsError):
        return False


def _next_number(previous: RawImages | None) -> int:
    """The number the next new shard gets: after every previous shard's."""
    names = {entry.member.shard.name for entry in previous} if previous is not None else set()
    return max((int(name[4:-4]) for name in names), default=-1) + 1


def _padded(size: int) -> int:
    """Bytes a member's data takes in a tar: whole 512-byte blocks."""
    return -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


class RawImages:
    """Read data/raw: the images in path order (split, class, file), and any one image's bytes by
    path. `index` is what the index's fragments say (data/raw_index.py)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.index = read_index(self.root)
        self._shards: dict[str, tuple[Path, int]] = {}  # one Path (and size) per shard, shared
        rows = sorted(self.index.rows.values(), key=lambda item: sort_key(item[0][0]))
        self.entries = self._checked_columns([row for row, _, _ in rows])
        if self.entries is None:  # a damaged row: find the first and name it, row by row
            self.entries = [self._entry(row, fragment, line) for row, fragment, line in rows]
        self._by_path = {entry.path: entry for entry in self.entries}

    def _checked_columns(self, rows: list[tuple[str, ...]]) -> list[Entry] | None:
        """Every row as an Entry when all pass `_entry`'s checks, done column by column at C speed
        (row by row took 0.3-0.5 s a stage at 60,000 images); None when any row fails."""
        if not rows:
            return []
        paths, splits, labels, names, offset_texts, size_texts, sha256s = zip(*rows, strict=True)
        try:
            offsets, sizes = list(map(int, offset_texts)), list(map(int, size_texts))
        except ValueError:
            return None
        shards = {name: self._shard(name) for name in set(names) if SHARD_NAME.fullmatch(name)}
        if len(shards) < len(set(names)) or min(size for _, size in shards.values()) < 0:
            return None
        ends = map(add, offsets, sizes)
        if min(offsets) < 0 or min(sizes) < 0 or not all(map(le, ends, (shards[n][1] for n in names))):
            return None
        if {len(sha256) for sha256 in sha256s} != {64} or "".join(sha256s).strip(HEX_DIGITS):
            return None
        folders = set(splits) | set(labels)
        if folders & {"", ".", ".."} or any("/" in folder for folder in folders):
            return None
        if not all(map(str.startswith, paths, map("{}/{}/".format, splits, labels))):
            return None
        if set(map(str.count, paths, repeat("/"))) != {2} or any(map(str.endswith, paths, repeat(BAD_ENDS))):
            return None
        members = map(Member, paths, (shards[name][0] for name in names), offsets, sizes)
        return list(map(Entry, map(sys.intern, splits), map(sys.intern, labels), members, sha256s))

    def _entry(self, row: tuple[str, ...], fragment: str, line: int) -> Entry:
        """One checked row: a shard of this data/raw (never a path elsewhere), a byte range inside
        it, and a path whose split and class folder are the row's."""
        path, split, label, name, offset_text, size_text, sha256 = row
        try:
            offset, size = int(offset_text), int(size_text)
        except ValueError:
            raise VisionOpsError(
                f"{self._source(fragment)} is damaged (line {line}: {row})", REBUILD
            ) from None
        problem = _row_problem(path, split, label, name, offset, size) or _sha256_problem(sha256)
        if problem is None:
            shard, shard_size = self._shard(name)
            if shard_size < 0:
                problem = f"shard {name} does not exist in {self.root / SHARDS}"
            elif offset + size > shard_size:
                problem = f"bytes {offset}-{offset + size} lie beyond the end of {name} ({shard_size} bytes)"
        if problem is not None:
            raise VisionOpsError(
                f"{self._source(fragment)} is damaged (line {line}, {path!r}): {problem}", REBUILD
            )
        return Entry(sys.intern(split), sys.intern(label), Member(path, shard, offset, size), sha256)

    def _source(self, fragment: str) -> Path:
        """The file a row came from: a fragment of the index, or an older visionops' index.csv.
        Named only for an error: building 60,000 paths cost a second per stage."""
        return self.root / "index" / fragment if fragment else self.root / "index.csv"

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
            raise VisionOpsError(f"{path} is not in {self.root}'s index", REBUILD) from None


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
    """The images of the data/raw at root as files under dest/<split>/<class>/, as its index
    names them (only `split` if given): to look at them, edit them, or predict on them. The
    inverse of `pack_tree`; returns dest."""
    for entry in RawImages(root):
        if split is None or entry.split == split:
            target = Path(dest) / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(entry.member.read())
    return Path(dest)


SHARD_NAME = re.compile(r"raw-\d{3,}\.tar")
HEX_DIGITS = "0123456789abcdef"
BAD_ENDS = ("/", "/.", "/..")  # a path whose file name is empty, '.' or '..'


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
    if not isinstance(sha256, str) or len(sha256) != 64 or sha256.strip(HEX_DIGITS):
        return f"sha256 {sha256!r} is not 64 lowercase hex digits"
    return None
