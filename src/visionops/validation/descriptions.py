"""What validate learnt about each image, kept by file content (sha256 of the bytes) in an output
beside the manifest, so that a re-run after images were added, removed or relabelled decodes
only the new or changed ones.

The file is part of data/validated: DVC versions it with the manifest and `dvc pull` brings it
to a teammate. Its sha256 is recorded in meta.json; a file that does not match (damaged, edited,
from another project), is not a descriptions file or was written by another version of
`describe_image` is set aside with a message and every image is described again. A file that
passes those checks is still not believed: each run describes a sample of the images it would
reuse again (`audit_sample`, chosen from the cached content itself) and uses the cache only when
every one comes out the same.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from visionops.io import file_sha256, write_text

VERSION = 4  # bump when manifest.describe_image changes what it records (4: fixed-size quality stats)
NAME = "descriptions.json"
META_KEY = "descriptions_sha256"  # where meta.json records the file's sha256

Descriptions = dict[str, dict[str, Any]]


def load(folder: Path) -> Descriptions:
    """The descriptions validate wrote into `folder` last time; {} (and why, on stderr) when
    there are none that can be trusted."""
    path, meta = Path(folder) / NAME, Path(folder) / "meta.json"
    if not path.is_file():
        return {}
    try:
        recorded = json.loads(meta.read_text(encoding="utf-8")).get(META_KEY)
        if recorded != file_sha256(path):
            return _ignored(path, f"its sha256 is not the one {meta} records (damaged or edited)")
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, AttributeError) as exc:
        return _ignored(path, f"it cannot be read ({type(exc).__name__})")
    if not isinstance(stored, dict) or not isinstance(stored.get("rows"), dict):
        return _ignored(
            path, f"it holds a JSON {type(stored).__name__}, not the descriptions validate writes"
        )
    if stored.get("version") != VERSION:
        return _ignored(path, f"it was written by another version ({stored.get('version')}, now {VERSION})")
    if not all(isinstance(row, dict) for row in stored["rows"].values()):
        return _ignored(path, "a row is not a description")
    return stored["rows"]


AUDIT_SHARE, AUDIT_MIN = 0.02, 8  # of the reused descriptions, described again every run


def audit_sample(rows: Descriptions, keys: list[str]) -> list[str]:
    """Which of `keys` (cached in `rows`) to describe again: AUDIT_SHARE of them, at least
    AUDIT_MIN, ordered by a hash seeded with their cached content, so the same cache gives the
    same sample (and the same bytes downstream) while any edit to it draws another."""
    import hashlib

    if not keys:
        return []
    seed = hashlib.sha256()
    for key in sorted(keys):
        seed.update(key.encode() + canonical(rows[key]).encode())
    draw = seed.hexdigest().encode()
    count = min(len(keys), max(AUDIT_MIN, math.ceil(AUDIT_SHARE * len(keys))))
    return sorted(sorted(keys), key=lambda key: hashlib.sha256(draw + key.encode()).digest())[:count]


def canonical(row: dict[str, Any]) -> str:
    """A description as the cache stores it (NaN compares equal to NaN here)."""
    return json.dumps(row, sort_keys=True, separators=(",", ":"))


def save(path: Path, rows: Descriptions) -> str:
    """Write `rows` (the same rows in the same order give the same bytes); returns the sha256
    to record in meta.json."""
    write_text(path, json.dumps({"version": VERSION, "rows": rows}, separators=(",", ":")) + "\n")
    return file_sha256(path)


def _ignored(path: Path, why: str) -> Descriptions:
    print(f"validate: not reusing {path}: {why}; every image is described again", file=sys.stderr)
    return {}
