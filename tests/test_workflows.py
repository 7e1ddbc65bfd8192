"""The GitHub workflows cannot run here, so check them every way that can: actionlint,
GitHub's workflow schema, that every `run:` command exists in the project, and the retrain
steps (scripts/retrain.sh) run on the session's pipeline run."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from e2e import clone_repo, pipeline_env

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent


def load(name: str) -> dict:
    # PyYAML reads the bare key `on` as True.
    data = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    data["on"] = data.pop(True, data.get("on"))
    return data


def run_steps(workflow: dict) -> list[str]:
    return [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.M))


def test_workflows_exist():
    assert {p.name for p in WORKFLOWS} == {"ci.yml", "monitor.yml", "retrain.yml"}


def test_actionlint_is_clean():
    result = subprocess.run([BIN / "actionlint", *WORKFLOWS], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_match_githubs_schema():
    result = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", *WORKFLOWS],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["ci.yml", "monitor.yml", "retrain.yml"])
def test_every_run_command_exists_in_the_project(name):
    targets = make_targets()
    for script in run_steps(load(name)):
        for line in filter(None, (raw.strip() for raw in script.splitlines())):
            words = shlex.split(line)
            if words[0] == "export" or words[:3] == ["gh", "workflow", "run"]:
                continue
            if words[0] == "make":
                assert set(words[1:]) <= targets, f"{name}: unknown make target in {line!r}"
            elif words[0].startswith("scripts/"):
                assert os.access(ROOT / words[0], os.X_OK), f"{name}: {words[0]} missing or not executable"
            else:
                pytest.fail(f"{name}: unexpected command {line!r}")


def test_ci_runs_the_readmes_test_command_and_retrain_installs_like_make_run():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make run" in readme
    # CI runs the fast lane first, then the slow one: complements, so together `make test`'s pytest
    assert run_steps(load("ci.yml")) == ["make torch-cpu", "make test-fast", "make test-slow"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^FAST_LANE := not e2e and not slow$", makefile, flags=re.M)
    assert re.search(r"^PYTEST := python -m pytest ", makefile, flags=re.M)
    assert re.search(r"^test: .*\n\t\$\(PYTEST\)$", makefile, flags=re.M)
    assert '$(PYTEST) -m "$(FAST_LANE)"' in makefile
    assert '$(PYTEST) -m "not ($(FAST_LANE))"' in makefile
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("make test")
    assert "make install" in run_steps(load("retrain.yml"))
    steps = run_steps(load("retrain.yml"))
    assert steps.index("scripts/install-torch.sh") < steps.index("make install")
    assert re.search(r"^run: install$", (ROOT / "Makefile").read_text(), flags=re.M)


def test_ci_installs_pytorchs_cpu_build_of_the_pinned_versions():
    dry_run = subprocess.run(
        ["make", "-n", "torch-cpu"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    pins = re.findall(r"^(torch(?:vision)?==\S+)$", (ROOT / "constraints.txt").read_text(), flags=re.M)
    assert len(pins) == 2 and all(pin in dry_run.stdout for pin in pins)
    assert "--index-url https://download.pytorch.org/whl/cpu" in dry_run.stdout
    script = (ROOT / "scripts/install-torch.sh").read_text()
    assert "nvidia-smi -L" in script and "make torch-cpu" in script  # GPU runners keep the CUDA build


def test_retrain_triggers_concurrency_and_runner_choice():
    wf = load("retrain.yml")
    paths = set(wf["on"]["push"]["paths"])
    assert {"data/**", "**.dvc", "params.yaml", "dvc.yaml", "pipeline/**", "src/**"} <= paths
    assert set(wf["on"]["workflow_dispatch"]["inputs"]) == {"set_params", "runner"}
    assert (
        wf["concurrency"]["group"].startswith("retrain-") and wf["concurrency"]["cancel-in-progress"] is False
    )
    job = wf["jobs"]["retrain"]
    assert "inputs.runner" in job["runs-on"] and "vars.RETRAIN_RUNNER" in job["runs-on"]
    assert "secrets.MLFLOW_TRACKING_URI" in job["env"]["MLFLOW_TRACKING_URI"]
    assert wf["permissions"] == {"contents": "read"}  # nothing is committed back by default
    assert wf["jobs"]["open-pr"]["if"] == "${{ vars.RETRAIN_OPEN_PR == 'true' }}"


def test_monitor_runs_daily_and_starts_retrain_only_when_due():
    wf = load("monitor.yml")
    assert wf["on"]["schedule"] and "workflow_dispatch" in wf["on"]
    check, retrain = wf["jobs"]["check"], wf["jobs"]["retrain"]
    steps = run_steps({"jobs": {"check": check}})
    assert steps.index("scripts/install-torch.sh") < steps.index("make install-server")  # boto3 for s3://
    assert any("scripts/monitor.sh" in step for step in steps)
    assert check["outputs"]["retrain"] == "${{ steps.check.outputs.retrain }}"
    assert retrain["needs"] == "check" and retrain["if"] == "${{ needs.check.outputs.retrain == 'true' }}"
    assert "gh workflow run retrain.yml" in run_steps({"jobs": {"retrain": retrain}})[0]
    assert wf["permissions"] == {"contents": "read"} and retrain["permissions"] == {"actions": "write"}


def test_registry_summary_cli_explains_the_decision(tmp_path):
    from visionops.__main__ import registry_summary

    record = {
        "model_name": "m",
        "version": 3,
        "aliases": ["candidate"],
        "promoted": False,
        "decision": {
            "reasons": ["f1_macro 0.9000 does not beat champion v2 0.9500 on the same 360 test images"],
            "comparison": {
                "metric": "f1_macro",
                "challenger": 0.9,
                "reference": 0.95,
                "n": 360,
                "challenger_only": 2,
                "reference_only": 20,
                "p_value": 0.99999,
                "champion_version": "2",
            },
        },
    }
    (tmp_path / "r.json").write_text(json.dumps(record))
    text = registry_summary(tmp_path / "r.json")
    assert text.startswith("| on the same 360 test images | this model (v3) | champion v2 |")
    assert (
        "| `f1_macro` | **0.9000** | 0.9500 |" in text
        and "| right where the other is wrong | 2 | 20 |" in text
    )
    assert (
        "| exact McNemar p (one-sided) | 1 | |" in text
        and "**not promoted**" in text
        and "does not beat champion v2" in text
    )
    assert "did not run" in registry_summary(tmp_path / "absent.json")


@pytest.mark.e2e
def test_the_retrain_steps_write_the_summary(pipeline_template, tmp_path):
    """retrain.sh (the job's steps) in a clone of the session's pipeline run: `dvc exp run`
    finds every stage done, and the summary leads with the registry decision and the metrics
    against the committed baseline (a fresh clone's own run is the template's)."""
    repo = clone_repo(pipeline_template[0], tmp_path / "repo")
    # the committed baseline, as in a real checkout: this project's metrics at HEAD; the run's
    # own (what the job compares) are put back after the commit
    ran = {path: path.read_bytes() for path in (repo / "reports" / "metrics").glob("*.json")}
    for path in ran:
        shown = subprocess.run(
            ["git", "show", f"HEAD:reports/metrics/{path.name}"], cwd=ROOT, capture_output=True
        )
        path.write_bytes(shown.stdout)
    subprocess.run(["git", "add", "-f", "reports/metrics"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "baseline"], cwd=repo, env=pipeline_env({}), check=True)
    for path, data in ran.items():
        path.write_bytes(data)
    summary_file = tmp_path / "summary.md"
    env = pipeline_env({"GITHUB_STEP_SUMMARY": str(summary_file), "BASE_REV": "HEAD"})
    result = subprocess.run(["scripts/retrain.sh"], cwd=repo, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = summary_file.read_text().strip().splitlines()
    first_table = next(line for line in summary if line.startswith("|"))
    assert "this model (v1)" in first_table and "trivial baseline" in first_table
    assert any("**promoted to champion**" in line for line in summary)
    metrics = summary.index("### Metrics (vs `HEAD`)")
    assert "| reports/metrics/evaluate.json" in "\n".join(summary[metrics:])
    assert "| reports/evaluate.json" not in "\n".join(summary)  # details are not metrics
    assert len(summary) <= 40, "\n".join(summary)
    assert "skipping dvc pull/push" in result.stdout


def test_ci_local_needs_a_venv_and_says_so(tmp_path):
    """scripts/ci-local.sh (retrain.sh on a fresh clone, by hand) refuses a missing venv."""
    env = pipeline_env({"VENV": str(tmp_path / "no-venv")})
    result = subprocess.run([ROOT / "scripts" / "ci-local.sh"], env=env, capture_output=True, text=True)
    assert result.returncode == 2 and "no venv at" in result.stderr
