"""The committed baseline stays true (issue 22): dvc.lock's hashes of every stage's code and
params match the tree, so a fresh clone's `dvc status` reports no modified code or params, and
CI's metrics diff compares against what this code makes. Data and outputs are not checked: a
clone has none until `dvc pull` or `dvc repro`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
REFRESH = (
    "refresh it: `make baseline` (runs `dvc repro`), then commit dvc.lock, reports/metrics/ and the plot data"
)


def stage_outputs() -> set[str]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {
        next(iter(out)) if isinstance(out, dict) else out
        for stage in stages.values()
        for key in ("outs", "metrics", "plots")
        for out in stage.get(key, [])
    }


def git_tracked(path: str) -> bool:
    listed = subprocess.run(["git", "ls-files", "--", path], cwd=ROOT, capture_output=True, text=True)
    return bool(listed.stdout.strip())


def stale_entries(status: dict) -> list[str]:
    """'stage: path' for every code or params dep whose hash differs from dvc.lock."""
    outputs, stale = stage_outputs(), []
    for stage, changes in status.items():
        for change in changes:
            if change == "changed command":
                stale.append(f"{stage}: its cmd")
                continue
            if not isinstance(change, dict):
                continue
            for path, state in change.get("changed deps", {}).items():
                if isinstance(state, dict):  # params.yaml: {key: state}
                    stale += [f"{stage}: param {key} {what}" for key, what in state.items()]
                elif path not in outputs and git_tracked(path):
                    stale.append(f"{stage}: {path} {state}")
    return stale


def test_committed_dvc_lock_matches_the_code_and_params_in_the_tree():
    dvc = str(Path(sys.executable).with_name("dvc"))
    done = subprocess.run(
        [dvc, "status", "--json"], cwd=ROOT, capture_output=True, text=True, env={"DVC_NO_ANALYTICS": "1"}
    )
    assert done.returncode == 0, done.stderr
    stale = stale_entries(json.loads(done.stdout or "{}"))
    assert not stale, "dvc.lock is stale for:\n  " + "\n  ".join(stale) + f"\n{REFRESH}"


def test_the_check_sees_a_changed_code_dep_and_a_changed_param():
    status = {
        "train": [
            {"changed deps": {"pipeline/train.py": "modified", "params.yaml": {"train.lr": "modified"}}}
        ],
        "evaluate": [{"changed deps": {"models/model.pt": "modified", "data/prepared": "deleted"}}],
    }
    assert stale_entries(status) == ["train: pipeline/train.py modified", "train: param train.lr modified"]
