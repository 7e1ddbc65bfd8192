"""Issue 13 acceptance on the session's default run: the registered champion classifies image
files (`visionops predict`) and answers a base64 PNG when served by `mlflow models serve`."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import requests
from e2e import agreement_with_evaluate, clone_repo, mlflow_rows, pipeline_env, raw_paths, run, unpack_raw
from test_hostile_inputs import BAD_BODIES

from visionops.data.shards import RawImages
from visionops.stack.processes import answers, free_port, wait_until

pytestmark = pytest.mark.e2e

CHAMPION = "models:/visionops-classifier@champion"


@pytest.fixture(scope="module")
def repo(pipeline_template, tmp_path_factory) -> Path:
    return clone_repo(pipeline_template[0], tmp_path_factory.mktemp("use") / "repo")


def test_predict_with_the_champion_agrees_with_evaluate(repo):
    done = run(
        [
            sys.executable,
            "-m",
            "visionops",
            "predict",
            "--model",
            CHAMPION,
            str(unpack_raw(repo, repo.parent / "raw-files", "test") / "test"),
            "--out",
            "p.csv",
        ],
        repo,
    )
    assert "classified" in done.stdout
    assert len(pd.read_csv(repo / "p.csv")) == 360
    # the same images through evaluate (PyTorch on data/prepared): the same answers
    agree, accuracy, majority = agreement_with_evaluate(repo, repo / "p.csv", repo.parent / "raw-files")
    assert agree >= 0.995 and accuracy > majority, (agree, accuracy, majority)


def test_served_champion_answers_a_base64_png(repo):
    port = free_port()
    env = pipeline_env({"MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"})
    command = [sys.executable, "-m", "visionops", "serve", "--model", CHAMPION, "--port", str(port)]
    command += ["--request-log", str(repo.parent / "request-log")]  # issue 35: what it saw, for monitor
    with open(repo / "serve.log", "wb") as log:  # issue 32: the version's files checked, then served
        server = subprocess.Popen(command, cwd=repo, env=env, stdout=log, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(answers(f"{url}/ping"), "visionops serve", repo / "serve.log", 120, server)
        path = raw_paths(repo, "test", "7")[0]
        sample = RawImages(repo / "data/raw").member(path)
        body = {
            "dataframe_split": {
                "columns": ["image"],
                "data": [[base64.b64encode(sample.read()).decode()]],
            }
        }
        answer = requests.post(f"{url}/invocations", json=body, timeout=60)
        assert answer.ok, answer.text
        row = answer.json()["predictions"][0]
        predicted = pd.read_csv(repo / "p.csv", dtype={"label": str}).set_index("path")  # predict's
        assert row["label"] == predicted.loc[str(repo.parent / "raw-files" / path), "label"]
        assert 0 < row["probability"] <= 1 and row["index"] == int(
            predicted.loc[str(repo.parent / "raw-files" / path), "index"]
        )
        # issue 22: MLflow's `inputs` form too, and bad bodies get a short 400 without a trace
        b64 = body["dataframe_split"]["data"][0][0]
        answer = requests.post(f"{url}/invocations", json={"inputs": {"image": [b64]}}, timeout=60)
        assert answer.ok and answer.json()["predictions"][0]["label"] == row["label"], answer.text
        # 60 of the held-out images in one request: with the two single images, 62 records in
        # the request log, which `visionops monitor --requests` reads as its window (the same
        # kind of images as the reference: ok)
        files = sorted((repo.parent / "raw-files" / "test").rglob("*.png"))[::6][:60]
        batch = [[base64.b64encode(f.read_bytes()).decode()] for f in files]
        answer = requests.post(
            f"{url}/invocations", json={"dataframe_split": {"columns": ["image"], "data": batch}}, timeout=60
        )
        assert answer.ok and len(answer.json()["predictions"]) == 60, answer.text
        logged = [
            line
            for f in (repo.parent / "request-log").glob("requests-*.jsonl")
            for line in f.read_text().splitlines()
        ]
        assert len(logged) == 62, len(logged)  # the two single images, then the 60
        monitored = run(
            [
                sys.executable,
                "-m",
                "visionops",
                "monitor",
                "--model",
                CHAMPION,
                "--requests",
                str(repo.parent / "request-log"),
                "--no-track",
                "--out",
                "served.json",
            ],
            repo,
            check=False,
        )
        assert monitored.returncode == 0 and "ok on 62 image(s)" in monitored.stdout, (
            monitored.stdout + monitored.stderr
        )
        served = json.loads((repo / "served.json").read_text())
        assert served["embedding_test"] == "ran"  # the log carries the embedding (issue 35)
        for name, bad in BAD_BODIES.items():
            answer = requests.post(f"{url}/invocations", json=bad, timeout=60)
            assert answer.status_code == 400, (name, answer.text)
            assert "stack_trace" not in answer.json() and "Traceback" not in answer.text, (name, answer.text)
            assert str(repo) not in answer.text and "site-packages" not in answer.text, (name, answer.text)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_monitor_the_champion_ok_on_its_kind_of_images_drift_on_two_classes(repo):
    """Issue 35: the registered version carries its reference; a window like the held-out images
    is `ok` (exit 0); one holding two classes only is `drift` (exit 3); each check is a run of
    the "Model monitoring" experiment tagged with the champion's name and version."""
    import shutil

    test = unpack_raw(repo, repo.parent / "monitor-files", "test") / "test"
    two_classes = repo.parent / "two-classes"
    for label in ("0", "1"):
        shutil.copytree(test / label, two_classes / label)
    command = [sys.executable, "-m", "visionops", "monitor", "--model", CHAMPION, "--no-progress"]
    clean = run([*command, str(test), "--out", "clean.json"], repo, check=False)
    assert clean.returncode == 0, clean.stderr
    assert "Downloading artifacts" not in clean.stderr  # issue 49: --no-progress silences MLflow's bar too
    assert json.loads((repo / "clean.json").read_text())["verdict"] == "ok"
    shifted = run([*command, str(two_classes), "--out", "shifted.json"], repo, check=False)
    report = json.loads((repo / "shifted.json").read_text())
    assert shifted.returncode == 3 and report["verdict"] == "drift", shifted.stdout + shifted.stderr
    # the scheduled workflow's step on the same window: retraining is due, and it says why
    outputs, summary = repo.parent / "github_output", repo.parent / "summary.md"
    run(
        ["scripts/monitor.sh"],
        repo,
        MONITOR_IMAGES=str(two_classes),
        GITHUB_OUTPUT=str(outputs),
        GITHUB_STEP_SUMMARY=str(summary),
    )
    assert outputs.read_text() == "retrain=true\n"
    assert "**drift**" in summary.read_text() and "predicted class shares shifted" in summary.read_text()
    assert any(t["family"] == "predicted_classes" and t["p_adjusted"] <= 0.05 for t in report["tests"])
    version = str(json.loads((repo / "reports/register.json").read_text())["version"])
    tagged = mlflow_rows(
        repo,
        "select t.value, v.value from runs r join experiments e on r.experiment_id = e.experiment_id "
        "join tags t on t.run_uuid = r.run_uuid and t.key = 'monitor.verdict' "
        "join tags v on v.run_uuid = r.run_uuid and v.key = 'model.version' "
        "where e.name = 'Model monitoring' order by r.start_time",
    )
    assert tagged == [("ok", version), ("drift", version), ("drift", version)]
    names = mlflow_rows(  # issue 49: which model looked at what, and when, in the run list
        repo,
        "select r.name from runs r join experiments e on r.experiment_id = e.experiment_id "
        "where e.name = 'Model monitoring' order by r.start_time",
    )
    assert [name.startswith(f"monitor visionops-classifier v{version} 20") for (name,) in names] == [True] * 3
    assert names[0][0].endswith(str(test)) and names[1][0].endswith(str(two_classes))


def test_monitor_reads_a_window_with_foreign_images_and_one_of_nothing_else(repo):
    """Issue 49: held-out digits with 30 % noise images mixed in: the out-of-domain share within
    10 points of 30 %, the estimate of the in-domain images within 5 points of the model's true
    accuracy on the digits (the --labels CSV names them); a window of noise alone is
    `out_of_domain` (exit 5, no retraining, no accuracy estimate), and the scheduled step fails
    after its summary so that a person looks."""
    import shutil

    import numpy as np
    from PIL import Image

    test = unpack_raw(repo, repo.parent / "mixed-files", "test") / "test"
    digits = sorted(path for path in test.rglob("*") if path.is_file())
    mixed, noise = repo.parent / "mixed", repo.parent / "noise"
    rows = ["path,label"]
    for path in digits:
        (mixed / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, mixed / path.parent.name / path.name)
        rows.append(f"{mixed / path.parent.name / path.name},{path.parent.name}")
    (repo.parent / "labels.csv").write_text("\n".join(rows) + "\n")
    rng = np.random.default_rng(0)
    with Image.open(digits[0]) as first:
        grey = first.convert("L")
    noise.mkdir()
    for i in range(round(len(digits) * 3 / 7)):
        pixels = rng.integers(0, 256, (grey.height, grey.width), dtype=np.uint8)
        Image.fromarray(pixels).save(noise / f"noise-{i:03d}.png")
        shutil.copy(noise / f"noise-{i:03d}.png", mixed / f"noise-{i:03d}.png")
    labels = ["--labels", str(repo.parent / "labels.csv")]
    command = [sys.executable, "-m", "visionops", "monitor", "--model", CHAMPION, "--no-progress", *labels]
    done = run([*command, str(mixed), "--out", "mixed.json"], repo, check=False)
    report = json.loads((repo / "mixed.json").read_text())
    share, estimated = report["out_of_domain"], report["accuracy"]["estimated"]
    assert abs(share["value"] - 0.3) <= 0.10, done.stdout
    truth = report["accuracy"]["labelled"]
    assert truth["images"] == len(digits) and estimated["estimable"]
    assert abs(estimated["value"] - truth["value"]) <= 0.05, done.stdout
    assert done.returncode == {"ok": 0, "drift": 3, "degraded": 4, "out_of_domain": 5}[report["verdict"]]
    outputs, summary = repo.parent / "ood_output", repo.parent / "ood_summary.md"
    environment = {"GITHUB_OUTPUT": str(outputs), "GITHUB_STEP_SUMMARY": str(summary)}
    step = run(["scripts/monitor.sh"], repo, check=False, MONITOR_IMAGES=str(noise), **environment)
    report = json.loads((repo / "reports/monitor.json").read_text())
    assert step.returncode == 5 and outputs.read_text() == "retrain=false\n", step.stdout + step.stderr
    assert report["verdict"] == "out_of_domain" and "of the images are out of domain" in report["reasons"][0]
    assert not report["accuracy"]["estimated"]["estimable"] and "A person must look" in summary.read_text()
