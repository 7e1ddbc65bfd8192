"""What validate learnt about each image, kept by file content (sha256 of the bytes) in an output
beside the manifest, so that a re-run after images were added, removed or relabelled decodes
only the new or changed ones.

The descriptions are part of data/validated: DVC versions them with the manifest and `dvc pull`
brings them to a teammate. They are kept as parts (`descriptions/part-NNNN.json`), and a new
version adds a part for what it describes anew and never rewrites one (issue 48: DVC stores and
moves a file once, so a version costs what it adds); parts no live image uses are dropped, and
once descriptions of removed images exceed MAX_DEAD of the rows kept, one part holds them all
again. Each part's sha256 is recorded in meta.json; a part that does not match (damaged, edited,
from another project), is not a descriptions file or was written by another version of
`describe_image` is set aside with a message and its images are described again. What passes
those checks is still not believed: each run describes a sample of the images it would reuse
again (`audit_sample`, drawn by a hash of their content keys) and uses the cache only when every
one comes out the same. The single `descriptions.json` of earlier versions is read once and
written as parts.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visionops.io import file_sha256, link_or_copy, write_text

VERSION = 4  # bump when manifest.describe_image changes what it records (4: fixed-size quality stats)
FOLDER = "descriptions"  # data/validated/descriptions/part-NNNN.json
META_KEY = "descriptions"  # meta.json: [{"part": name, "sha256": hex}, ...]
OLD_NAME, OLD_META_KEY = "descriptions.json", "descriptions_sha256"  # before issue 48: one file
MAX_DEAD = 0.25  # data.max_dead_fraction's default: the share of kept rows that describe removed images

Descriptions = dict[str, dict[str, Any]]


@dataclass
class Cache:
    """The descriptions an earlier validate left in a folder: every row, and which rows each
    part holds (the parts that can be carried into the next version as they are)."""

    rows: Descriptions = field(default_factory=dict)
    parts: dict[Path, set[str]] = field(default_factory=dict)


def load(folder: Path) -> Cache:
    """The descriptions validate wrote into `folder` last time; the parts that cannot be trusted
    are left out, with why on stderr."""
    folder, cache = Path(folder), Cache()
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return cache
    except (OSError, ValueError) as exc:
        return _ignored(folder / "meta.json", f"it cannot be read ({type(exc).__name__})")
    if not isinstance(meta, dict):
        return _ignored(folder / "meta.json", "it is not validate's record")
    if OLD_META_KEY in meta and (folder / OLD_NAME).is_file():  # the single file of earlier versions
        rows = _part(folder / OLD_NAME, meta[OLD_META_KEY])
        print(
            f"validate: {folder / OLD_NAME} (one file, before issue 48) is written again as {FOLDER}/ parts"
        )
        return Cache(rows or {}, {})  # its rows are reused; it is written again as parts
    listed = meta.get(META_KEY) or []
    if not isinstance(listed, list):
        return _ignored(folder / "meta.json", f"its '{META_KEY}' is not a list of parts")
    for item in listed:
        name = item.get("part") if isinstance(item, dict) else None
        if not isinstance(name, str) or "/" in name or not name.startswith("part-"):
            _ignored(folder / "meta.json", f"{item!r} does not name a part")
            continue
        rows = _part(folder / FOLDER / name, item.get("sha256"))
        if rows is not None:
            cache.rows.update(rows)
            cache.parts[folder / FOLDER / name] = set(rows)
    return cache


def _part(path: Path, recorded: Any) -> Descriptions | None:
    """The rows of one part file, checked; None (and why, on stderr) when it cannot be trusted."""
    try:
        if recorded != file_sha256(path):
            return _ignored(path, "its sha256 is not the one meta.json records (damaged or edited)")
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
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


def save(folder: Path, rows: Descriptions, cache: Cache, max_dead: float = MAX_DEAD) -> list[dict[str, str]]:
    """Write `rows` (the descriptions of this version's images) into `folder`/descriptions: the
    cache's parts whose every still-used row is what `rows` says are carried over as they are (a
    hard link), the rest of `rows` goes into one new part; when descriptions of removed images
    would pass `max_dead` of the rows kept (data.max_dead_fraction), every row goes into one part
    again. Returns meta.json's list of parts."""
    target = Path(folder) / FOLDER
    target.mkdir(parents=True, exist_ok=True)
    carried = {
        part: keys
        for part, keys in sorted(cache.parts.items())
        if keys & rows.keys() and all(_same(cache.rows[k], rows[k]) for k in keys & rows.keys())
    }
    kept = set().union(*carried.values())
    if kept and len(kept - rows.keys()) > max_dead * len(kept | rows.keys()):
        carried, kept = {}, set()  # merged again into one part
    for part in carried:
        link_or_copy(part, target / part.name)
    fresh = {key: rows[key] for key in sorted(rows.keys() - kept)}
    if fresh:
        number = max((int(p.stem.split("-")[1]) for p in cache.parts), default=-1) + 1
        name = f"part-{number:04d}.json"
        write_text(
            target / name, json.dumps({"version": VERSION, "rows": fresh}, separators=(",", ":")) + "\n"
        )
    return [{"part": p.name, "sha256": file_sha256(p)} for p in sorted(target.iterdir())]


def _ignored(path: Path, why: str):
    print(f"validate: not reusing {path}: {why}; its images are described again", file=sys.stderr)
    return Cache() if path.name == "meta.json" else None


def audit_sample(keys: list[str]) -> list[str]:
    """Which of `keys` (descriptions the cache holds) to describe again (visionops.audit), drawn
    by a hash seeded with the keys themselves (the images' sha256): the same images give the same
    sample and the same bytes downstream. Seeding with the rows' content as well cost 0.6 s a run
    at 60,000 images and bought nothing: whoever edits the cache can compute either sample, and
    every row a check flags is described again anyway (manifest.flags_hold)."""
    from visionops import audit

    return audit.sample(keys)


def _same(cached: dict[str, Any], row: dict[str, Any]) -> bool:
    """Is `row` what the cache holds? Mostly the very object (a reused row), which is not dumped."""
    return cached is row or canonical(cached) == canonical(row)


def canonical(row: dict[str, Any]) -> str:
    """A description as the cache stores it (NaN compares equal to NaN here)."""
    return json.dumps(row, sort_keys=True, separators=(",", ":"))
