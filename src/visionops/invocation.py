"""Stop a `dvc repro` whose params.yaml was changed under it by another command.

`dvc exp run -S train.lr=0.01` rewrites params.yaml *before* it asks for the repository lock;
when another `dvc repro` holds the lock, the experiment is refused, but the running repro's
later stages read the rewritten file and would train, record and promote a model with
params nobody ran it with. The first stage of each DVC invocation keeps a snapshot of the
parsed params (keyed by the `dvc` process, per workspace); every later stage of the same
invocation compares and stops with the changed keys named.

The same rewrite can land while a stage runs: DVC records the params it finds *after* the stage
ends, so dvc.lock would name values the stage never used (and the MLflow run the ones it did).
So a stage also compares the file when it ends with what it read at its start
(`check_params_kept`), and fails, so that DVC records nothing, when they differ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from visionops.errors import VisionOpsError

SNAPSHOTS = Path(".visionops/invocations")  # relative to the workspace the stage runs in


def check_params_unchanged(params_path: Path, stage: str) -> None:
    """Record params at the invocation's first stage; refuse to run on changed ones later."""
    from visionops.config import flatten, read_params_file

    dvc = dvc_ancestor()
    if dvc is None:  # run by hand, not by DVC: nothing to compare with
        return
    pid, started, command = dvc
    snapshot = SNAPSHOTS / f"{pid}-{started}.json"
    current = flatten(read_params_file(params_path))
    if not snapshot.is_file():
        _prune()
        _write(snapshot, {"stage": stage, "command": command, "params": current})
        return
    first = json.loads(snapshot.read_text(encoding="utf-8"))
    changed = changed_keys(first["params"], current)
    if changed:
        shown = "; ".join(f"{k}: {first['params'].get(k)!r} -> {current.get(k)!r}" for k in changed[:5])
        raise VisionOpsError(
            f"params.yaml changed while `{first['command']}` was running (after its stage "
            f"'{first['stage']}' started): {shown}. Most likely another dvc command wrote it: "
            "`dvc exp run -S ...` rewrites params.yaml even when the repository lock then refuses it",
            "stopping here so that no model is trained or registered with params this run did not "
            "start with; check `git diff params.yaml`, then re-run. To run experiments while "
            "another one runs, queue them: `dvc exp run --queue -S ...` and `dvc queue start`",
        )


def changed_keys(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Dotted keys whose value differs (added and removed ones included), sorted."""
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def dvc_ancestor() -> tuple[int, int, str] | None:
    """(pid, start time, command) of the nearest `dvc` process above this one, if any."""
    import psutil

    try:
        for process in psutil.Process().parents():
            args = process.cmdline()
            names = [Path(a).name for a in args[:2]]
            if "dvc" in names:
                rest = args[names.index("dvc") + 1 :]
                return process.pid, int(process.create_time()), " ".join(["dvc", *rest[:2]])
    except psutil.Error:
        return None
    return None


def _write(path: Path, data: dict[str, Any]) -> None:
    from visionops.io import write_json

    write_json(path, data)


def _prune() -> None:
    """Drop snapshots of dvc processes that are gone."""
    import psutil

    for old in SNAPSHOTS.glob("*.json") if SNAPSHOTS.is_dir() else []:
        pid = int(old.name.split("-", 1)[0]) if old.name.split("-", 1)[0].isdigit() else 0
        if not psutil.pid_exists(pid):
            old.unlink(missing_ok=True)


def params_now(params_path: Path) -> dict[str, Any]:
    """The parsed params, flattened: what a stage compares at its end."""
    from visionops.config import flatten, read_params_file

    return flatten(read_params_file(params_path))


def check_params_kept(params_path: Path, at_start: dict[str, Any], stage: str) -> None:
    """Raise when params.yaml no longer holds what the stage read at its start."""
    now = params_now(params_path)
    changed = changed_keys(at_start, now)
    if changed:
        shown = "; ".join(f"{k}: {at_start.get(k)!r} -> {now.get(k)!r}" for k in changed[:5])
        raise VisionOpsError(
            f"params.yaml changed while the {stage} stage ran ({shown}): DVC would record the new values "
            "for outputs made with the old ones. Most likely another command wrote it (`dvc exp run -S` "
            "rewrites params.yaml even when the repository lock then refuses it)",
            "this stage's outputs are not recorded; check `git diff params.yaml`, then re-run `dvc repro`. "
            "To run experiments while another one runs, queue them: `dvc exp run --queue -S ...`",
        )
