"""A table of one row per image, kept so that a new version writes what it changes: append-only
fragments and a list of the rows taken back (Lance's fragments and deletion files, on DVC's
file-level deduplication). data/raw's index and the scan stage's listing are such tables.

    FOLDER/0000.csv 0001.csv ...   the rows each version added, never rewritten
    FOLDER/removed.csv             (fragment, key) of rows a later version took back

A version writes one fragment with its new or changed rows, and rewrites only removed.csv,
which grows with what was removed or changed since the last rewrite. A fragment with no live
row left is dropped with its entries; `write_fragments` with no previous writes every row into
one fragment. A row's key is its first column (a path); keys are unique among the live rows.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from itertools import count, repeat
from pathlib import Path

from visionops.errors import VisionOpsError

REMOVED = "removed.csv"
REMOVED_COLUMNS = ["fragment", "key"]

Row = tuple[str, ...]  # as the table's columns, text as stored


@dataclass
class Fragments:
    """The live rows of a table and where each came from (fragment name, line), the fragments,
    and what removed.csv takes back."""

    rows: dict[str, tuple[Row, str, int]] = field(default_factory=dict)  # key -> row, fragment, line
    fragments: list[str] = field(default_factory=list)
    removed: set[tuple[str, str]] = field(default_factory=set)


def has_fragments(folder: Path) -> bool:
    return (Path(folder) / REMOVED).is_file()


def read_fragments(folder: Path, columns: list[str], fix: str) -> Fragments:
    """Every live row of the table in `folder`; a damaged one is an error with `fix`."""
    folder, table = Path(folder), Fragments()
    if not has_fragments(folder):
        raise VisionOpsError(f"{folder} holds no {REMOVED}: not a table of fragments", fix)
    table.fragments = sorted(p.name for p in folder.glob("[0-9]*.csv"))
    table.removed = {(fragment, key) for fragment, key in read_rows(folder / REMOVED, REMOVED_COLUMNS, fix)}
    unknown = sorted({fragment for fragment, _ in table.removed} - set(table.fragments))
    if unknown:
        raise VisionOpsError(
            f"{folder / REMOVED} is damaged: it names fragment {unknown[0]}, which {folder} lacks", fix
        )
    taken: dict[str, set[str]] = {}
    for fragment, key in table.removed:
        taken.setdefault(fragment, set()).add(key)
    for fragment in table.fragments:
        path = folder / fragment
        add_rows(table, path, read_rows(path, columns, fix), fragment, fix, taken.get(fragment, set()))
    return table


def add_rows(
    table: Fragments, where: Path, rows: list[Row], fragment: str, fix: str, taken: set[str]
) -> None:
    """Add a fragment's rows (line 2 onwards) but those whose keys `taken` holds. Whole lists at
    C speed: a function call per row cost ~0.1 s a table at 60,000 rows, in every stage."""
    numbered = zip(rows, repeat(fragment), count(2))
    live = [item for item in numbered if item[0][0] not in taken] if taken else list(numbered)
    keys = [row[0] for row, _, _ in live]
    if len(set(keys)) != len(keys) or not table.rows.keys().isdisjoint(keys):
        for row, _, line in live:  # one row would silently replace another: name the first
            if row[0] in table.rows:
                raise VisionOpsError(f"{where} is damaged: {row[0]} is listed twice (line {line})", fix)
            table.rows[row[0]] = (row, fragment, line)
    table.rows.update(zip(keys, live, strict=True))


def write_fragments(
    folder: Path,
    columns: list[str],
    rows: dict[str, Row],
    previous: Fragments | None,
    previous_folder: Path | None,
) -> str:
    """The table `rows` (key -> row) in `folder`: the previous version's fragments that still hold
    a live row are carried as they are (a hard link), the rows they lack go into one new
    fragment, and removed.csv takes back the ones no longer live. What it wrote, in words."""
    from visionops.io import link_or_copy

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prior = previous.rows if previous is not None else {}
    new = sorted(key for key, row in rows.items() if key not in prior or prior[key][0] != row)
    taken_back = {(fragment, key) for key, (row, fragment, _) in prior.items() if rows.get(key) != row}
    live = {fragment for key, (_, fragment, _) in prior.items() if (fragment, key) not in taken_back}
    for fragment in sorted(live):
        link_or_copy(Path(previous_folder) / fragment, folder / fragment)
    removed = {
        (fragment, key)
        for fragment, key in (previous.removed if previous else set()) | taken_back
        if fragment in live
    }
    if new:
        number = max((int(name[:-4]) for name in (previous.fragments if previous else [])), default=-1) + 1
        write_rows(folder / f"{number:04d}.csv", columns, [rows[key] for key in new])
    write_rows(folder / REMOVED, REMOVED_COLUMNS, sorted(removed))
    return f"{len(new)} row(s) written, {len(live)} fragment(s) carried, {len(removed)} taken back"


def digest(folder: Path) -> str:
    """sha256 over the table's files (names and bytes): whether it is the one last seen."""
    found = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.csv")) if Path(folder).is_dir() else []:
        found.update(path.name.encode() + b"\0" + path.read_bytes())
    return found.hexdigest()


def write_rows(path: Path, columns: list[str], rows: list) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)


def read_rows(path: Path, columns: list[str], fix: str) -> list[Row]:
    """The rows (tuples of text) of a CSV with exactly `columns`, line 2 onwards."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            if next(reader, None) != columns:
                raise VisionOpsError(f"{path} does not have the columns {columns}", fix)
            rows = list(map(tuple, reader))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise VisionOpsError(f"{path} is damaged: not a CSV table ({type(exc).__name__})", fix) from None
    if set(map(len, rows)) - {len(columns)}:
        line, row = next((n, r) for n, r in enumerate(rows, 2) if len(r) != len(columns))
        raise VisionOpsError(f"{path} is damaged (line {line}: {list(row)})", fix)
    return rows
