"""What a folder source holds now: every file's path, size and SHA-256, in data/listing/ (a table
of append-only fragments, data/fragments.py).

The `scan` stage runs on every `dvc repro` (DVC's `always_changed`) and rewrites the listing
only when the folder changed, so that download re-runs exactly when an image was added,
removed, renamed, moved to another class or edited. Making the folder itself a DVC dependency
did the same but cost DVC ~3 s per pass over a 60,000-file tree, and it passes six times
per re-run (status, run-cache, lock); a walk here takes ~0.3 s.

A file is hashed only when it is new or its stamp (size, mtime, ctime, inode: git's own test
for "maybe changed") differs from the last scan's. The stamps are this machine's own and
live outside DVC's outputs (in .visionops/), behind a checksum: a damaged or foreign stamp
file is ignored and every file hashed again, never trusted. The listing holds no stamps, so
the same files give the same bytes on every machine.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from visionops.data.folders import FoundFile, walk_folder
from visionops.errors import VisionOpsError
from visionops.io import publish_dir, staging_dir_for, write_text

LISTING_COLUMNS = ["path", "size", "sha256"]
STAMPS_MARK = "# visionops scan stamps v2"  # a format change makes older files untrusted
RESCAN = "run `dvc repro` again (the scan stage lists the folder afresh)"


class SourceFile(NamedTuple):
    """One file of the folder source as the listing records it (a tuple: 60,000 per scan)."""

    path: str  # relative to data.path, '/'-separated
    size: int
    sha256: str


def check_folder(path: str | None) -> Path:
    """data.path as a folder of images, or an error naming what it is instead."""
    source = Path(path).expanduser() if path else None
    if source is None or not source.is_dir():
        raise VisionOpsError(
            f"data.path {path!r} is not an existing folder",
            "set data.path to a folder of class folders (<class>/*.jpg, or train/ and test/ inside)",
        )
    if (source / "dvc.yaml").is_file():
        raise VisionOpsError(
            f"data.path {path!r} is a DVC project (it holds dvc.yaml), not a folder of images",
            "set data.path to the folder whose sub-folders are your classes (<class>/*.jpg), "
            "or that holds train/ and test/ with the class folders inside",
        )
    return source


def update_listing(
    source: Path | None, follow_links: bool, listing: Path, stamps: Path, progress: bool = True
) -> tuple[int, str | None]:
    """Bring `listing` (a folder of fragments: data/fragments.py) up to date with the files
    under `source` (None: no folder, an empty listing): (files listed, what changed; None when
    the listing was already current).

    Fast path: when every file's stamp and the listing's bytes are those the last scan
    recorded, nothing is parsed or hashed. Otherwise files whose stamp changed are hashed, and
    the listing gets a new fragment with the new or changed rows (and removed.csv the rows
    taken back) only if its rows differ: a version writes what changed, and an unchanged file
    keeps its stamp, so DVC re-hashes nothing."""
    from visionops.data import fragments

    found = walk_folder(source, follow_links) if source is not None else []
    where = os.path.realpath(source) if source is not None else ""
    now = [stamp(f) for f in found]
    stamps_digest = _digest("\0".join(f"{f.path}\0{stamped}" for f, stamped in zip(found, now, strict=True)))
    header, body = _read_stamps(stamps)
    if header == _header(where, stamps_digest, fragments.digest(listing), body):
        return len(found), None
    trusted = header is not None and header.startswith(f"{STAMPS_MARK} of {where}; ")
    trusted = trusted and header.rsplit(" sha256 ", 1)[-1] == _digest(body)
    if header is not None and not trusted:
        print(f"scan: {stamps} is damaged, of another folder or older; every file is hashed again")
    known = _stamp_records(body) if trusted else {}
    fresh = [f for f, stamped in zip(found, now, strict=True) if known.get(f.path, ("",))[0] != stamped]
    hashed = dict(_hash_files(fresh, progress))
    rows = [SourceFile(f.path, f.size, hashed.get(f.path) or known[f.path][1]) for f in found]
    table = {row.path: (row.path, str(row.size), row.sha256) for row in rows}
    previous = _previous(listing)
    change = None
    if previous is None or {key: row for key, (row, _, _) in previous.rows.items()} != table:
        staging = staging_dir_for(listing)
        fragments.write_fragments(staging, LISTING_COLUMNS, table, previous, listing)
        publish_dir(staging, listing)
        before = {key: row[2] for key, (row, _, _) in previous.rows.items()} if previous else {}
        change = describe_change(before, {row.path: row.sha256 for row in rows})
    body = "\0".join(
        f"{row.path}\0{stamp_text}\0{row.sha256}" for row, stamp_text in zip(rows, now, strict=True)
    )
    write_text(stamps, _header(where, stamps_digest, fragments.digest(listing), body) + "\n" + body)
    return len(rows), change


def stamp(found: FoundFile) -> str:
    """A file's stamp as the stamps file stores it: size, mtime_ns, ctime_ns and inode, compared
    as text (no parsing per file)."""
    return f"{found.size}:{found.mtime_ns}:{found.ctime_ns}:{found.inode}"


def _hash_files(files: list[FoundFile], progress: bool) -> Iterable[tuple[str, str]]:
    from tqdm import tqdm

    bar = tqdm(files, desc="scan: hash new and changed files", unit="file", disable=not progress or None)
    for found in bar:
        try:
            with open(found.file, "rb") as handle:
                yield found.path, hashlib.file_digest(handle, "sha256").hexdigest()
        except OSError as exc:
            raise VisionOpsError(
                f"cannot read {found.file}: {exc.strerror}",
                "make it readable by this user, or move it out of data.path",
            ) from None


def _read_stamps(stamps: Path) -> tuple[str | None, str]:
    """(header line, body) of the stamps file; (None, "") when there is none or it is not text."""
    try:
        header, _, body = stamps.read_text(encoding="utf-8").partition("\n")
    except (FileNotFoundError, UnicodeDecodeError):
        return None, ""
    return header, body


def _header(where: str, stamps_digest: str, listing_digest: str, body: str) -> str:
    """What the stamps file's first line says: the folder, the digest of every file's stamp and
    of the listing those stamps gave, and the body's own checksum (last, after ' sha256 ')."""
    digests = f"stamps {stamps_digest} listing {listing_digest} sha256 {_digest(body)}"
    return f"{STAMPS_MARK} of {where}; {digests}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _stamp_records(body: str) -> dict[str, tuple[str, str]]:
    """path -> (stamp, sha256) of a checked stamps body: `path NUL stamp NUL sha256`, joined by
    NUL (the one character no file name holds), split at C speed."""
    fields = body.split("\0") if body else []
    return dict(zip(fields[0::3], zip(fields[1::3], fields[2::3], strict=True), strict=True))


def _previous(listing: Path):
    """The listing being replaced, or None when there is none or it is damaged (a new one is
    then written whole)."""
    from visionops.data import fragments

    if not fragments.has_fragments(listing):
        return None
    try:
        return fragments.read_fragments(listing, LISTING_COLUMNS, RESCAN)
    except VisionOpsError as exc:
        print(f"scan: not reusing {listing} ({exc.cause}); it is written whole")
        return None


def read_listing(path: Path) -> list[SourceFile]:
    """The rows `update_listing` wrote, sorted by path; a damaged listing is an error with the fix."""
    from visionops.data import fragments

    if not fragments.has_fragments(path):
        raise VisionOpsError(f"{path} is missing: the folder source has not been scanned", RESCAN)
    table = fragments.read_fragments(path, LISTING_COLUMNS, RESCAN)
    paths = sorted(table.rows)
    rows = [table.rows[key][0] for key in paths]
    try:
        sizes = [int(row[1]) for row in rows]
    except ValueError as exc:
        raise VisionOpsError(f"{path} is damaged ({exc})", RESCAN) from None
    outside = _outside_path(paths)
    if outside is not None:
        raise VisionOpsError(
            f"{path} is damaged (the row for {outside!r} is not a path inside data.path)", RESCAN
        )
    return list(map(SourceFile, paths, sizes, [row[2] for row in rows]))


# Where a path has an empty, '.' or '..' component (or a leading '/'), with NUL around each path
OUTSIDE = ("\0/", "/\0", "//", "/./", "/../", "\0./", "\0../", "/.\0", "/..\0", "\0.\0", "\0..\0", "\0\0")


def _outside_path(paths: list[str]) -> str | None:
    """The first of `paths` that is not a relative path inside the folder, or None: searched in
    all of them joined by NUL (which no path holds), at C speed; row by row only to name one."""
    joined = "\0" + "\0".join(paths) + "\0"
    if not any(marker in joined for marker in OUTSIDE):
        return None
    return next((p for p in paths if any(part in ("", ".", "..") for part in p.split("/"))), None)


def describe_change(old: dict[str, str], new: dict[str, str]) -> str:
    """'12 added, 3 removed, 1 changed' between two listings (path -> sha256), with the first
    path of each."""
    kinds = {
        "added": sorted(new.keys() - old.keys()),
        "removed": sorted(old.keys() - new.keys()),
        "changed": sorted(p for p in new.keys() & old.keys() if new[p] != old[p]),
    }
    parts = [f"{len(paths)} {kind} (first: {paths[0]})" for kind, paths in kinds.items() if paths]
    return ", ".join(parts) or "no change"
