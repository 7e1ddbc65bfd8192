"""A real `mlflow server` (SQLite store + artifacts folder) on 127.0.0.1 for tests: it needs
~12 s before /health answers, so start() polls; stop() sends SIGTERM to its PID."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(store: Path, port: int, timeout_s: float = 90.0, artifacts: Path | None = None) -> subprocess.Popen:
    """Start the server on `port` over store/mlflow.db and `artifacts` (default store/artifacts);
    wait for /health."""
    store.mkdir(parents=True, exist_ok=True)
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}"]
    command += ["--artifacts-destination", str(artifacts or store / "artifacts")]
    with open(store / "server.log", "ab") as log:
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {(store / 'server.log').read_text()[-2000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    stop(server)
    raise RuntimeError(f"mlflow server on port {port} did not answer /health in {timeout_s} s")


def stop(server: subprocess.Popen) -> None:
    """SIGTERM, then wait (SIGKILL if it hangs)."""
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
