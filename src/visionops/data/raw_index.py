"""data/raw's index: what each image's path, split and label are now, and where its bytes lie,
as append-only fragments (data/fragments.py):

    data/raw/index/0000.csv 0001.csv ...   the rows each version added (path, split, label,
                                           shard, offset, size, sha256), never rewritten
    data/raw/index/removed.csv             (fragment, path) of rows a later version took back

A version writes one fragment with the rows it adds (new images, and images moved to another
path or class: a row pointing at bytes already stored) and rewrites only removed.csv, so a
version that adds 1 % of the images writes 1 % of the index. A compaction writes every live row
into one fragment again. The single index.csv of earlier versions is read as it is and written
as a fragment by the next version.
"""

from __future__ import annotations

from pathlib import Path

from visionops.data.fragments import (
    Fragments,
    add_rows,
    has_fragments,
    read_fragments,
    read_rows,
    write_fragments,
)
from visionops.errors import VisionOpsError

INDEX_COLUMNS = ["path", "split", "label", "shard", "offset", "size", "sha256"]
FOLDER, LEGACY = "index", "index.csv"
REBUILD = "re-create it with `dvc repro -f -s download` (or `dvc checkout data/raw` for the recorded version)"

IndexState = Fragments  # its rows, the fragment of each ("" for the single index.csv), what is taken back


def has_index(root: Path) -> bool:
    """Does `root` hold a data/raw index (fragments, or the single file of earlier versions)?"""
    return has_fragments(Path(root) / FOLDER) or (Path(root) / LEGACY).is_file()


def read_index(root: Path) -> IndexState:
    """Every live row of the data/raw at `root`; a damaged or missing index names the fix."""
    root = Path(root)
    if has_fragments(root / FOLDER):
        return read_fragments(root / FOLDER, INDEX_COLUMNS, REBUILD)
    if not (root / LEGACY).is_file():
        raise VisionOpsError(
            f"{root} has no index ({FOLDER}/ or {LEGACY}): it is not packed raw data (a folder of "
            "class folders from an older visionops, or a half-restored checkout)",
            REBUILD,
        )
    state = IndexState()
    add_rows(state, root / LEGACY, read_rows(root / LEGACY, INDEX_COLUMNS, REBUILD), "", REBUILD, set())
    return state


def write_index(
    root: Path, rows: dict[str, tuple], previous: IndexState | None, previous_root: Path | None
) -> str:
    """The index of a new version of `rows` (path -> row) under `root`: see data/fragments.py.
    A previous single index.csv (or none) gives one fragment holding every row."""
    carried = previous if previous is not None and previous.fragments else None
    where = Path(previous_root) / FOLDER if previous_root is not None else None
    return "index: " + write_fragments(Path(root) / FOLDER, INDEX_COLUMNS, rows, carried, where)


def sort_key(path: str) -> tuple[str, ...]:
    """Split, then class, then file name: the order of a walk through class folders."""
    return tuple(path.split("/", 2))
