"""Tracking never loses results: an unreachable MLflow defers the stage's log to the journal
(snapshotting its files), and `sync` replays it into the same run once the store is back.

The outage is real: MLFLOW_TRACKING_URI points at a port nothing listens on. The store that
comes back is a real SQLite MLflow store.
"""

from pathlib import Path

import mlflow
import pytest

from visionops.__main__ import main as cli
from visionops.config import TrackingParams
from visionops.errors import VisionOpsError
from visionops.stack.processes import free_port
from visionops.tracking import journal
from visionops.tracking.record import StageLog
from visionops.tracking.track import new_run, sync, track

FAST = {"retries": 1, "backoff_factor": 0, "timeout_s": 5}


def dead_uri() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder whose own SQLite store is the one that 'comes back'."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    report = tmp_path / "evaluate.json"
    report.write_text('{"accuracy": 0.97}')
    return tmp_path


def evaluate_log(project):
    values = StageLog(
        params={"evaluate.batch_size": 256},
        metrics={"test_accuracy": 0.97},
        artifact_dirs={"report": "evaluation"},
    )
    return {"report": project / "evaluate.json"}, values


def go_down(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", dead_uri())


def come_back(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")


def test_defer_keeps_a_snapshot_and_sync_replays_it_into_the_same_run(project, monkeypatch):
    record = new_run(TrackingParams(**FAST), None, project)
    files, values = evaluate_log(project)
    go_down(monkeypatch)
    assert track("evaluate", record, files, values, TrackingParams(on_unavailable="defer", **FAST)) is None
    (project / "evaluate.json").write_text('{"accuracy": "overwritten by a later run"}')
    assert len(journal.entries(project)) == 1
    come_back(monkeypatch)
    assert [stage for stage, _ in sync(project)] == ["evaluate"]
    run = mlflow.MlflowClient().get_run(record["run_id"])
    assert run.data.metrics["test_accuracy"] == 0.97 and run.data.params["evaluate.batch_size"] == "256"
    logged = mlflow.artifacts.download_artifacts(run_id=record["run_id"], artifact_path="evaluation/report")
    assert "0.97" in Path(logged).read_text()
    assert journal.entries(project) == [] and sync(project) == []


def test_fail_mode_says_what_happened_and_how_to_recover(project, monkeypatch):
    record = new_run(TrackingParams(**FAST), None, project)
    files, values = evaluate_log(project)
    go_down(monkeypatch)
    with pytest.raises(VisionOpsError, match="is unreachable") as err:
        track("evaluate", record, files, values, TrackingParams(on_unavailable="fail", **FAST))
    assert "python -m visionops sync" in err.value.fix and "on_unavailable: defer" in err.value.fix
    assert len(journal.entries(project)) == 1  # kept for the replay even though the stage failed


def test_run_created_during_an_outage_is_created_by_the_replay_and_reused(project, monkeypatch):
    go_down(monkeypatch)
    record = new_run(TrackingParams(experiment="outage", **FAST), "exp-1", project)
    assert record["run_id"] is None and record["pending_id"]
    files, values = evaluate_log(project)
    track("evaluate", record, files, values, TrackingParams(on_unavailable="defer", **FAST))
    come_back(monkeypatch)
    sync(project)
    run_id = journal.resolved_run_id(project, record)
    run = mlflow.MlflowClient().get_run(run_id)
    assert run.info.run_name == "exp-1" and run.data.metrics["test_accuracy"] == 0.97
    later = values.model_copy(update={"metrics": {"test_f1_macro": 0.96}})
    track("evaluate", record, files, later, TrackingParams(**FAST))  # later stage, server up
    assert set(mlflow.MlflowClient().get_run(run_id).data.metrics) == {"test_accuracy", "test_f1_macro"}
    assert len(mlflow.search_runs(experiment_names=["outage"], output_format="list")) == 1


def test_next_stage_replays_the_journal_first_when_the_server_is_back(project, monkeypatch):
    record = new_run(TrackingParams(**FAST), None, project)
    files, values = evaluate_log(project)
    go_down(monkeypatch)
    track("evaluate", record, files, values, TrackingParams(on_unavailable="defer", **FAST))
    come_back(monkeypatch)
    track("compress", record, {}, StageLog(metrics={"int8_accuracy": 0.96}), TrackingParams())
    metrics = mlflow.MlflowClient().get_run(record["run_id"]).data.metrics
    assert metrics == {"test_accuracy": 0.97, "int8_accuracy": 0.96} and journal.entries(project) == []


def test_sync_command_while_still_down_loses_nothing(project, monkeypatch, capsys):
    record = new_run(TrackingParams(**FAST), None, project)
    files, values = evaluate_log(project)
    go_down(monkeypatch)
    track("evaluate", record, files, values, TrackingParams(on_unavailable="defer", **FAST))
    assert cli(["sync"]) == 1
    assert "still unreachable" in capsys.readouterr().err and len(journal.entries(project)) == 1
    come_back(monkeypatch)
    assert cli(["sync"]) == 0
    assert "1 deferred stage log(s) replayed" in capsys.readouterr().out
