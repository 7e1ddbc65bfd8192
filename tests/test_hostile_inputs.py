"""Issue 22: nothing wrong reaches the registry, nothing a user owns is overwritten, and a bad
request or file is a short message. The fast half: `visionops predict`'s output rules, the
chain of custody on real ONNX files, the model-name rule, and MLflow's own scoring function
on the pyfunc model (the served path is tested in test_use_model_e2e)."""

from __future__ import annotations

import base64
import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from visionops.__main__ import main as visionops
from visionops.config import validate_section
from visionops.errors import VisionOpsError
from visionops.gate.custody import Report, verify_chain
from visionops.io import file_sha256


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0]).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def photos(digits_arrays, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(5):
        (folder / f"{i}.png").write_bytes(png(digits_arrays["test_x"][i]))
    return folder


def predict(*args: str) -> int:
    return visionops(["predict", *args, "--no-progress"])


# --- predict never loses a user's file -----------------------------------------------------


def test_predict_refuses_an_out_that_is_one_of_its_input_images(deployable_onnx, photos, capsys):
    victim = photos / "0.png"
    before = victim.read_bytes()
    assert predict("--model", str(deployable_onnx), str(photos), "--out", str(victim)) == 1
    err = capsys.readouterr().err
    assert "one of the input images" in err and "fix:" in err and "Traceback" not in err
    assert victim.read_bytes() == before


def test_predict_refuses_an_out_that_is_its_own_model(deployable_onnx, photos, tmp_path, capsys):
    """Issue 32: `--model m.onnx ... --out m.onnx` replaced the model with a 69-byte CSV."""
    model = tmp_path / "m.onnx"
    shutil.copy(deployable_onnx, model)
    before = model.read_bytes()
    assert predict("--model", str(model), str(photos), "--out", str(model)) == 1
    assert "is the model" in capsys.readouterr().err and model.read_bytes() == before
    assert predict("--model", str(model), str(photos), "--out", str(tmp_path / "other.onnx")) == 1
    assert "a model file name" in capsys.readouterr().err and not (tmp_path / "other.onnx").exists()


def test_predict_into_a_folder_it_cannot_write_is_a_message_before_any_work(deployable_onnx, photos, capsys):
    """Issue 32: `--out /proc/o.csv` was a raw FileNotFoundError after classifying everything."""
    assert predict("--model", str(deployable_onnx), str(photos), "--out", "/proc/o.csv") == 1
    err = capsys.readouterr().err
    assert "cannot be written: /proc is not a writable folder" in err and "Traceback" not in err


@pytest.mark.parametrize("victim", ["params.yaml", "dvc.yaml", ".dvc/config", "data/raw/index.csv", "notes"])
def test_predict_replaces_only_its_own_earlier_csv(deployable_onnx, photos, tmp_path, capsys, victim):
    """Issue 47 row 7: `--out params.yaml` (or dvc.yaml, .dvc/config, index.csv) exited 0 and
    replaced the file with a CSV. An existing --out is replaced only when predict wrote it, or
    with --force."""
    target = tmp_path / victim
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        "path,split,label\ntrain/0/a.png,train,0\n" if victim.endswith(".csv") else "train:\n  lr: 1\n"
    )
    before = target.read_bytes()
    assert predict("--model", str(deployable_onnx), str(photos), "--out", str(target)) == 1
    err = capsys.readouterr().err
    assert "exists and is not a CSV that predict wrote" in err and "--force" in err, err
    assert target.read_bytes() == before
    assert predict("--model", str(deployable_onnx), str(photos), "--out", str(target), "--force") == 0
    assert pd.read_csv(target).shape[0] == 5


def test_predict_replaces_its_own_csv_and_caps_top_k_at_the_class_count(
    deployable_onnx, photos, tmp_path, capsys
):
    out = tmp_path / "p.csv"
    assert predict("--model", str(deployable_onnx), str(photos), "--out", str(out), "--top-k", "3") == 0
    assert predict("--model", str(deployable_onnx), str(photos), "--out", str(out), "--top-k", "50") == 0
    assert "--top-k 50 is more than the model's 10 classes: writing all 10" in capsys.readouterr().out
    written = pd.read_csv(out)
    assert list(written.columns)[-2:] == ["label_10", "probability_10"] and written.notna().all().all()


def test_predict_into_a_folder_writes_predictions_csv_inside(deployable_onnx, photos, tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    assert predict("--model", str(deployable_onnx), str(photos), "--out", str(out)) == 0
    assert len(pd.read_csv(out / "predictions.csv")) == 5


def test_a_run_that_classifies_nothing_keeps_the_previous_csv(deployable_onnx, tmp_path, capsys):
    out = tmp_path / "preds.csv"
    previous = pd.DataFrame(
        {"path": [f"{i}.png" for i in range(5000)], "label": "1", "index": 1, "probability": 0.9}
    )
    previous.to_csv(out, index=False)
    before = out.read_bytes()
    typo = tmp_path / "photoz"
    typo.mkdir()
    (typo / "x.png").write_bytes(b"not a picture")
    assert predict("--model", str(deployable_onnx), str(typo), "--out", str(out)) == 1
    assert out.read_bytes() == before
    assert "left as it was" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"this is text, not a model", b""], ids=["text", "empty-protobuf"])
def test_predict_with_a_broken_onnx_is_a_message(content, photos, tmp_path, capsys):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(content)
    assert predict("--model", str(bad), str(photos), "--out", str(tmp_path / "p.csv")) == 1
    err = capsys.readouterr().err
    assert "is not a loadable ONNX model" in err and "fix:" in err and "Traceback" not in err


def test_predict_with_a_damaged_mlflow_db_names_it(photos, tmp_path, monkeypatch, capsys):
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"SQLite format 3\0" + b"\xde\xad" * 4000)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    assert predict("--model", "models:/m@champion", str(photos), "--out", str(tmp_path / "p.csv")) == 1
    err = capsys.readouterr().err
    assert "not a readable SQLite database" in err and "fix:" in err and "Traceback" not in err


# --- the chain of custody ------------------------------------------------------------------


@pytest.fixture
def chain(deployable_onnx, tmp_path):
    """run/eval/export records that agree, for a real ONNX file and a predictions CSV."""
    onnx = tmp_path / "model.onnx"
    shutil.copy(deployable_onnx, onnx)
    predictions = tmp_path / "predictions.csv"
    predictions.write_text("actual,predicted\n1,1\n")
    model = "a" * 64
    run = Report(tmp_path / "run.json", {"run_id": "r", "model_sha256": model})
    evaluation = Report(
        tmp_path / "evaluate.json", {"model_sha256": model, "predictions_sha256": file_sha256(predictions)}
    )
    export = Report(tmp_path / "export.json", {"model_sha256": model, "onnx_sha256": file_sha256(onnx)})
    return run, evaluation, export, onnx, predictions


def test_an_intact_chain_gives_the_hashes_as_tags(chain):
    tags = verify_chain(*chain)
    assert tags == {"model.sha256": "a" * 64, "onnx.sha256": file_sha256(chain[3])}


def test_a_truncated_onnx_is_refused_naming_the_file(chain):
    onnx = chain[3]
    onnx.write_bytes(onnx.read_bytes()[:5000])
    with pytest.raises(VisionOpsError, match=r"is not the file .*export.json was made from") as caught:
        verify_chain(*chain)
    assert "dvc repro" in caught.value.fix


def test_an_onnx_that_matches_its_record_but_does_not_load_is_refused(chain):
    run, evaluation, export, onnx, predictions = chain
    onnx.write_bytes(onnx.read_bytes()[:5000])
    export = Report(export.path, export.data | {"onnx_sha256": file_sha256(onnx)})
    with pytest.raises(VisionOpsError, match="is not a loadable ONNX model"):
        verify_chain(run, evaluation, export, onnx, predictions)


def test_an_evaluation_of_another_model_is_refused(chain):
    run, evaluation, export, onnx, predictions = chain
    other = Report(evaluation.path, evaluation.data | {"model_sha256": "b" * 64})
    with pytest.raises(VisionOpsError, match=r"evaluate.json describes model bbbbbbbbbbbb"):
        verify_chain(run, other, export, onnx, predictions)


def test_predictions_changed_after_evaluate_are_refused(chain):
    chain[4].write_text("actual,predicted\n1,2\n")
    with pytest.raises(VisionOpsError, match=r"predictions.csv is not the file"):
        verify_chain(*chain)


def test_records_from_an_older_visionops_are_refused_with_the_fix(chain):
    run, evaluation, export, onnx, predictions = chain
    with pytest.raises(VisionOpsError, match="does not record `model_sha256`") as caught:
        verify_chain(Report(run.path, {"run_id": "r"}), evaluation, export, onnx, predictions)
    assert "dvc repro" in caught.value.fix


# --- register.model_name follows MLflow's rules, checked with the params -------------------


@pytest.mark.parametrize("name", ["a:b", "a/../b", ".", "..x", " padded", "a@b", ""])
def test_a_model_name_mlflow_would_refuse_is_refused_with_the_params(name):
    from mlflow.utils.validation import _validate_model_name

    with pytest.raises(VisionOpsError) as caught:
        validate_section("register", {"model_name": name})
    assert "register.model_name" in str(caught.value) and "without '/', ':' or '@'" in caught.value.fix
    if "@" not in name and name.strip() == name:  # '@' and padding: our stricter rules
        with pytest.raises(Exception, match=r"(?i)name"):
            _validate_model_name(name)


def test_ordinary_model_names_pass():
    for name in ("visionops-classifier", "team.cats v2", "x_1"):
        assert validate_section("register", {"model_name": name}).model_name == name


# --- the pyfunc model through MLflow's own scoring function --------------------------------


@pytest.fixture(scope="module")
def served(deployable_onnx, digits_arrays, tmp_path_factory):
    """The pyfunc image model as `mlflow models serve` loads it: saved, loaded back."""
    import mlflow

    from visionops.serving.packaging import pyfunc_spec

    spec = pyfunc_spec(digits_arrays["test_x"][0])
    path = tmp_path_factory.mktemp("pyfunc") / "model"
    mlflow.pyfunc.save_model(
        path,
        python_model=spec["python_model"],
        artifacts={"onnx": str(deployable_onnx)},
        code_paths=spec["code_paths"],
        signature=mlflow.models.infer_signature(pd.DataFrame({"image": [b"x"]})),
        pip_requirements=spec["pip_requirements"],
    )
    return mlflow.pyfunc.load_model(str(path))


def invoke(model, body: dict) -> tuple[int, dict]:
    """(status, JSON body) as the scoring server answers a JSON request."""
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server

    try:
        answer = scoring_server.invocations(
            json.dumps(body), "application/json", model, model.metadata.get_input_schema()
        )
    except MlflowException as exc:
        return exc.get_http_status_code(), json.loads(exc.serialize_as_json())
    return answer.status, json.loads(answer.response)


def split(*values: str) -> dict:
    return {"dataframe_split": {"columns": ["image"], "data": [[v] for v in values]}}


def bomb() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (12_000, 10_000)).save(buffer, format="PNG")  # 120 MP of zeros, ~100 kB
    return buffer.getvalue()


BAD_BODIES = {
    "text file": split(base64.b64encode(b"just some text").decode()),
    "no rows": split(),
    "not base64": split("%%% not base64 %%%"),
    "pixel bomb": split(base64.b64encode(bomb()).decode()),
    "no image column": {"dataframe_split": {"columns": ["photo"], "data": [["x"]]}},
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_bad_requests_get_a_short_400_without_a_stack_trace(served, name):
    status, body = invoke(served, BAD_BODIES[name])
    assert status == 400, body
    text = json.dumps(body)
    assert "stack_trace" not in body and "Traceback" not in text and "/visionops/" not in text, text
    ours = name in ("text file", "pixel bomb", "no rows")  # the others fail MLflow's own schema check
    assert len(body["message"]) < 2000 and (not ours or "image" in body["message"]), body


@pytest.mark.parametrize(
    "form",
    [
        lambda b: split(b),
        lambda b: {"dataframe_records": [{"image": b}]},
        lambda b: {"inputs": {"image": [b]}},
        lambda b: {"inputs": [{"image": b}]},
    ],
    ids=["dataframe_split", "dataframe_records", "inputs-columns", "inputs-records"],
)
def test_a_valid_image_is_answered_in_every_documented_request_form(served, digits_arrays, form):
    from visionops.export.classifier import OnnxClassifier

    image = digits_arrays["test_x"][7]
    status, body = invoke(served, form(base64.b64encode(png(image)).decode()))
    assert status == 200, body
    onnx = OnnxClassifier(served.unwrap_python_model().model.path)
    assert body["predictions"][0]["index"] == int(onnx.probabilities(image[None]).argmax())


# --- the remaining tracebacks: each a cause and a fix ---------------------------------------


@pytest.mark.parametrize("content", ['{"decision": ', '{"model_name": "m"}', "[1, 2]"])
def test_registry_summary_of_a_damaged_report_says_how_to_restore_it(content, tmp_path):
    from visionops.__main__ import registry_summary

    report = tmp_path / "register.json"
    report.write_text(content)
    text = registry_summary(report)
    assert "is damaged" in text and "dvc repro register" in text


@pytest.mark.parametrize(
    "entry",
    [
        {"stage": "evaluate", "record": {}, "files": 5, "values": {}},
        {"stage": "evaluate", "record": {}, "files": {"report": "../../etc/passwd"}, "values": {}},
        {"stage": 3, "record": {}, "files": {}, "values": {}},
        {"stage": "evaluate", "record": {}, "files": {}, "values": {"metrics": {"acc": "high"}}},
        {"stage": "evaluate", "record": {}, "files": {}, "values": {"params": {}, "extra": 1}},
        [],
    ],
)
def test_a_well_formed_but_wrongly_typed_journal_entry_is_named(entry, tmp_path):
    from visionops.tracking import journal

    folder = journal.journal_dir(tmp_path) / "pending" / "20260101T000000-1-evaluate-x"
    folder.mkdir(parents=True)
    (folder / "entry.json").write_text(json.dumps(entry))
    with pytest.raises(VisionOpsError, match="is unreadable") as caught:
        journal.entries(tmp_path)
    assert str(folder) in str(caught.value) and "move" in caught.value.fix


def test_a_manifest_with_a_torn_row_is_named_not_a_type_error(tmp_path):
    from visionops.augment.prepare import usable_files

    manifest = tmp_path / "manifest.csv"
    header = "path,split,label,file_sha256,decode_ok,quarantined\n"
    manifest.write_text(header + "a.png,train,0,aa,True,False\nb.png,test,1,bb,Tr")
    frame = pd.read_csv(manifest)
    with pytest.raises(VisionOpsError, match=r"manifest.csv is damaged or truncated"):
        usable_files(frame, ["0", "1"], manifest)
    whole = pd.read_csv(io.StringIO(header + "a.png,train,1,aa,True,False\n"))
    assert usable_files(whole, ["0", "1"], manifest)["label"].tolist() == [1]


WORKER_POOL = """
import os, signal, sys, time, multiprocessing as mp
from visionops.interrupts import handle_sigterm, quiet_forked_workers
signal.signal(signal.SIGTERM, handle_sigterm)
if sys.argv[1] == "quiet":
    quiet_forked_workers()
def work(x):
    time.sleep(30)
pool = mp.get_context("fork").Pool(2)
pool.map_async(work, range(2))
time.sleep(1)
for child in mp.active_children():
    os.kill(child.pid, signal.SIGTERM)  # what a stage's process group gets on SIGTERM
time.sleep(1)
pool.terminate()
print("parent done")
"""


def test_forked_workers_die_quietly_and_leave_the_shutdown_to_the_stage():
    import os
    import signal
    import subprocess
    import sys

    def run(mode: str) -> tuple[str, str]:
        """(stdout, stderr); a run still going after 30 s is killed with its workers: the old
        behaviour may also hang, when a worker dies holding the pool's queue lock."""
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER_POOL, mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            return proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            return proc.communicate()

    _, inherited = run("inherited")  # the old behaviour: each worker raises KeyboardInterrupt
    assert "Traceback" in inherited and "KeyboardInterrupt" in inherited
    said, quiet = run("quiet")
    assert "parent done" in said and "Traceback" not in quiet, quiet
