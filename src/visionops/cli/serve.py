"""`visionops serve`: answer HTTP requests with a registered model, through MLflow's own scoring
server (`mlflow models serve`, the same REST API), after checking every file of the version
against the hashes recorded when it was registered. A version whose files changed since is
refused before any of its code is loaded; the server runs the checked local copy, so nothing
replaced afterwards is served either.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True, help="a registered version: models:/NAME@ALIAS or models:/NAME/N"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=5001, help="port (default: %(default)s)")
    parser.add_argument(
        "--workers", type=int, default=1, help="scoring server workers (default: %(default)s)"
    )
    parser.add_argument(
        "--request-log",
        type=Path,
        default=None,
        help="append each image's probabilities, embedding and statistics to FOLDER/requests-*.jsonl, for "
        "`visionops monitor --requests FOLDER` (the same as VISIONOPS_REQUEST_LOG=FOLDER)",
    )


def run(args: argparse.Namespace) -> int:
    """Check, then serve until interrupted; MLflow's exit status."""
    from visionops.monitoring.request_log import check_folder
    from visionops.tracking.version_files import fetch_announced

    log = check_folder(args.request_log) if args.request_log is not None else None  # before any work
    with tempfile.TemporaryDirectory(prefix="visionops-serve-") as tmp:
        # serving runs the version's own Python code: only a version whose every file is sealed
        local = fetch_announced(args.model, Path(tmp), "serve", onnx_only_ok=False).local
        print(f"serve: {args.model}: every file matches its registration; serving on {args.host}:{args.port}")
        command = [
            str(Path(sys.executable).with_name("mlflow")),
            "models",
            "serve",
            "-m",
            str(local),
            "--env-manager",
            "local",
            "-h",
            args.host,
            "-p",
            str(args.port),
            "-w",
            str(args.workers),
        ]
        env = dict(os.environ)
        if log is not None:
            env["VISIONOPS_REQUEST_LOG"] = str(log)  # read by serving/pyfunc_model.py
        server = subprocess.Popen(command, env=env)
        signal.signal(signal.SIGTERM, lambda *_: server.terminate())  # stop it too, then clean up
        try:
            return server.wait()
        except KeyboardInterrupt:  # the terminal sent SIGINT to both: let it finish
            server.wait()
            return 130
