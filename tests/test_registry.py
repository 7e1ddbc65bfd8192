"""Promotion gate logic, and the registry on a real SQLite MLflow store."""

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from invariants import learned

from visionops.config import TrackingParams
from visionops.data.prepared import open_prepared, to_model_input
from visionops.errors import VisionOpsError
from visionops.export.classifier import OnnxClassifier
from visionops.export.onnx_export import export_onnx
from visionops.gate.champion import check_same_task, gate_evidence, predicted_indices
from visionops.gate.decision import decide, decision_record
from visionops.gate.paired import majority_class, paired_comparison
from visionops.serving.packaging import pyfunc_spec
from visionops.tracking import registry
from visionops.tracking.record import DatasetInput, StageLog
from visionops.tracking.runs import configure, log_params
from visionops.tracking.track import log_stage, new_run
from visionops.tracking.version_files import download_verified, record_files


def comparison(wins: int, losses: int, n: int = 360, version: str | None = "3") -> dict:
    """Paired evidence of a challenger right on `wins` images the reference gets wrong and
    wrong on `losses` it gets right (all other images right for both)."""
    y = np.arange(n) % 10
    challenger, reference = y.copy(), y.copy()
    reference[:wins] = (y[:wins] + 1) % 10
    challenger[wins : wins + losses] = (y[wins : wins + losses] + 1) % 10
    return paired_comparison(y, challenger, reference, "f1_macro", 10) | {"champion_version": version}


def test_paired_comparison_counts_discordant_pairs_and_exact_mcnemar_p():
    evidence = comparison(20, 2)
    assert (evidence["challenger_only"], evidence["reference_only"], evidence["n"]) == (20, 2, 360)
    assert evidence["p_value"] == pytest.approx((231 + 22 + 1) / 2**22)  # P(X >= 20), X ~ B(22, 1/2)
    assert evidence["challenger"] > evidence["reference"]
    assert comparison(0, 0)["p_value"] == 1.0


def test_gate_does_not_promote_two_images_of_noise():
    """The issue's case: a re-seeded run right on 3 more and 1 fewer of 360 images."""
    d = decide(comparison(3, 1), 0.0, 0.05, True, True)
    assert not d.promote and "does not beat champion v3" in d.reasons[0] and "p = 0.312" in d.reasons[0]
    assert decide(comparison(20, 2), 0.0, 0.05, True, True).promote


@pytest.mark.parametrize(
    ("wins", "losses", "min_delta", "promote"),
    [(20, 2, 0.0, True), (20, 2, 0.2, False), (2, 20, 0.0, False), (11, 0, 0.0, True), (4, 0, 0.0, False)],
)
def test_gate_needs_min_delta_and_significance(wins, losses, min_delta, promote):
    assert decide(comparison(wins, losses), min_delta, 0.05, True, True).promote is promote


def test_first_model_must_beat_the_trivial_baseline():
    y = np.array([0] * 60 + [1] * 30 + [2] * 30)
    always = np.full(len(y), majority_class(np.array([0, 0, 1, 2])))
    evidence = paired_comparison(y, always, always, "f1_macro", 3) | {"champion_version": None}
    d = decide(evidence, 0.0, 0.05, True, True)
    assert not d.promote and "trivial baseline" in d.reasons[0] and d.champion_version is None
    good = paired_comparison(y, y, always, "f1_macro", 3) | {"champion_version": None}
    assert decide(good, 0.0, 0.05, True, True).promote


def test_gate_blocks_on_failed_validation_or_parity_and_says_why():
    d = decide(comparison(40, 0), 0.0, 0.05, validation_ok=False, parity_ok=False)
    assert not d.promote
    assert (
        "data validation had critical failures" in d.reasons
        and "ONNX export parity check failed" in d.reasons
    )


def test_gate_without_evidence_waits_and_says_how_to_decide():
    d = decide(None, 0.0, 0.05, True, True)
    assert not d.promote and "dvc repro --single-item --force register" in d.reasons[0]


def test_a_champion_of_another_task_is_refused_naming_the_fix():
    task = {"classes": ["cat", "dog"], "image_size": 64, "channels": 3}
    check_same_task(task, dict(task), "m", "1")
    for change in ({"classes": ["dog", "cat"]}, {"image_size": 32}, {"channels": 1}):
        with pytest.raises(VisionOpsError, match=r"register\.model_name") as caught:
            check_same_task(task, task | change, "m", "1")
        assert next(iter(change)) in str(caught.value)


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    configure(tmp_path)
    return tmp_path


@pytest.fixture
def logged_model(store, deployable_onnx, digits_arrays):
    """The deployable ONNX of the trained digits model, logged once as the pyfunc image model."""
    import mlflow

    onnx_path, images = deployable_onnx, digits_arrays["test_x"]
    record = new_run(TrackingParams(experiment="exp"), None, store)
    with mlflow.start_run(run_id=record["run_id"]):
        log_params(record["run_id"], {"register.min_delta": 0.0})
        return registry.log_image_model({"onnx": onnx_path}, pyfunc_spec(images[0]))


def test_register_moves_aliases_per_gate_and_champion_is_scored_again(
    store, logged_model, trained, digits_arrays
):
    import mlflow

    name = "digits"
    versions = []
    info = logged_model
    sealed = record_files(info.run_id, info.model_uri, info.model_id, store / "seal")
    for wins, losses in ((40, 0), (3, 1), (30, 2)):
        decision = decide(
            comparison(wins, losses, version=registry.champion_version(name)), 0, 0.05, True, True
        )
        version = registry.register_version(logged_model.model_uri, name, sealed, "test")
        applied = registry.apply_aliases(name, version.version, decision_record(decision))
        versions.append((version.version, applied["promote"]))
    assert [p for _, p in versions] == [True, False, True]
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias(name, "candidate").version == versions[2][0]
    assert client.get_model_version_by_alias(name, "champion").version == versions[2][0]
    tags = client.get_model_version(name, versions[1][0]).tags
    assert tags["gate.promoted"] == "false" and tags["gate.p_value"].startswith("0.31")
    assert tags["gate.challenger_only"] == "3" and tags["gate.champion_version"] == str(versions[0][0])
    assert (store / "mlartifacts").is_dir() and not (store / "mlruns").exists()

    version, path = registry.download_champion(name, store / "download")
    assert version == str(versions[2][0])
    champion = OnnxClassifier(path)
    assert champion.task == {"classes": trained[2]["classes"], "image_size": 8, "channels": 1}
    predicted = champion.labels(digits_arrays["test_x"])
    assert learned((predicted == digits_arrays["test_y"]).mean(), digits_arrays["test_y"])
    assert registry.download_champion("no-such-model", store / "none") is None


def test_a_version_whose_files_changed_after_registration_is_refused_naming_the_file(store, logged_model):
    """Issue 32: the model's files live under the experiment's artifacts, writable by any
    editor; a consumer checks them against the manifest the version was sealed with. Issue 47:
    whatever form of models:/ URI names the version (MLflow's own reading of it)."""
    import mlflow

    info = logged_model
    sealed = record_files(info.run_id, info.model_uri, info.model_id, store / "seal")
    version = registry.register_version(info.model_uri, "sealed", sealed, "test").version
    mlflow.MlflowClient().set_registered_model_alias("sealed", "champion", version)
    fetched = download_verified(f"models:/sealed/{version}", store / "ok")
    assert (
        fetched.warnings == [] and sorted(fetched.local.rglob("*.onnx")) and fetched.version == str(version)
    )
    from visionops.serving.load import load_model

    image = base64.b64decode(pyfunc_spec(np.zeros((8, 8, 1), np.uint8))["example_png_b64"])
    assert len(load_model("models:/sealed@champion").predict(pd.DataFrame({"image": [image]}))) == 1
    stored = {
        p.relative_to(store / "mlartifacts"): p for p in (store / "mlartifacts").rglob("*") if p.is_file()
    }
    code = next(p for rel, p in stored.items() if rel.name == "pyfunc_model.py" and info.model_id in str(rel))
    code.write_text(code.read_text() + "\nimport os  # someone's payload\n")
    forms = ["models:/sealed/{v}", "models:/sealed@champion", "models:/sealed/latest",
             "models:/sealed/LATEST", "models:///sealed@champion", "models:///sealed/{v}"]  # fmt: skip
    for i, form in enumerate(forms):
        with pytest.raises(
            VisionOpsError, match=r"sealed v\d+ is not what was registered: changed: .*pyfunc_model\.py"
        ):
            download_verified(form.format(v=version), store / f"bad-{i}")
    with pytest.raises(VisionOpsError, match="is not what was registered"):
        load_model("models:/sealed@champion")  # Python's way in is checked too


def test_a_uri_that_names_no_sealed_version_is_refused_before_any_download(store, logged_model, tmp_path):
    """runs:/, a logged model's id, a stage name, another registry, a local folder: nothing
    sealed their files, so nothing is downloaded or loaded from them."""
    info = logged_model
    registry.register_version(info.model_uri, "staged", {}, "test")
    local = tmp_path / "folder"
    local.mkdir()
    refused = {
        f"runs:/{info.run_id}/model": "is not a registered version",
        info.model_uri: "is a logged model, not a registered version",
        "models:/staged/Production": "names the stage 'Production'",
        "models://other-profile/staged/1": "names another registry",
        str(local): "is not a registered version",
        f"file://{local}": "is not a registered version",
        "models:/": "is not a model URI MLflow can read",
        "models:/staged@champion/": "is not a model URI MLflow can read",
    }
    for uri, message in refused.items():
        with pytest.raises(VisionOpsError, match=message):
            download_verified(uri, store / "never")
    assert not (store / "never").exists()


def test_a_version_without_a_file_manifest_never_runs_its_own_code(store, logged_model, tmp_path):
    """Issue 47 row 5: anyone may register a version that carries only `onnx.sha256`; its ONNX is
    checked for the consumers that load nothing else, and serve refuses it."""
    import argparse

    from visionops.cli import serve

    info = logged_model
    files = record_files(info.run_id, info.model_uri, info.model_id, store / "seal")
    onnx_sha = next(v for k, v in json.loads(mlflow_text(files)).items() if k.endswith(".onnx"))
    legacy = registry.register_version(info.model_uri, "legacy", {"onnx.sha256": onnx_sha}, "test").version
    fetched = download_verified(f"models:/legacy/{legacy}", store / "onnx-only")
    assert "only its ONNX file was checked" in fetched.warnings[0]
    with pytest.raises(VisionOpsError, match="carries no file manifest") as refused:
        download_verified(f"models:/legacy/{legacy}", store / "whole", onnx_only_ok=False)
    assert "dvc repro -f register" in str(refused.value)
    args = argparse.Namespace(
        model=f"models:/legacy/{legacy}", host="127.0.0.1", port=1, workers=1, request_log=None
    )
    with pytest.raises(VisionOpsError, match="carries no file manifest"):
        serve.run(args)  # refused before any server starts
    unsealed = registry.register_version(info.model_uri, "unsealed", {}, "test").version
    with pytest.raises(VisionOpsError, match="no recorded file hashes"):
        download_verified(f"models:/unsealed/{unsealed}", store / "none")


def mlflow_text(sealed: dict[str, str]) -> str:
    import mlflow

    from visionops.tracking.version_files import MANIFEST_TAG

    return mlflow.artifacts.load_text(sealed[MANIFEST_TAG])


def test_a_champion_exported_before_issue_13_is_still_scored(trained, digits_arrays, tmp_path):
    """Older exports take normalised float32 NCHW: the scorer normalises for them."""
    model, _, meta = trained
    path = tmp_path / "old.onnx"
    x = to_model_input(digits_arrays["test_x"][:2], meta)
    export_onnx(model, torch.from_numpy(x), path, 20, meta)
    old = OnnxClassifier(path)
    assert not old.takes_uint8
    accuracy = (old.labels(digits_arrays["test_x"]) == digits_arrays["test_y"]).mean()
    assert learned(accuracy, digits_arrays["test_y"])


def test_a_champion_moved_by_another_experiment_is_not_overwritten(store, logged_model):
    uri = logged_model.model_uri
    first = registry.register_version(uri, "m", {}, "test")
    won = decision_record(decide(comparison(40, 0, version=None), 0, 0.05, True, True))
    registry.apply_aliases("m", first.version, won)
    stale = dict(won)  # compared before v1 won
    second = registry.register_version(uri, "m", {}, "test")
    applied = registry.apply_aliases("m", second.version, stale)
    assert not applied["promote"] and "meanwhile v1 became champion" in applied["reasons"][-1]
    assert stale["promote"] and len(stale["reasons"]) == 1  # the caller's record is not mutated
    assert registry.champion_version("m") == str(first.version)


def test_changed_param_is_recorded_as_tag_not_an_error(store):
    import mlflow

    record = new_run(TrackingParams(experiment="exp"), None, store)
    values = StageLog(params={"evaluate.batch_size": 256}, metrics={"test_accuracy": 0.9})
    log_stage("evaluate", record, {}, values, store)
    log_stage(
        "evaluate", record, {}, values.model_copy(update={"params": {"evaluate.batch_size": 128}}), store
    )
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


def test_a_stage_that_fails_to_log_leaves_a_finished_run_finished(store):
    """Issue 22: a failing register (here a malformed log) does not re-judge the model's run."""
    import mlflow

    record = new_run(TrackingParams(experiment="exp"), None, store)
    mlflow.MlflowClient().set_terminated(record["run_id"], "FINISHED")
    with pytest.raises(KeyError):
        log_stage("register", record, {}, {"artifact_dirs": {}}, store)  # no "onnx" file to log
    assert mlflow.MlflowClient().get_run(record["run_id"]).info.status == "FINISHED"
    assert mlflow.active_run() is None


def test_project_root_follows_dvc_root_for_temp_and_queued_experiments(tmp_path, monkeypatch):
    from visionops.tracking.runs import default_uri, project_root

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    assert project_root() == tmp_path.resolve()
    parent = tmp_path / "repo"
    monkeypatch.setenv("DVC_ROOT", str(parent))  # what DVC sets inside .dvc/tmp/exps/<tmp> runs
    assert project_root() == parent.resolve()
    assert default_uri(project_root()) == f"sqlite:///{parent.resolve() / 'mlflow.db'}"


def test_train_log_takes_files_only_and_the_logged_model_runs(store, trained, digits_arrays, tmp_path):
    """Issue 16: tracking gets the model as a torch.export program and the data as a sample
    file, imports no model or data code, and what it logs reloads and predicts."""
    import mlflow
    import pandas as pd

    from visionops.models.serialize import save_program

    model, _, meta = trained
    example = to_model_input(digits_arrays["test_x"][:4], meta)
    save_program(model, torch.from_numpy(example), tmp_path / "model.pt2")
    images, labels = digits_arrays["train_x"][:16], digits_arrays["train_y"][:16]
    np.savez(tmp_path / "sample.npz", images=images, labels=labels, example=example)
    pd.DataFrame({"epoch": [1], "train_loss": [0.5]}).to_csv(tmp_path / "history.csv", index=False)
    (tmp_path / "curves.png").write_bytes(b"png")
    files = {
        "history": tmp_path / "history.csv",
        "curves": tmp_path / "curves.png",
        "program": tmp_path / "model.pt2",
        "dataset_sample": tmp_path / "sample.npz",
    }
    values = StageLog(
        params={"train.lr": 0.01},
        tags={"dataset.source": "digits"},
        metrics={"best_val_accuracy": 0.9},
        dataset=DatasetInput(name="digits-prepared", digest="d" * 64, source="data/prepared", rows=1437),
    )
    record = new_run(TrackingParams(experiment="exp"), None, store)
    log_stage("train", record, files, values, store)
    log_stage("train", record, files, values, store)  # a replay logs nothing twice
    run = mlflow.MlflowClient().get_run(record["run_id"])
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["digits-prepared"]
    logged = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{record['run_id']}'",
        output_format="list",
    )
    assert [m.name for m in logged] == ["pytorch_model"]
    reloaded = mlflow.pytorch.load_model(logged[0].model_uri)
    batch = to_model_input(digits_arrays["test_x"][:9], meta)  # another batch size than the example
    with torch.no_grad():
        expected = model.cpu().eval()(torch.from_numpy(batch)).numpy()
        assert np.allclose(reloaded(torch.from_numpy(batch)).numpy(), expected, atol=1e-5)


def test_gate_evidence_scores_the_champion_or_the_majority_baseline(
    prepared_digits, deployable_onnx, trained, digits_arrays
):
    """The gate's evidence from the library: with no champion, the challenger is paired with
    always answering the most frequent training class; with one, with the champion's own
    predictions on the same test images; a champion of another task is refused."""
    data = open_prepared(prepared_digits)
    perfect = data.test.y.copy()
    baseline = gate_evidence(data, perfect, None, "digits", "accuracy")
    majority = majority_class(data.train.y[data.train.originals])
    assert baseline["champion_version"] is None and baseline["challenger"] == 1.0
    assert baseline["reference"] == pytest.approx(float(np.mean(data.test.y == majority)))
    assert baseline["challenger_only"] == int(np.sum(data.test.y != majority)) and baseline["p_value"] < 1e-6

    # the trained 8 px champion solves another task than this 16 px data: refused, naming the fix
    with pytest.raises(VisionOpsError, match="solves another task") as err:
        gate_evidence(data, perfect, ("4", deployable_onnx), "digits", "accuracy")
    assert "register.model_name" in err.value.fix and "image_size" in str(err.value)


def test_gate_evidence_pairs_with_the_champions_predictions(deployable_onnx, digits_arrays):
    from visionops.data.decode import RESIZE_METHOD
    from visionops.data.prepared import Prepared, PreparedMeta, Split

    x, y = digits_arrays["test_x"], digits_arrays["test_y"]
    meta = PreparedMeta(
        classes=[str(i) for i in range(10)], image_size=8, channels=1, resize=RESIZE_METHOD,
        counts={"train": len(y), "test": len(y)}, mean=[0.0], std=[1.0], copies=0, source="digits",
    )  # fmt: skip
    data = Prepared(Path("."), meta, Split(x, y, np.arange(len(y)), np.zeros(len(y), np.int16)), Split(x, y))
    champion_labels = OnnxClassifier(deployable_onnx).labels(x)
    evidence = gate_evidence(data, y, ("4", deployable_onnx), "digits", "accuracy")
    assert evidence["champion_version"] == "4" and evidence["challenger"] == 1.0
    assert evidence["reference"] == pytest.approx(float(np.mean(champion_labels == y)))
    assert (
        evidence["challenger_only"] == int(np.sum(champion_labels != y)) and evidence["reference_only"] == 0
    )


def test_predictions_from_another_run_are_refused(prepared_digits, tmp_path):
    import pandas as pd

    data = open_prepared(prepared_digits)
    names = [str(label) for label in data.test.y]
    assert (predicted_indices(pd.DataFrame({"predicted": names}), data, tmp_path) == data.test.y).all()
    for wrong in (names[:-1], [*names[:-1], "cat"]):
        with pytest.raises(VisionOpsError, match="is from another run"):
            predicted_indices(pd.DataFrame({"predicted": wrong}), data, tmp_path / "predictions.csv")


def test_find_champion_says_unreachable_or_none(store, monkeypatch, capsys):
    from visionops.stack.processes import free_port

    assert registry.find_champion("no-such-model", store / "a", TrackingParams()) == (True, None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    fast = TrackingParams(retries=1, backoff_factor=0, timeout_s=5)
    assert registry.find_champion("digits", store / "b", fast) == (False, None)
    assert "is unreachable: the champion cannot be compared now" in capsys.readouterr().out
