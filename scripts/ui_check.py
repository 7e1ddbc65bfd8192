"""Check the MLflow UI in a real browser: start `mlflow ui` on the project's store, open the
experiment page in headless Chromium, and check that it opens on the training runs (not the
GenAI overview), that the runs table shows every run with its source, and that a run's page
shows its git commit (MLflow's `mlflow.source.*` tags). Writes screenshots and the rendered
pages to --out (not to git).

Usage (after `make run`, from the project root):
    python scripts/ui_check.py --out ui-check
Debian's `chromium` is installed with apt-get when no Chromium is found.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import requests

from visionops.stack.processes import StackError, answers, free_port, wait_until

ROOT = Path(__file__).resolve().parents[1]
MAX_RUN_PAGES = 5  # run pages opened to check the commit (each takes a browser start)


def chromium() -> str:
    """A Chromium binary, installing Debian's package when none is on PATH."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    print("ui-check: no Chromium found; installing Debian's chromium with apt-get", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "chromium"], check=True, env=env)
    return shutil.which("chromium") or sys.exit("ui-check: apt-get installed chromium, but it is not on PATH")


def start_ui(store: Path, artifacts: Path, port: int, log: Path) -> subprocess.Popen:
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow), "ui", "--backend-store-uri", f"sqlite:///{store}", "--default-artifact-root"]
    command += [str(artifacts), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    try:
        wait_until(answers(f"http://127.0.0.1:{port}/health"), "mlflow ui", log, 120, server)
    except StackError as exc:
        server.terminate()
        sys.exit(f"ui-check: {exc}")
    return server


def expected_runs(api: str, experiment: str) -> tuple[str, list[dict]]:
    """(experiment id, runs with their names and commits), through the REST API."""
    found = requests.get(f"{api}/experiments/get-by-name", params={"experiment_name": experiment}, timeout=10)
    if not found.ok:
        sys.exit(f"ui-check: no experiment '{experiment}' in the store: run `make run` first")
    info = found.json()["experiment"]
    runs = requests.post(f"{api}/runs/search", json={"experiment_ids": [info["experiment_id"]]}, timeout=10)
    rows = []
    for run in runs.json().get("runs", []):
        tags = {t["key"]: t["value"] for t in run["data"].get("tags", [])}
        rows.append(
            {
                "id": run["info"]["run_id"],
                "name": run["info"]["run_name"],
                "source": Path(tags.get("mlflow.source.name", "")).name,
                "commit": tags.get("mlflow.source.git.commit", ""),
            }
        )
    kind = {t["key"]: t["value"] for t in info.get("tags", [])}.get("mlflow.experimentKind")
    if kind != "custom_model_development":
        sys.exit(f"ui-check: experiment tag mlflow.experimentKind is {kind!r}, not custom_model_development")
    return info["experiment_id"], rows


def page_url(port: int, path: str) -> str:
    """A UI page as `make ui` prints it. MLflow 3.17's UI ignores the experiment's kind tag
    while its GenAI/Model-training switch exists (default GenAI, kept in the browser): the
    `workflowType` parameter is what opens it on the training runs."""
    return f"http://127.0.0.1:{port}/#/{path}?workflowType=machine_learning"


def render(browser: str, url: str, out: Path, name: str) -> str:
    """The page's DOM after its scripts ran, and a screenshot of it (out/name.png)."""
    flags = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--window-size=2600,1000",
    ]
    flags += ["--virtual-time-budget=30000", f"--user-data-dir={out / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=180, check=True)
    subprocess.run(
        [*flags, f"--screenshot={out / name}.png", url], capture_output=True, timeout=180, check=True
    )
    (out / f"{name}.html").write_text(dom.stdout)
    return dom.stdout


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--store", type=Path, default=ROOT / "mlflow.db", help="SQLite store (default: %(default)s)"
    )
    parser.add_argument("--experiment", default="visionops")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "ui-check", help="screenshot and page (default: %(default)s)"
    )
    args = parser.parse_args()
    if not args.store.is_file():
        sys.exit(f"ui-check: {args.store} does not exist: run `make run` first")
    args.out.mkdir(parents=True, exist_ok=True)
    browser = chromium()
    port = free_port()
    server = start_ui(
        args.store.resolve(), args.store.resolve().parent / "mlartifacts", port, args.out / "ui.log"
    )
    try:
        experiment, runs = expected_runs(f"http://127.0.0.1:{port}/api/2.0/mlflow", args.experiment)
        table = render(browser, page_url(port, f"experiments/{experiment}"), args.out, "experiment")
        problems = [
            f"run {r['name']} (source {r['source']}) not in the runs table"
            for r in runs
            if r["name"] not in table or r["source"] not in table
        ]
        for r in runs[:MAX_RUN_PAGES]:
            run_page = render(
                browser, page_url(port, f"experiments/{experiment}/runs/{r['id']}"), args.out, r["id"]
            )
            if not r["commit"] or r["commit"][:7] not in run_page:
                problems.append(
                    f"run {r['name']}: commit {r['commit'][:7] or '(none tagged)'} not on its page"
                )
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"ui-check: {len(runs)} run(s) in the store; screenshots in {args.out}")
    if not runs or problems:
        print("ui-check: FAILED: " + ("; ".join(problems) or "no runs in the experiment"))
        return 1
    print("ui-check: passed (the runs table opens on the training runs, each run page shows its commit)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
