"""Issue 18: hostile and clumsy users on a reproduced project. Nothing already produced is
lost, no MLflow run is left RUNNING, and every bad input ends in `[stage] error:` naming the
file and a fix, never a traceback. Works in a clone of the session's one pipeline run."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from e2e import (
    clone_repo,
    damage_raw_image,
    mlflow_rows,
    pipeline_env,
    raw_paths,
    run,
    up_to_date,
    write_raw_image,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def repo(pipeline_template, tmp_path_factory) -> Path:
    return clone_repo(pipeline_template[0], tmp_path_factory.mktemp("hostile") / "repo")


@pytest.fixture(autouse=True)
def params_restored(repo):
    """Each test may edit params.yaml (or DVC may); the next one starts from the original."""
    original = (repo / "params.yaml").read_bytes()
    yield
    (repo / "params.yaml").write_bytes(original)


def outputs(repo: Path) -> dict[str, str]:
    """sha256 of every file under models/ and reports/ (training checkpoints aside)."""
    return {
        str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
        for top in ("models", "reports")
        for p in sorted((repo / top).rglob("*"))
        if p.is_file() and "checkpoints" not in p.parts
    }


def params_file(repo: Path, name: str, **sections: dict) -> Path:
    """A copy of params.yaml with some values changed, for running one stage by hand."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in sections.items():
        params[section].update(values)
    path = repo / name
    path.write_text(yaml.safe_dump(params))
    return path


def stage(repo: Path, name: str, *args: str, preexec_fn=None, cwd: Path | None = None):
    cmd = [sys.executable, str(repo / "pipeline" / f"{name}.py"), *args]
    env = pipeline_env({})
    return subprocess.run(
        cmd, cwd=cwd or repo, env=env, capture_output=True, text=True, preexec_fn=preexec_fn, check=False
    )


def assert_clean_error(result: subprocess.CompletedProcess, stage_name: str, *expected: str) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    text = result.stderr
    assert f"[{stage_name}] error:" in text and "\n  fix: " in text, text
    for part in expected:
        assert part in text, text
    return text


def runs_by_status(repo: Path) -> dict[str, int]:
    return dict(mlflow_rows(repo, "select status, count(*) from runs group by status"))


# --- 3. a failed stage under DVC loses nothing --------------------------------------------


def test_a_stage_refusing_its_params_under_dvc_keeps_every_previous_output(repo):
    before = outputs(repo)
    result = run(["dvc", "exp", "run", "-S", "train.epochs=ten"], repo, check=False)
    assert result.returncode != 0
    assert "set 'train.epochs' to an integer >= 1" in result.stderr + result.stdout
    assert outputs(repo) == before  # model.pt, run.json, train.json, history: all still there
    run(["git", "checkout", "--", "params.yaml"], repo)  # DVC wrote 'ten' into it
    status = run(["dvc", "status"], repo).stdout
    assert up_to_date(status), status


def test_a_failed_augment_keeps_the_previous_prepared_data(repo):
    """Issue 12: the previous data/prepared stays whole until the new one is complete. Issue 48: an
    image is decoded (and its bytes checked against the index) only when no chunk holds it: at
    another size every image is, and the one damaged after validation is named."""
    before = {p.relative_to(repo): p.read_bytes() for p in (repo / "data/prepared").rglob("*") if p.is_file()}
    victim = raw_paths(repo, "train", "5")[-1]
    kept = damage_raw_image(repo, victim, keep=40)  # validated, then damaged in its shard
    resized = params_file(repo, "size.yaml", augment={"image_size": 12})
    try:
        failed = stage(repo, "augment", "--params", str(resized))
        assert_clean_error(failed, "augment", f"{victim}", "changed after validation")
    finally:
        write_raw_image(repo, victim, kept)
    after = {p.relative_to(repo): p.read_bytes() for p in (repo / "data/prepared").rglob("*") if p.is_file()}
    assert after == before
    assert not list((repo / "data").glob(".prepared*"))  # no staging folder left behind


# --- 4. no MLflow run left RUNNING -----------------------------------------------------------


def test_a_diverged_training_ends_its_run_failed_with_the_reason(repo):
    before = outputs(repo)
    nan = params_file(repo, "nan.yaml", train={"lr": 1e30, "epochs": 1})
    assert_clean_error(stage(repo, "train", "--params", str(nan)), "train", "training diverged")
    assert outputs(repo) == before
    assert "RUNNING" not in runs_by_status(repo)
    reasons = [v for (v,) in mlflow_rows(repo, "select value from tags where key = 'visionops.failure'")]
    assert any("training diverged" in r for r in reasons)


def test_kill_9_then_other_params_ends_the_abandoned_run_killed(repo):
    long = params_file(repo, "long.yaml", train={"epochs": 40})
    checkpoint = repo / "models/checkpoints/last.pt"
    proc = subprocess.Popen(
        [sys.executable, "pipeline/train.py", "--params", str(long)],
        cwd=repo,
        env=pipeline_env({}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()  # kill -9: nothing in the process can react
    proc.wait()
    assert runs_by_status(repo).get("RUNNING") == 1  # what kill -9 leaves behind ...
    short = params_file(repo, "short.yaml", train={"epochs": 1})
    result = stage(repo, "train", "--params", str(short))
    assert result.returncode == 0, result.stderr
    assert "from different params or data; starting from scratch" in result.stdout
    assert "RUNNING" not in runs_by_status(repo)  # ... is ended by the next training
    killed = mlflow_rows(
        repo,
        "select t.value from runs r join tags t on t.run_uuid = r.run_uuid "
        "where r.status = 'KILLED' and t.key = 'visionops.failure'",
    )
    assert killed and "abandoned" in killed[-1][0]


def test_a_full_disk_under_models_names_the_file_and_ends_the_run_failed(repo):
    before = outputs(repo)
    one = params_file(repo, "one.yaml", train={"epochs": 1})
    trap = repo / "models/.model.pt.tmp"  # where save_model writes before the rename
    trap.symlink_to("/dev/full")  # a real ENOSPC from the kernel on exactly that write
    try:
        text = assert_clean_error(stage(repo, "train", "--params", str(one)), "train", "no space left")
    finally:
        trap.unlink(missing_ok=True)
        shutil.rmtree(repo / "models/checkpoints", ignore_errors=True)  # else the next run resumes
    assert "models/model.pt" in text and "dvc gc" in text
    assert outputs(repo) == before  # the previous model is intact
    assert "RUNNING" not in runs_by_status(repo)


# --- 5. a cause and a fix, never a traceback -------------------------------------------------


def test_an_mlflow_db_that_is_not_a_database(repo):
    db = repo / "mlflow.db"
    kept = repo / "mlflow.db.kept"
    shutil.copy2(db, kept)
    db.write_bytes(b"this is not sqlite" * 100)
    try:
        one = params_file(repo, "one.yaml", train={"epochs": 1})
        text = assert_clean_error(stage(repo, "train", "--params", str(one)), "train", "mlflow.db")
    finally:
        os.replace(kept, db)
    assert "not a readable SQLite database" in text and "mv " in text


def test_a_truncated_deferred_tracking_entry_is_named(repo):
    entry = repo / ".visionops/tracking/pending/20260101T000000-1-evaluate-deadbeef"
    entry.mkdir(parents=True)
    (entry / "entry.json").write_text('{"stage": "evaluate", "rec')
    try:
        synced = run([sys.executable, "-m", "visionops", "sync"], repo, check=False)
        assert synced.returncode == 1 and "Traceback" not in synced.stderr, synced.stderr
        assert str(entry) in synced.stderr and "fix: move" in synced.stderr
        assert_clean_error(stage(repo, "evaluate"), "evaluate", str(entry / "entry.json"))
    finally:
        shutil.rmtree(entry)


def test_a_binary_params_file(repo):
    binary = repo / "binary.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    assert_clean_error(stage(repo, "validate", "--params", str(binary)), "validate", "not a UTF-8 text file")


@pytest.mark.parametrize(
    ("name", "victim", "damage", "expected"),
    [
        ("augment", "data/validated/meta.json", "remove", "data/validated/meta.json is missing"),
        ("augment", "data/validated/flags.csv", "truncate", "data/validated/flags.csv changed after"),
        ("register", "reports/export.json", "remove", "reports/export.json is missing"),
        ("register", "reports/evaluate.json", "truncate", "reports/evaluate.json is damaged or truncated"),
        ("evaluate", "models/run.json", "truncate", "models/run.json is damaged or truncated"),
    ],
)
def test_a_missing_or_truncated_intermediate_file(repo, name, victim, damage, expected):
    path = repo / victim
    kept = path.read_bytes()
    if damage == "remove":
        path.unlink()
    else:
        path.write_bytes(kept[: len(kept) // 2])
    try:
        text = assert_clean_error(stage(repo, name), name, expected)
    finally:
        path.write_bytes(kept)
    assert "dvc repro" in text


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs `unshare --user --mount` for a read-only mount")
def test_a_read_only_data_folder(repo):
    """A real read-only bind mount of data/ (root ignores file modes, so chmod cannot show it)."""
    before = outputs(repo)
    script = (
        f'mount --bind -o ro "{repo / "data"}" "{repo / "data"}" && '
        f'exec "{sys.executable}" "{repo / "pipeline/augment.py"}"'
    )
    result = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
        cwd=repo,
        env=pipeline_env({}),
        capture_output=True,
        text=True,
        check=False,
    )
    text = assert_clean_error(result, "augment", "cannot write data/", "Read-only file system")
    assert "writable" in text and outputs(repo) == before


def test_a_full_disk_under_the_mlflow_store(repo):
    """A file-size limit makes every write to the SQLite store past 64 KiB fail, as a full disk."""

    def no_room() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    text = assert_clean_error(stage(repo, "evaluate", preexec_fn=no_room), "evaluate", "mlflow.db")
    assert "could not be written" in text and "free disk space" in text


# --- 6. advice that does not mislead -----------------------------------------------------------


def test_a_stage_run_from_another_folder_writes_into_the_project(repo, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy2(repo / "params.yaml", elsewhere / "mine.yaml")
    result = stage(repo, "download", "--params", "mine.yaml", cwd=elsewhere)  # relative to elsewhere
    assert result.returncode == 0, result.stderr
    assert not (elsewhere / "data").exists() and (repo / "data/raw/source.json").is_file()


def test_no_validation_split_says_so_instead_of_a_zero_accuracy(repo):
    no_val = params_file(repo, "noval.yaml", train={"val_fraction": 0.0, "epochs": 1})
    result = stage(repo, "train", "--params", str(no_val))
    assert result.returncode == 0, result.stderr
    assert "no validation split (train.val_fraction: 0)" in result.stdout
    assert "best val accuracy" not in result.stdout
    assert "best_val_accuracy" not in yaml.safe_load((repo / "reports/train.json").read_text())


# --- 7. two DVC commands at once ---------------------------------------------------------------


def test_params_rewritten_by_a_refused_exp_run_stop_the_running_repro(repo):
    """DVC's order: `dvc exp run -S` rewrites params.yaml, then finds the repository locked by a
    running `dvc repro`. Issue 47 row 12: the stage that was running when it landed fails at its
    end (DVC would record the new value for what the old one made), so dvc.lock keeps what ran;
    the next stage would refuse too."""
    lock = (repo / "dvc.lock").read_bytes()
    log = repo / "repro.log"
    with open(log, "w") as out:
        repro = subprocess.Popen(
            ["dvc", "repro", "-f", "-s", "compress", "export"],
            cwd=repo,
            env=pipeline_env({}),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 120
    while "Running stage 'compress'" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    refused = run(["dvc", "exp", "run", "-S", "train.lr=0.01"], repo, check=False)
    assert repro.wait(timeout=600) != 0
    output = log.read_text()
    assert refused.returncode != 0 and "lock" in refused.stderr + refused.stdout
    assert (
        "[compress] error: params.yaml changed while the compress stage ran (train.lr: 0.004 -> 0.01)"
        in output
    )
    assert "dvc exp run --queue" in output and "Running stage 'export'" not in output
    assert (repo / "dvc.lock").read_bytes() == lock  # nothing recorded with a value it did not use


# --- issue 22: nothing wrong reaches the registry; outputs depend only on their inputs -------


def registry_state(repo: Path) -> tuple[list, list]:
    versions = mlflow_rows(repo, "select name, version from model_versions order by version")
    aliases = mlflow_rows(repo, "select name, alias, version from registered_model_aliases order by alias")
    return versions, aliases


def test_register_refuses_a_truncated_onnx_and_registers_nothing(repo):
    onnx = repo / "models/model.onnx"
    kept = onnx.read_bytes()
    before, statuses = registry_state(repo), runs_by_status(repo)
    onnx.write_bytes(kept[:5000])
    try:
        text = assert_clean_error(stage(repo, "register"), "register", "models/model.onnx is not the file")
    finally:
        onnx.write_bytes(kept)
    assert "dvc repro" in text
    assert registry_state(repo) == before and runs_by_status(repo) == statuses


def test_register_refuses_to_judge_a_model_on_another_models_evaluation(repo, tmp_path):
    """The probe: a new training by hand, then register with the previous evaluation."""
    saved = tmp_path / "saved"
    for top in ("models", "reports"):
        shutil.copytree(repo / top, saved / top)
    before = registry_state(repo)
    other = params_file(repo, "seed.yaml", train={"seed": 11, "epochs": 1})
    try:
        run([sys.executable, "pipeline/train.py", "--params", str(other)], repo)
        text = assert_clean_error(
            stage(repo, "register"), "register", "reports/evaluate.json describes model"
        )
        assert "models/run.json" in text
        assert registry_state(repo) == before
    finally:
        for top in ("models", "reports"):
            shutil.rmtree(repo / top)
            shutil.copytree(saved / top, repo / top)


def test_a_model_name_mlflow_refuses_stops_register_before_any_run_changes(repo):
    statuses, before = runs_by_status(repo), registry_state(repo)
    bad = params_file(repo, "name.yaml", register={"model_name": "a:b"})
    assert_clean_error(stage(repo, "register", "--params", str(bad)), "register", "register.model_name")
    assert runs_by_status(repo) == statuses and registry_state(repo) == before


def test_a_registered_version_carries_the_hashes_of_its_model_files(repo):
    tags = dict(mlflow_rows(repo, "select key, value from model_version_tags where key like '%.sha256'"))
    run_json = json.loads((repo / "models/run.json").read_text())
    assert tags["model.sha256"] == run_json["model_sha256"]
    assert tags["onnx.sha256"] == hashlib.sha256((repo / "models/model.onnx").read_bytes()).hexdigest()
    # issue 47 row 19: the evidence the gate decided on is inside the version, sealed by its manifest
    version = json.loads((repo / "reports/register.json").read_text())["version"]
    query = f"select value from model_version_tags where key = 'files.manifest' and version = {version}"
    manifest_uri = mlflow_rows(repo, query)[0][0]
    code = "from visionops.tracking.runs import configure, project_root; configure(project_root())"
    code += f"; import mlflow; print(mlflow.artifacts.load_text({manifest_uri!r}))"
    done = run([sys.executable, "-c", code], repo)
    sealed = json.loads(done.stdout)
    for report in ("reports/evaluate.json", "reports/export.json", "reports/validation/summary.json"):
        name = f"artifacts/{Path(report).name}"
        assert sealed[name] == hashlib.sha256((repo / report).read_bytes()).hexdigest(), name


def test_training_twice_with_the_same_inputs_writes_the_same_model_bytes(repo):
    """Last in the module: it leaves the later stages stale (a new MLflow run each time)."""
    digests = []
    for _ in range(2):
        run(["dvc", "repro", "-f", "-s", "train"], repo)
        digests.append(hashlib.sha256((repo / "models/model.pt").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    results = repo / "reports/validation/results.json"
    first = results.read_bytes()
    run(["dvc", "repro", "-f", "-s", "validate"], repo)
    assert results.read_bytes() == first  # no GX run ids or times inside
