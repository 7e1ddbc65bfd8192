"""What validate learnt about each image, kept by file content (sha256 of the bytes) in an output
beside the manifest, so that a re-run after images were added, removed or relabelled decodes
only the new or changed ones.

The file is part of data/validated: DVC versions it with the manifest and `dvc pull` brings it
to a teammate. Its sha256 is recorded in meta.json; a file that does not match (damaged, edited,
from another project) or was written by another version of `describe_image` is set aside with
a message and every image is described again: a cache is never trusted on its word.
"""

from __future__ import annotations

import json
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
    if stored.get("version") != VERSION:
        return _ignored(path, f"it was written by another version ({stored.get('version')}, now {VERSION})")
    return stored["rows"]


def save(path: Path, rows: Descriptions) -> str:
    """Write `rows` (the same rows in the same order give the same bytes); returns the sha256
    to record in meta.json."""
    write_text(path, json.dumps({"version": VERSION, "rows": rows}, separators=(",", ":")) + "\n")
    return file_sha256(path)


def _ignored(path: Path, why: str) -> Descriptions:
    print(f"validate: not reusing {path}: {why}; every image is described again", file=sys.stderr)
    return {}
