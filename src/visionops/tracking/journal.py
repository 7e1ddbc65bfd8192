"""The replay journal: what a stage could not log to MLflow, kept on disk until `visionops sync`.

One entry per stage: `<project>/.visionops/tracking/pending/<time>-<stage>-<id>/` holds
`entry.json` (stage, run record, values) and copies of the files the stage's logger reads,
so later pipeline runs that replace those files cannot change what gets replayed. Runs that
could not even be created get a `pending_id`; `runs.json` maps it to the real run id once
the replay has created it.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visionops.errors import VisionOpsError, first_invalid_field
from visionops.io import read_json, write_json
from visionops.tracking.record import StageLog


@dataclass(frozen=True)
class Entry:
    """One deferred stage log: its folder, and the stage, run record, files and values."""

    folder: Path
    stage: str
    record: dict[str, Any]
    files: dict[str, Path]
    values: StageLog


def journal_dir(project_root: Path) -> Path:
    return Path(project_root) / ".visionops" / "tracking"


def defer(
    project_root: Path, stage: str, record: dict[str, Any], files: dict[str, Path], values: StageLog
) -> Path:
    """Store one stage's log (files copied, folders included) and return its entry folder."""
    pending = journal_dir(project_root) / "pending"
    name = f"{time.strftime('%Y%m%dT%H%M%S')}-{time.monotonic_ns()}-{stage}-{uuid.uuid4().hex[:8]}"
    staging = pending / f".{name}"
    (staging / "files").mkdir(parents=True)
    stored = {}
    for key, path in files.items():
        if Path(path).exists():
            target = staging / "files" / key
            (shutil.copytree if Path(path).is_dir() else shutil.copy2)(path, target)
            stored[key] = key
    write_json(
        staging / "entry.json",
        {"stage": stage, "record": record, "files": stored, "values": values.model_dump(mode="json")},
    )
    os.replace(staging, pending / name)  # an entry appears whole or not at all
    return pending / name


def entries(project_root: Path) -> list[Entry]:
    """Deferred stage logs, oldest first."""
    pending = journal_dir(project_root) / "pending"
    found = []
    for folder in sorted(pending.iterdir()) if pending.is_dir() else []:
        if folder.name.startswith(".") or not (folder / "entry.json").is_file():
            continue
        try:
            data = _well_formed(read_json(folder / "entry.json"))
            values = _stage_log(data["values"])
        except VisionOpsError as exc:
            raise VisionOpsError(
                f"deferred tracking log {folder} is unreadable: {exc.cause}",
                f"move {folder} out of {pending} (that stage's log is then not replayed to MLflow; "
                "its DVC outputs are unaffected), then re-run",
            ) from None
        files = {key: folder / "files" / name for key, name in data["files"].items()}
        found.append(Entry(folder, data["stage"], data["record"], files, values))
    return found


ENTRY_TYPES = {"stage": str, "record": dict, "files": dict, "values": dict}


def _well_formed(data: Any) -> dict[str, Any]:
    """An entry.json with the keys and types `defer` writes (file names are plain strings)."""
    if not isinstance(data, dict):
        raise VisionOpsError(f"entry.json holds {type(data).__name__}, not an object")
    for key, kind in ENTRY_TYPES.items():
        if not isinstance(data.get(key), kind):
            raise VisionOpsError(
                f"entry.json's '{key}' is {type(data.get(key)).__name__}, not {kind.__name__}"
            )
    if not all(isinstance(n, str) and "/" not in n and n not in (".", "..") for n in data["files"].values()):
        raise VisionOpsError("entry.json's 'files' must map names to plain file names")
    return data


def _stage_log(values: dict[str, Any]) -> StageLog:
    from pydantic import ValidationError

    try:
        return StageLog.model_validate(values)
    except ValidationError as exc:
        raise VisionOpsError(
            f"entry.json's 'values' is not a stage log ({first_invalid_field(exc)})"
        ) from None


def done(entry: Entry) -> None:
    """Remove a replayed entry."""
    shutil.rmtree(entry.folder)


def resolved_run_id(project_root: Path, record: dict[str, Any]) -> str | None:
    """The MLflow run id of a record: its own, or the one a replay created for its pending id."""
    if record.get("run_id"):
        return record["run_id"]
    mapping = journal_dir(project_root) / "runs.json"
    return (read_json(mapping) if mapping.is_file() else {}).get(record.get("pending_id", ""))


def remember_run(project_root: Path, pending_id: str, run_id: str) -> None:
    """Record that the run for `pending_id` now exists as `run_id`."""
    mapping = journal_dir(project_root) / "runs.json"
    known = read_json(mapping) if mapping.is_file() else {}
    write_json(mapping, known | {pending_id: run_id})
