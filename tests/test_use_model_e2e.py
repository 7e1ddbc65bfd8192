"""Issue 13 acceptance on the session's default run: the registered champion classifies image
files (`visionops predict`) and answers a base64 PNG when served by `mlflow models serve`."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import requests
from e2e import agreement_with_evaluate, clone_repo, pipeline_env, raw_paths, run, unpack_raw
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
        for name, bad in BAD_BODIES.items():
            answer = requests.post(f"{url}/invocations", json=bad, timeout=60)
            assert answer.status_code == 400, (name, answer.text)
            assert "stack_trace" not in answer.json() and "Traceback" not in answer.text, (name, answer.text)
            assert str(repo) not in answer.text and "site-packages" not in answer.text, (name, answer.text)
    finally:
        server.terminate()
        server.wait(timeout=30)
