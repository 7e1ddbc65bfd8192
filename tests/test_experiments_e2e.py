"""Issue 7 acceptance: `dvc repro`, then two queued experiments run at once
(`dvc queue start -j 2`) into the same SQLite store, then the three runs compared the way
the MLflow UI would show them, through the REST API of a real `mlflow server` on the store.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import mlflow_server
import pytest
import requests
from e2e import clone_repo, pipeline_env, run

from visionops.stack.processes import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def three_runs(pipeline_template, tmp_path_factory) -> Path:
    """A clone of the session's `dvc repro`, plus two experiments run concurrently."""
    project = clone_repo(pipeline_template[0], tmp_path_factory.mktemp("experiments") / "repo")
    # as a user would: the baseline's dvc.lock committed, so a queued experiment (which starts
    # from HEAD in its own workspace) finds the data stages' outputs in the cache
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "baseline"], project)
    for lr in ("0.003", "0.03"):
        run(["dvc", "exp", "run", "--queue", "-S", f"train.lr={lr}"], project)
    # The workers inherit `queue start`'s stdout: through a pipe, a worker that lingers after the
    # queue drained (celery, seen once) would block the test for good. A file cannot.
    with open(tmp_path_factory.mktemp("queue") / "start.log", "w") as log:
        subprocess.run(
            ["dvc", "queue", "start", "-j", "2"],
            cwd=project,
            env=pipeline_env({}),
            stdout=log,
            stderr=log,
            check=True,
        )
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], project).stdout
        if "Running" not in status and "Queued" not in status:
            break
        time.sleep(3)
    assert status.count("Success") == 2, status
    return project


@pytest.fixture(scope="module")
def api(three_runs, tmp_path_factory):
    """`make ui`'s server (the project's own store), on a free port."""
    port = free_port()
    # the project's own store and artifacts, as `make ui` serves them
    server = mlflow_server.start(three_runs, port, artifacts=three_runs / "mlartifacts")
    yield f"http://127.0.0.1:{port}/api/2.0/mlflow"
    mlflow_server.stop(server)


def test_queued_experiments_ran_concurrently_without_sqlite_lock_errors(three_runs):
    """Each experiment changed train.lr: it retrained and registered, and left the data stages'
    outputs as they were."""
    names = run(["dvc", "exp", "ls", "--all-commits", "--name-only"], three_runs).stdout.split()
    assert len(names) == 2, names
    for name in names:
        logs = run(["dvc", "queue", "logs", name], three_runs, check=False)
        assert "database is locked" not in logs.stdout + logs.stderr
        for stage in ("train", "evaluate", "compress", "export", "register"):
            assert f"Running stage '{stage}'" in logs.stdout, (stage, logs.stdout)
        for stage in ("download", "validate", "augment"):
            assert f"Running stage '{stage}'" not in logs.stdout, (stage, logs.stdout)
    assert not list((three_runs / ".visionops/tracking").glob("pending/*"))  # nothing was deferred


def test_the_readmes_comparison_view_shows_the_changed_param_and_the_gate_metric(three_runs):
    """Issue 23: the documented `dvc exp show` recipe (docs/tracking.md, once the README's), in
    a 200-column terminal, shows the one
    param the experiments changed and the gate metric (DVC folds the rightmost columns, params
    last, when the curated metrics are too many)."""
    import re
    import shlex

    page = (Path(__file__).resolve().parents[1] / "docs" / "tracking.md").read_text()
    recipe = re.search(r"^dvc exp show --only-changed --drop '[^']+'$", page, re.MULTILINE)
    assert recipe, "the documented comparison recipe is gone"
    shown = run(shlex.split(recipe.group(0)), three_runs, COLUMNS="200").stdout
    header = next(line for line in shown.splitlines() if "Experiment" in line)
    assert "train.lr" in header and "f1_macro" in header, shown
    assert "…" not in header and "0.03" in shown and "0.003" in shown


def test_three_comparable_runs_in_one_experiment(api):
    experiment = requests.get(
        f"{api}/experiments/get-by-name", params={"experiment_name": "visionops"}
    ).json()
    found = requests.post(
        f"{api}/runs/search", json={"experiment_ids": [experiment["experiment"]["experiment_id"]]}
    ).json()["runs"]
    assert len(found) == 3
    param_keys = [{p["key"] for p in r["data"]["params"]} for r in found]
    metric_keys = [{m["key"] for m in r["data"]["metrics"]} for r in found]
    assert param_keys[0] == param_keys[1] == param_keys[2] and "train.lr" in param_keys[0]
    assert metric_keys[0] == metric_keys[1] == metric_keys[2] and "test_f1_macro" in metric_keys[0]
    lrs = sorted(next(p["value"] for p in r["data"]["params"] if p["key"] == "train.lr") for r in found)
    assert lrs == ["0.003", "0.004", "0.03"]  # params.yaml's 0.004, then the two experiments


def test_versions_one_to_three_with_aliases_where_the_gate_says(api):
    model = requests.get(f"{api}/registered-models/get", params={"name": "visionops-classifier"}).json()
    aliases = {a["alias"]: a["version"] for a in model["registered_model"]["aliases"]}
    versions = requests.get(
        f"{api}/model-versions/search", params={"filter": "name='visionops-classifier'"}
    ).json()["model_versions"]
    by_number = {int(v["version"]): {t["key"]: t["value"] for t in v.get("tags", [])} for v in versions}
    assert sorted(by_number) == [1, 2, 3] and aliases["candidate"] == "3"
    assert len({v["run_id"] for v in versions}) == 3
    promoted = [n for n in sorted(by_number) if by_number[n]["gate.promoted"] == "true"]
    assert promoted[0] == 1 and aliases["champion"] == str(promoted[-1])
    assert all(by_number[n]["gate.reasons"] for n in by_number)
    # issue 13: every decision rests on a paired comparison on the same test images
    assert "trivial baseline" in by_number[1]["gate.reasons"]
    for n in (2, 3):
        assert (
            "McNemar p =" in by_number[n]["gate.reasons"] and by_number[n]["gate.n"] == by_number[1]["gate.n"]
        )
        assert by_number[n]["gate.champion_version"] in {"1", "2"}
