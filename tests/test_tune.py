"""Issue 26: `visionops tune`: an Optuna study on the real digits' prepared data, trials as MLflow
child runs, the winner back into params.yaml, a diverging trial failed, bad params and storage
refused before any training, and the test split never read."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml

from visionops.config import load_params
from visionops.data.prepared import open_prepared
from visionops.errors import VisionOpsError

ROOT = Path(__file__).resolve().parents[1]
TINY = {  # a trial in about a second on 2 cores
    "model": {"arch": "simple_cnn", "width": 4},
    "train": {"epochs": 3, "batch_size": 256, "val_fraction": 0.2, "crop_padding": 0, "lr": 0.003},
    "tracking": {"experiment": "tune-test"},
}


def params_file(folder: Path, tune: dict, **sections) -> Path:
    """The project's params.yaml with TINY and `sections` merged in and `tune` as the tune section."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, values in (TINY | sections).items():
        params[name].update(values)
    params["tune"] = tune
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


class SplitTouched(Exception):
    pass


class Untouchable:
    """Stands in for the test split: any use of it fails the test."""

    def __getattr__(self, name):
        raise SplitTouched(f"the study read the test split (.{name})")


def study(tmp_path, monkeypatch, prepared, tune: dict, **sections):
    """Run a study in a project at tmp_path with its own MLflow store; (study, runs frame)."""
    from visionops.tuning.storage import default_storage
    from visionops.tuning.study import StudyPlan, run_study

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    params = load_params(params_file(tmp_path, tune, **sections), "model", "train", "tracking", "tune")
    data = dataclasses.replace(open_prepared(prepared), test=Untouchable())
    plan = StudyPlan(default_storage(tmp_path), "test-study", params["tune"], params)
    result = run_study(plan, data, tmp_path, progress=False)
    runs = mlflow.search_runs(experiment_names=["tune-test"])
    return result, runs


@pytest.fixture(scope="module")
def searched(tmp_path_factory, prepared_digits):
    """One study of 6 tiny trials with aggressive pruning, shared by the tests below."""
    monkeypatch = pytest.MonkeyPatch()
    tune = {
        "trials": 6,
        "pruner": "median",
        "startup_trials": 1,
        "warmup_epochs": 0,
        "space": {"train.lr": {"log_uniform": [1.0e-5, 0.3]}, "model.width": {"choice": [4, 8]}},
    }
    try:
        yield study(tmp_path_factory.mktemp("tune"), monkeypatch, prepared_digits, tune)
    finally:
        monkeypatch.undo()


def test_a_study_is_one_parent_run_with_a_child_per_trial(searched):
    result, runs = searched
    parents = runs[runs["tags.mlflow.parentRunId"].isna()]
    children = runs[runs["tags.mlflow.parentRunId"].notna()]
    assert len(parents) == 1 and len(children) == len(result.trials) >= 6
    assert set(children["tags.mlflow.parentRunId"]) == {parents["run_id"].iloc[0]}
    assert set(runs["status"]) == {"FINISHED"}  # nothing left RUNNING
    states = children["tags.trial.state"].value_counts().to_dict()
    assert states.get("complete", 0) >= 1 and states.get("pruned", 0) >= 1, states
    complete = children[children["tags.trial.state"] == "complete"]
    assert complete["metrics.best_val_accuracy"].max() == pytest.approx(result.best_value)
    assert {"params.train.lr", "params.model.width"} <= set(children.columns)
    history = mlflow.MlflowClient().get_metric_history(complete["run_id"].iloc[0], "val_accuracy")
    assert [m.step for m in history] == [1, 2, 3]  # per-epoch validation accuracy
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parents["run_id"].iloc[0], "tune")}
    assert "tune/optimization_history.png" in artifacts


def test_the_test_split_is_never_read(searched):
    """`searched` ran with the test split replaced by an object that raises on any use."""
    result, _ = searched
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in result.trials)


def test_the_winner_reaches_params_yaml_with_its_comments(searched, tmp_path):
    from visionops.tuning.winner import exp_run_line, write_params

    result, _ = searched
    target = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", target)
    write_params(target, result.best_params)
    params = load_params(target, "train", "model")
    assert params["train"].lr == result.best_params["train.lr"]
    assert params["model"].width == result.best_params["model.width"]
    assert "# `visionops tune` (not a DVC stage" in target.read_text()  # comments kept
    line = exp_run_line(result.best_params)
    assert (
        line.startswith("dvc exp run -S model.width=")
        and f"train.lr={result.best_params['train.lr']!r}" in line
    )


def test_a_diverging_trial_is_failed_and_the_study_finishes(tmp_path, monkeypatch, prepared_digits):
    tune = {"trials": 2, "space": {"train.lr": {"choice": [1.0e12]}}}
    result, runs = study(tmp_path, monkeypatch, prepared_digits, tune, train={"optimizer": "sgd"})
    assert [t.state.name for t in result.trials] == ["FAIL", "FAIL"]
    children = runs[runs["tags.mlflow.parentRunId"].notna()]
    assert set(children["status"]) == {"FAILED"} and set(children["tags.trial.state"]) == {"failed"}
    assert children["tags.visionops.failure"].str.contains("diverged").all()
    assert set(runs[runs["tags.mlflow.parentRunId"].isna()]["status"]) == {"FINISHED"}


def test_an_unknown_key_in_tune_is_refused_with_the_allowed_keys(tmp_path):
    path = params_file(tmp_path, {"space": {"train.lrr": {"uniform": [0.1, 0.2]}}})
    with pytest.raises(VisionOpsError) as err:
        load_params(path, "tune")
    text = str(err.value) + err.value.fix
    assert "train.lrr" in text and "did you mean 'train.lr'" in text and "model.width" in text


@pytest.mark.parametrize(
    ("dimension", "message"),
    [
        ({"uniform": [0.2, 0.1]}, "needs low < high"),
        ({"log_uniform": [0.0, 0.1]}, "low > 0"),
        ({"uniform": [0.1, 0.2], "choice": [0.1]}, "exactly one of"),
    ],
)
def test_a_bad_range_is_refused(tmp_path, dimension, message):
    with pytest.raises(VisionOpsError, match=message):
        load_params(params_file(tmp_path, {"space": {"train.lr": dimension}}), "tune")


@pytest.mark.parametrize(
    ("key", "dimension", "message"),
    [
        ("model.width", {"choice": [2, 8]}, r"model\.width: 2 is not a valid value"),
        ("train.epochs", {"int_uniform": [1, 53560]}, r"train\.epochs: 53560 is not a valid value"),
    ],
)
def test_a_value_the_key_does_not_accept_is_refused(tmp_path, key, dimension, message):
    """Issue 32: an lr range up to 10,000 recommended an lr of 6,292 at chance accuracy."""
    path = params_file(tmp_path, {"space": {key: dimension}})
    with pytest.raises(VisionOpsError, match=message):
        load_params(path, "tune")


def test_an_unreachable_storage_is_an_error_before_training_without_the_password():
    from visionops.tuning.storage import open_storage

    with pytest.raises(VisionOpsError, match="cannot open the study storage") as err:
        open_storage("postgresql+psycopg://tuner:s3cret@127.0.0.1:9/optuna")
    assert "s3cret" not in str(err.value) and "tuner:***@127.0.0.1:9" in str(err.value)
    assert "--storage" in err.value.fix


def tune_command(params: Path, storage: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "visionops", "tune", "--params", str(params), "--storage", storage,
            "--study", "shared", "--no-progress", *extra]  # fmt: skip


def counted_trials(storage: str) -> list[int]:
    import optuna

    trials = optuna.load_study(study_name="shared", storage=storage).get_trials(deepcopy=False)
    return sorted(t.number for t in trials if t.state.name in ("COMPLETE", "PRUNED"))


def drawn_values(storage: str) -> list[tuple]:
    import optuna

    trials = optuna.load_study(study_name="shared", storage=storage).get_trials(deepcopy=False)
    return [tuple(sorted(t.params.items())) for t in trials if t.params]


def parent_runs():
    runs = mlflow.search_runs(experiment_names=["tune-test"])
    return runs[runs["tags.mlflow.parentRunId"].isna()]


def interrupted_mid_study(command: list[str], storage: str, cwd: Path, env: dict) -> tuple[int, str]:
    """Run `command` on a bigger study until it has added one trial, then Ctrl-C it: (exit code,
    output)."""
    before = len(counted_trials(storage))
    proc = subprocess.Popen([*command, "--trials", "40"], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 300
    while len(counted_trials(storage)) < before + 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=300)[0]
    return proc.returncode, output


@pytest.mark.slow
def test_two_processes_share_one_sqlite_study_and_ctrl_c_resumes(tmp_path, prepared_digits):
    """Two `visionops tune` processes on one study file: one trial count, no trial twice. Then
    Ctrl-C mid-study: exit 130, no MLflow run left RUNNING, and the same command resumes."""
    tune = {"trials": 4, "startup_trials": 1, "space": {"train.lr": {"log_uniform": [1.0e-4, 0.1]}}}
    params = params_file(tmp_path, tune)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    command = tune_command(params, storage, "--prepared", str(prepared_digits))
    workers = [subprocess.Popen(command, cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT) for _ in range(2)]  # fmt: skip
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    assert [w.returncode for w in workers] == [0, 0], [output[-4000:] for output in outputs]
    numbers = counted_trials(storage)
    assert len(numbers) == 4 == len(set(numbers))  # none lost, none twice, none over the count (issue 32)
    assert len(set(drawn_values(storage))) == len(drawn_values(storage))  # no point drawn twice
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    assert len(parent_runs()) == 1  # both started on a new study; only its creator made the run

    code, output = interrupted_mid_study(command, storage, tmp_path, env)
    assert code == 130 and "run the same command to resume" in output, output
    runs = mlflow.search_runs(experiment_names=["tune-test"])
    assert "RUNNING" not in set(runs["status"]) and "KILLED" in set(runs["status"])
    done = len(counted_trials(storage))
    resumed = subprocess.run([*command, "--trials", str(done + 1)], cwd=tmp_path, env=env, text=True,
                             capture_output=True, timeout=300)  # fmt: skip
    assert resumed.returncode == 0 and f"{done}/{done + 1} trials done" in resumed.stdout, resumed.stderr
    assert len(counted_trials(storage)) == done + 1


@pytest.mark.slow
def test_workers_share_the_study_and_ctrl_c_reaches_each_once(tmp_path, prepared_digits):
    """`--workers 2`: two processes with one CPU thread each on one study, one parent run; then
    Ctrl-C to the launcher: both workers stop, 130, nothing RUNNING, the parent KILLED."""
    tune = {"trials": 4, "startup_trials": 1, "space": {"train.lr": {"log_uniform": [1.0e-4, 0.1]}}}
    params = params_file(tmp_path, tune)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    command = tune_command(params, storage, "--prepared", str(prepared_digits), "--workers", "2")
    done = subprocess.run(command, cwd=tmp_path, env=env, text=True, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2 workers, 1 CPU thread(s) each" in done.stdout and "train it with: dvc exp run -S" in done.stdout
    assert len(counted_trials(storage)) == 4
    assert len(set(drawn_values(storage))) == len(drawn_values(storage))
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    (parent,) = parent_runs().itertuples()
    assert parent.status == "FINISHED"

    code, output = interrupted_mid_study(command, storage, tmp_path, env)
    assert code == 130 and "run the same command to resume" in output, output
    runs = mlflow.search_runs(experiment_names=["tune-test"])
    assert "RUNNING" not in set(runs["status"]), runs[["tags.mlflow.runName", "status"]]
    assert list(parent_runs()["status"]) == ["KILLED"]
    assert output.count("Traceback") == 0, output


@pytest.mark.slow
def test_more_workers_than_trials_run_exactly_the_trials(tmp_path, prepared_digits):
    """Issue 32: `--workers 6 --trials 1` ran 6 trials, `--workers 2 --trials 3` ran 4: the
    launcher starts no idle worker, and a worker takes no trial past the study's count."""
    params = params_file(tmp_path, {"trials": 2, "space": {"train.lr": {"log_uniform": [1.0e-4, 0.1]}}})
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    command = tune_command(params, storage, "--prepared", str(prepared_digits), "--workers", "3")
    done = subprocess.run(command, cwd=tmp_path, env=env, text=True, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "tune: 2 workers" in done.stdout and len(counted_trials(storage)) == 2
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("trials", ["0", "-5"])
def test_a_study_without_trials_is_refused(tmp_path, trials):
    done = subprocess.run(
        [sys.executable, "-m", "visionops", "tune", "--trials", trials],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and f"--trials {trials}: a study needs at least one trial" in done.stderr


@pytest.mark.parametrize("folder", ["/proc", "/nonexistent/deeper"])
def test_a_sqlite_storage_in_a_folder_that_cannot_hold_it_is_refused_at_once(folder):
    """Issue 32: sqlite:////proc/optuna.db waited 10 minutes on a file lock; a missing folder
    was created silently."""
    from visionops.tuning.storage import open_storage

    started = time.monotonic()
    with pytest.raises(VisionOpsError, match=f"{folder} is not a folder this process can write"):
        open_storage(f"sqlite:///{folder}/optuna.db")
    assert time.monotonic() - started < 10 and not Path("/nonexistent").exists()


def test_trials_draw_by_number_reproducibly_and_workers_draw_apart(tmp_path):
    """One process replays its study; two processes with the same seed draw different points."""
    import optuna

    from visionops.tuning.sampler import TrialSeededTPE

    def draws(storage: str, studies: int, name: str) -> list[float]:
        opened = [optuna.create_study(storage=storage, study_name=name, sampler=TrialSeededTPE(7),
                                      load_if_exists=True) for _ in range(studies)]  # fmt: skip
        values = []
        for number in range(6):
            trial = opened[number % studies].ask()
            values.append(trial.suggest_float("lr", 1e-4, 1e-1, log=True))
            opened[number % studies].tell(trial, values[-1])
        return values

    storage = f"sqlite:///{tmp_path / 'o.db'}"
    assert draws(storage, 1, "a") == draws(storage, 1, "b")  # a fresh study replays
    shared = draws(storage, 2, "c")
    assert len(set(shared)) == 6


def test_without_the_pruner_every_trial_trains_to_the_end(tmp_path, monkeypatch, prepared_digits):
    tune = {"trials": 3, "startup_trials": 0, "warmup_epochs": 0, "pruner": "none",
            "space": {"train.lr": {"log_uniform": [1.0e-6, 0.3]}}}  # fmt: skip
    result, _ = study(tmp_path, monkeypatch, prepared_digits, tune)
    assert [t.state.name for t in result.trials] == ["COMPLETE"] * 3
    assert all(len(t.intermediate_values) == 3 for t in result.trials)


def test_the_hyperband_pruner_runs_a_study_to_its_count(tmp_path, monkeypatch, prepared_digits):
    import optuna

    tune = {"trials": 4, "warmup_epochs": 1, "pruner": "hyperband",
            "space": {"train.lr": {"log_uniform": [1.0e-6, 0.3]}}}  # fmt: skip
    result, _ = study(tmp_path, monkeypatch, prepared_digits, tune)
    assert isinstance(result.pruner, optuna.pruners.HyperbandPruner)
    assert {t.state.name for t in result.trials} <= {"COMPLETE", "PRUNED"} and len(result.trials) >= 4


def test_a_storage_without_its_driver_names_the_driver_to_install():
    from visionops.tuning.storage import open_storage

    with pytest.raises(VisionOpsError, match="cannot open the study storage") as err:
        open_storage("mysql+pymysql://tuner:s3cret@127.0.0.1/optuna")
    assert "driver" in err.value.fix and "s3cret" not in str(err.value)


RACING_WRITER = """
import sys, time
import mlflow
from visionops.tuning.mlflow_runs import RACE
from visionops.tuning.storage import retried

client = mlflow.MlflowClient()
run_id, start = sys.argv[1], float(sys.argv[2])
for n in range(20):  # both processes write the same new tag at the same instants
    while time.time() < start + n * 0.25:
        time.sleep(0.001)
    retried(lambda: client.set_tag(run_id, f"best.key{n}", "0.01"), RACE, pause_s=0.1)
"""


@pytest.mark.slow
def test_two_processes_ending_one_study_run_write_the_same_tags_without_failing(tmp_path):
    """MLflow's set_tag is a select then an insert: two workers ending the study's run at once
    made one of them fail on the unique key (UNIQUE constraint failed: tags.key, tags.run_uuid)."""
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    run_id = mlflow.MlflowClient().create_run(mlflow.create_experiment("race")).info.run_id
    start = str(time.time() + 6)  # both processes imported and waiting by then
    writers = [subprocess.Popen([sys.executable, "-c", RACING_WRITER, run_id, start], env=env, text=True,
                                stderr=subprocess.PIPE) for _ in range(2)]  # fmt: skip
    errors = [writer.communicate(timeout=120)[1] for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0], errors
    assert len(mlflow.MlflowClient().get_run(run_id).data.tags) >= 20


def test_an_lr_range_no_optimizer_trains_in_is_warned_about():
    """Issue 32: an lr range up to 10,000 ran and recommended an lr of 6,292 without a word. A
    range that high still runs (a diverging trial is a test case above), with a warning."""
    from visionops.config import Dimension
    from visionops.tuning.space import implausible

    assert implausible({"train.lr": Dimension(log_uniform=[1.0e-4, 0.3])}) == []
    (warning,) = implausible({"train.lr": Dimension(log_uniform=[1.0e-3, 1.0e4])})
    assert "reaches 10000" in warning and "log_uniform" in warning
    assert implausible({"train.lr": Dimension(choice=[1.0e12])})
