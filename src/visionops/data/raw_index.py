"""data/raw's index as append-only fragments: what each image's path, split and label are now,
and where its bytes lie.

    data/raw/index/0000.csv  0001.csv ...   the rows each version added (path, split, label,
                                            shard, offset, size, sha256), never rewritten
    data/raw/removed.csv                    (fragment, path) of rows a later version took back

A version writes one fragment with the rows it adds (new images, and images moved to another
path or class: a row pointing at bytes already stored), and rewrites only removed.csv, which
grows with what was removed or moved since the last compaction. So a version that adds 1 % of
the images writes 1 % of the index (Lance's fragments and deletion files: the same idea). A
fragment none of whose rows is live is dropped with its entries in removed.csv; a compaction
writes every live row into one fragment again. The single index.csv of earlier versions is read
as it is and written as a fragment by the next version.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from visionops.errors import VisionOpsError

INDEX_COLUMNS = ["path", "split", "label", "shard", "offset", "size", "sha256"]
FOLDER, REMOVED, LEGACY = "index", "removed.csv", "index.csv"
REMOVED_COLUMNS = ["fragment", "path"]
REBUILD = "re-create it with `dvc repro -f -s download` (or `dvc checkout data/raw` for the recorded version)"

Row = tuple[str, str, str, str, str, str, str]  # as INDEX_COLUMNS, text as stored


@dataclass
class IndexState:
    """The live rows of a data/raw and where each came from (fragment name; "" for the single
    index.csv of earlier versions), the fragments, and what removed.csv takes back."""

    rows: dict[str, tuple[Row, str, int]] = field(default_factory=dict)  # path -> row, fragment, line
    fragments: list[str] = field(default_factory=list)
    removed: set[tuple[str, str]] = field(default_factory=set)

    @property
    def legacy(self) -> bool:
        return not self.fragments and bool(self.rows)


def has_index(root: Path) -> bool:
    """Does `root` hold a data/raw index (fragments, or the single file of earlier versions)?"""
    return (Path(root) / FOLDER).is_dir() or (Path(root) / LEGACY).is_file()


def read_index(root: Path) -> IndexState:
    """Every live row of the data/raw at `root`; a damaged or missing index names the fix."""
    root = Path(root)
    state = IndexState()
    if not (root / FOLDER).is_dir():
        if not (root / LEGACY).is_file():
            raise VisionOpsError(
                f"{root} has no index ({FOLDER}/ or {LEGACY}): it is not packed raw data (a folder of "
                "class folders from an older visionops, or a half-restored checkout)",
                REBUILD,
            )
        for line, row in _rows(root / LEGACY, INDEX_COLUMNS):
            _add(state, root / LEGACY, row, "", line)
        return state
    state.fragments = sorted(p.name for p in (root / FOLDER).glob("*.csv"))
    if (root / REMOVED).is_file():
        state.removed = {(fragment, path) for _, (fragment, path) in _rows(root / REMOVED, REMOVED_COLUMNS)}
    unknown = sorted({fragment for fragment, _ in state.removed} - set(state.fragments))
    if unknown:
        raise VisionOpsError(
            f"{root / REMOVED} is damaged: it names fragment {unknown[0]}, which {FOLDER}/ lacks", REBUILD
        )
    for fragment in state.fragments:
        for line, row in _rows(root / FOLDER / fragment, INDEX_COLUMNS):
            if (fragment, row[0]) not in state.removed:
                _add(state, root / FOLDER / fragment, row, fragment, line)
    return state


def _add(state: IndexState, where: Path, row: Row, fragment: str, line: int) -> None:
    if row[0] in state.rows:  # one image would silently replace another
        raise VisionOpsError(f"{where} is damaged: {row[0]} is listed twice (line {line})", REBUILD)
    state.rows[row[0]] = (row, fragment, line)


def write_index(
    root: Path, rows: dict[str, Row], previous: IndexState | None, previous_root: Path | None
) -> str:
    """The index of a new version of `rows` (path -> row) under `root`: the previous version's
    fragments that still hold a live row are carried as they are (a hard link), the rows it lacks
    go into one new fragment, and removed.csv takes back the ones no longer live. With no
    previous (or a compacted version), one fragment holds every row. What it wrote, in words."""
    from visionops.io import link_or_copy

    folder = Path(root) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    prior = previous.rows if previous is not None and not previous.legacy else {}
    new = sorted(
        (path for path, row in rows.items() if path not in prior or prior[path][0] != row), key=sort_key
    )
    taken_back = {(fragment, path) for path, (row, fragment, _) in prior.items() if rows.get(path) != row}
    removed = (previous.removed if prior else set()) | taken_back
    live = {fragment for path, (_, fragment, _) in prior.items() if (fragment, path) not in taken_back}
    for fragment in sorted(live):
        link_or_copy(Path(previous_root) / FOLDER / fragment, folder / fragment)
    removed = {(fragment, path) for fragment, path in removed if fragment in live}
    if new:
        number = max((int(name[:-4]) for name in (previous.fragments if prior else [])), default=-1) + 1
        _write_rows(folder / f"{number:04d}.csv", INDEX_COLUMNS, [rows[path] for path in new])
    _write_rows(Path(root) / REMOVED, REMOVED_COLUMNS, sorted(removed))
    return (
        f"{len(new)} index row(s) written, {len(live)} fragment(s) carried, {len(removed)} row(s) taken back"
    )


def sort_key(path: str) -> tuple[str, ...]:
    """Split, then class, then file name: the order of a walk through class folders."""
    return tuple(path.split("/", 2))


def _write_rows(path: Path, columns: list[str], rows: list) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)


def _rows(path: Path, columns: list[str]):
    """(line number, row as a tuple of text) of a CSV with exactly `columns`."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            if next(reader, None) != columns:
                raise VisionOpsError(f"{path} does not have the columns {columns}", REBUILD)
            for line, row in enumerate(reader, 2):
                if len(row) != len(columns):
                    raise VisionOpsError(f"{path} is damaged (line {line}: {row})", REBUILD)
                yield line, tuple(row)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise VisionOpsError(f"{path} is damaged: not a CSV index ({type(exc).__name__})", REBUILD) from None
