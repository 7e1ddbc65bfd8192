"""Promotion gate logic, and the registry on a real SQLite MLflow store."""

import numpy as np
import pytest
import torch

from visionops.config import TrackingParams
from visionops.data.prepared import to_model_input
from visionops.export.onnx_export import export_onnx
from visionops.tracking import registry
from visionops.tracking.runs import configure, log_params
from visionops.tracking.track import log_stage, new_run


def test_gate_promotes_first_model():
    d = registry.decide("f1_macro", 0.9, 0.0, None, True, True)
    assert d.promote and d.reasons == ["no champion yet"]


@pytest.mark.parametrize(
    ("value", "delta", "promote"),
    [(0.95, 0.0, True), (0.90, 0.0, False), (0.85, 0.0, False), (0.92, 0.05, False)],
)
def test_gate_needs_to_beat_champion_by_min_delta(value, delta, promote):
    assert registry.decide("f1_macro", value, delta, ("3", 0.90), True, True).promote is promote


def test_gate_blocks_on_failed_validation_or_parity_and_says_why():
    d = registry.decide("accuracy", 0.99, 0.0, ("1", 0.5), validation_ok=False, parity_ok=False)
    assert not d.promote
    assert (
        "data validation had critical failures" in d.reasons
        and "ONNX export parity check failed" in d.reasons
    )


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    configure(tmp_path)
    return tmp_path


def test_register_moves_aliases_per_gate_and_champion_loads_with_pyfunc(store, trained, digits_arrays):
    import mlflow

    model, _, meta = trained
    x = to_model_input(digits_arrays["test_x"][:64], meta)
    onnx_path = store / "model.onnx"
    export_onnx(model, torch.from_numpy(x[:2]), onnx_path, 20, {})
    name = "digits"
    versions = []
    for f1 in (0.90, 0.85, 0.95):
        record = new_run(TrackingParams(experiment="exp"), None, store)
        with mlflow.start_run(run_id=record["run_id"]):
            log_params(record["run_id"], {"register.min_delta": 0.0})
            logged = registry.log_onnx_model(onnx_path, x[:4])
        decision = registry.decide(
            "f1_macro", f1, 0.0, registry.current_champion(name, "f1_macro"), True, True
        )
        version = registry.register_version(logged.model_uri, name, {"metric.f1_macro": str(f1)}, "test")
        registry.apply_aliases(name, version.version, decision)
        versions.append((version.version, decision.promote))
    assert [p for _, p in versions] == [True, False, True]
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias(name, "candidate").version == versions[2][0]
    assert client.get_model_version_by_alias(name, "champion").version == versions[2][0]
    assert client.get_model_version(name, versions[1][0]).tags["gate.promoted"] == "false"
    assert (store / "mlartifacts").is_dir() and not (store / "mlruns").exists()

    champion = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    out = champion.predict(x)
    logits = next(iter(out.values())) if isinstance(out, dict) else np.asarray(out)
    assert (np.asarray(logits).argmax(1) == digits_arrays["test_y"][:64]).mean() > 0.9


def test_changed_param_is_recorded_as_tag_not_an_error(store):
    import mlflow

    record = new_run(TrackingParams(experiment="exp"), None, store)
    values = {"params": {"evaluate.batch_size": 256}, "metrics": {"test_accuracy": 0.9}, "artifact_dirs": {}}
    log_stage("evaluate", record, {}, values, store)
    log_stage("evaluate", record, {}, values | {"params": {"evaluate.batch_size": 128}}, store)
    run = mlflow.MlflowClient().get_run(record["run_id"])
    assert run.data.tags["param_changed.evaluate.batch_size"] == "256 -> 128"
    assert run.data.tags["visionops.last_stage"] == "evaluate"
    history = mlflow.MlflowClient().get_metric_history(record["run_id"], "test_accuracy")
    assert len(history) == 1  # logged once, not again by the second (replayed) call


def test_reopening_a_run_missing_from_the_store_says_how_to_fix(store):
    from visionops.errors import VisionOpsError
    from visionops.tracking.runs import tracking_uri

    moved = {"run_id": "0" * 32, "tracking_uri": "sqlite:///elsewhere.db"}
    with pytest.raises(VisionOpsError, match="not in the tracking store") as err:
        log_stage("evaluate", moved, {}, {"artifact_dirs": {}}, store)
    assert err.value.fix.startswith("the run was logged to sqlite:///elsewhere.db: set MLFLOW_TRACKING_URI")
    # Issue 18: the same store that lost the run must not be suggested as the fix.
    gone = {"run_id": "0" * 32, "tracking_uri": tracking_uri(store)}
    with pytest.raises(VisionOpsError, match="not in the tracking store") as err:
        log_stage("evaluate", gone, {}, {"artifact_dirs": {}}, store)
    assert "MLFLOW_TRACKING_URI" not in err.value.fix and "dvc repro -f train" in err.value.fix


def test_project_root_follows_dvc_root_for_temp_and_queued_experiments(tmp_path, monkeypatch):
    from visionops.tracking.runs import default_uri, project_root

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    assert project_root() == tmp_path.resolve()
    parent = tmp_path / "repo"
    monkeypatch.setenv("DVC_ROOT", str(parent))  # what DVC sets inside .dvc/tmp/exps/<tmp> runs
    assert project_root() == parent.resolve()
    assert default_uri(project_root()) == f"sqlite:///{parent.resolve() / 'mlflow.db'}"
