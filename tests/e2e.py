"""Helpers for the end-to-end tests: a copy of the project with its own git, DVC and MLflow
state, commands run in it, and clones of an already-reproduced copy.

One `dvc repro` per test session (conftest's `pipeline_template`) is the template; each e2e
module clones it (`clone_repo`, ~1 s) instead of paying for its own pipeline run.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from visionops.stack import project
from visionops.stack.project import dotted
from visionops.tuning.winner import write_params

ROOT = Path(__file__).resolve().parents[1]
SMALL = {
    "augment": {"copies": 1},
    "train": {"epochs": 2},
    "compress": {"finetune_epochs": 1, "latency_repeats": 3, "calibration_images": 128},
    "export": {"latency_repeats": 3, "parity_images": 64},
}


def run(cmd: list[str], cwd: Path, check: bool = True, **extra_env: str) -> subprocess.CompletedProcess:
    env = pipeline_env(extra_env)
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def up_to_date(status: str) -> bool:
    """`dvc status` of a complete run: nothing but the scan stage, which DVC marks "always
    changed" (it lists the folder source on every repro, see dvc.yaml)."""
    return status.split() == ["scan:", "always", "changed"]


def stages_run(out: str) -> list[str]:
    """The stages a `dvc repro` output says it ran, in order."""
    return re.findall(r"^Running stage '([^']+)'", out, flags=re.MULTILINE)


def pipeline_env(extra: dict[str, str]) -> dict[str, str]:
    """The test's environment minus any MLflow store of the developer's (or of an earlier test:
    mlflow.set_registry_uri exports MLFLOW_REGISTRY_URI into this process), plus `extra`."""
    stores = ("MLFLOW_TRACKING", "MLFLOW_REGISTRY")
    env = {k: v for k, v in os.environ.items() if not k.startswith(stores)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.update(
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
    )
    return env | extra


def edit_params(repo: Path, changes: dict) -> None:
    """Set {"section": {"key": value}} in the repo's params.yaml (its comments kept)."""
    write_params(repo / "params.yaml", dotted(changes))


def copy_project(dest: Path) -> Path:
    """A fresh, committed copy of the project (uncommitted work included) with SMALL params."""
    return project.copy_project(ROOT, dest, dotted(SMALL))


def clone_repo(template: Path, dest: Path) -> Path:
    """A copy of an already-reproduced project: workspace, git, DVC cache and MLflow store.
    The store keeps absolute artifact locations, which are moved to the clone."""
    shutil.copytree(template, dest, symlinks=True)
    with sqlite3.connect(dest / "mlflow.db") as db:
        for (table,) in db.execute("select name from sqlite_master where type = 'table'").fetchall():
            columns = [
                row[1]
                for row in db.execute(f'pragma table_info("{table}")')
                if "CHAR" in row[2] or row[2] == "TEXT"
            ]
            for column in columns:
                db.execute(
                    f'update "{table}" set "{column}" = replace("{column}", ?, ?) where "{column}" like ?',
                    (str(template), str(dest), f"%{template}%"),
                )
    return dest


def mlflow_rows(repo: Path, sql: str) -> list:
    with sqlite3.connect(repo / "mlflow.db") as db:
        return db.execute(sql).fetchall()


def unpack_raw(repo: Path, dest: Path, split: str | None = None) -> Path:
    """repo's data/raw as files under dest/<split>/<class>/ (`split` only, if given)."""
    from visionops.data.shards import unpack

    return unpack(repo / "data/raw", dest, split)


def damage_raw_image(repo: Path, path: str, keep: int) -> bytes:
    """Overwrite the stored bytes of data/raw's image `path` after the first `keep` with zeros,
    in its shard (same size: the index still points at it); returns the original bytes."""
    from visionops.data.shards import RawImages

    member = RawImages(repo / "data/raw").member(path)
    original = member.read()
    write_raw_image(repo, path, original[:keep] + bytes(member.size - keep))
    return original


def write_raw_image(repo: Path, path: str, data: bytes) -> None:
    """Put `data` (exactly the stored size) in place of data/raw's image `path`."""
    from visionops.data.shards import RawImages

    member = RawImages(repo / "data/raw").member(path)
    assert len(data) == member.size
    with open(member.shard, "r+b") as shard:
        shard.seek(member.offset)
        shard.write(data)


def raw_paths(repo: Path, split: str, label: str) -> list[str]:
    """data/raw's image paths of one class in one split, sorted."""
    from visionops.data.shards import RawImages

    return sorted(e.path for e in RawImages(repo / "data/raw") if e.split == split and e.label == label)


def agreement_with_evaluate(repo: Path, predictions: Path, raw_root: Path) -> tuple[float, float, float]:
    """(share of `visionops predict`'s labels equal to evaluate's for the same test images,
    predict's accuracy, the majority class's share): invariants a test can assert on any CPU,
    where the accuracy a tiny model reaches is not (native bf16 or not)."""
    import pandas as pd

    got = pd.read_csv(predictions, dtype={"label": str})
    truth = got["path"].map(lambda p: Path(p).parent.name)
    files = pd.read_csv(repo / "data/prepared/files.csv.gz")
    test = files[files["split"] == "test"].sort_values("index")
    evaluated = pd.read_csv(repo / "reports/predictions.csv", dtype=str)["predicted"].to_numpy()
    by_path = dict(zip((str(raw_root) + "/" + test["path"]).tolist(), evaluated, strict=True))
    agree = (got["label"].to_numpy() == got["path"].map(by_path).to_numpy()).mean()
    return (
        float(agree),
        float((got["label"] == truth).mean()),
        float(truth.value_counts(normalize=True).max()),
    )
