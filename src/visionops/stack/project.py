"""A copy of a visionops project to run DVC in, away from the developer's workspace: what the
end-to-end tests and the benchmarks start from."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

OUTPUT_FOLDERS = {"data", "models", "reports"}  # the pipeline's outputs: a copy makes its own


def copy_project(
    source: Path, dest: Path, values: dict[str, Any] | None = None, cache_type: str | None = None
) -> Path:
    """`source`'s files as a clean clone has them plus new files git does not ignore (so a
    developer's uncommitted work is what runs), without its results (dvc.lock, data/, models/,
    reports/ beyond their .gitignore files); `values` ({"section.key": value}) set in
    params.yaml; DVC's cache.type set if given; committed in a fresh git repository at dest."""
    from visionops.tuning.winner import write_params

    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=source,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        if not _result(name) and (Path(source) / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(source) / name, dest / name)
    if values:
        write_params(dest / "params.yaml", values)
    commands = [["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "project copy"]]
    if cache_type:  # DVC's link type from its cache into the workspace (default: reflink, else copy)
        commands.insert(1, ["dvc", "config", "cache.type", cache_type])
    for command in commands:
        subprocess.run(command, cwd=dest, check=True, env=git_env(), capture_output=True)
    return dest


def dotted(params: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """{"section": {"key": value}} as {"section.key": value} (what `copy_project` takes)."""
    return {f"{section}.{key}": value for section, keys in params.items() for key, value in keys.items()}


def git_env() -> dict[str, str]:
    """The environment with a git identity, so that commits work without the user's."""
    identity = {"GIT_AUTHOR_NAME": "visionops", "GIT_AUTHOR_EMAIL": "visionops@localhost"}
    return (
        os.environ
        | identity
        | {"GIT_COMMITTER_NAME": "visionops", "GIT_COMMITTER_EMAIL": "visionops@localhost"}
    )


def _result(name: str) -> bool:
    top = name.split("/", 1)[0]
    return name == "dvc.lock" or (top in OUTPUT_FOLDERS and not name.endswith(".gitignore"))
