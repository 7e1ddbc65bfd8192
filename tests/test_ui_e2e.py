"""Issue 16: the MLflow UI, in a real headless Chromium, opens the experiment on its training
runs and shows each run with its git commit (scripts/ui_check.py). Skipped where no Chromium
is installed (the script itself installs Debian's package; a test should not)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from e2e import ROOT, clone_repo, pipeline_env

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")),
        reason="no Chromium here (scripts/ui_check.py installs Debian's `chromium` when run by hand)",
    ),
]


def test_mlflow_ui_shows_the_runs_and_their_commit(pipeline_template, tmp_path):
    repo = clone_repo(pipeline_template[0], tmp_path / "repo")
    out = tmp_path / "ui-check"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "ui_check.py"),
            "--store",
            str(repo / "mlflow.db"),
            "--out",
            str(out),
        ],
        env=pipeline_env({}),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "ui-check: passed" in done.stdout and (out / "experiment.png").stat().st_size > 10_000
