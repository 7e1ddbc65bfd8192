"""A real `mlflow server` (SQLite store + artifacts folder) on 127.0.0.1 for tests: it needs
~12 s before /health answers, so start() polls; stop() sends SIGTERM to its PID."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from visionops.stack.processes import StackError, answers, wait_until


def start(
    store: Path,
    port: int,
    timeout_s: float = 90.0,
    artifacts: Path | None = None,
    app_name: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """Start the server on `port` over store/mlflow.db and `artifacts` (default store/artifacts),
    as `app_name` (an `mlflow.app` entry point) with `env` added; wait for /health."""
    store.mkdir(parents=True, exist_ok=True)
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}"]
    command += ["--artifacts-destination", str(artifacts or store / "artifacts")]
    command += ["--app-name", app_name] if app_name else []
    log = store / "server.log"
    with open(log, "ab") as out:
        server = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=out, env=os.environ | (env or {})
        )
    try:
        wait_until(answers(f"http://127.0.0.1:{port}/health"), "mlflow server", log, timeout_s, server)
    except StackError:
        stop(server)
        raise
    return server


def stop(server: subprocess.Popen) -> None:
    """SIGTERM, then wait (SIGKILL if it hangs)."""
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
