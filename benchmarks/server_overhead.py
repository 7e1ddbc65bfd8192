"""What the team's server costs: the default pipeline (`dvc repro` on a fresh clone of HEAD)
against the project's SQLite store and against the team stack (PostgreSQL + S3 + mlflow
server with logins, started here by scripts/team_stack.py), in the same invocation; then
`dvc push` of that run and a fresh clone's `dvc pull` of it. Prints seconds and the
server/SQLite ratio (goal <= 1.15). Usage:
    python benchmarks/server_overhead.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from visionops.stack.team import dvc_remote_commands, free_stack_ports, port_flags

ROOT = Path(__file__).resolve().parents[1]


def sh(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Run a command; return its wall time in seconds (fails loudly)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "MLFLOW_REGISTRY"))}
    clean["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{clean['PATH']}"
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=clean | (env or {}), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{cmd} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=1, help="pipeline runs per store (best is kept)")
    args = parser.parse_args()
    stack = [sys.executable, str(ROOT / "scripts" / "team_stack.py")]
    with tempfile.TemporaryDirectory(prefix="visionops-server-bench-") as tmp:
        work, ports = Path(tmp), free_stack_ports()
        state = work / ".server"
        port_args = port_flags(ports)
        started = sh([*stack, "start", "--dir", str(state), *port_args], ROOT)
        try:
            key = state / "keys/dvc.credentials"  # the team's DVC key, as `start` prints it
            team = {  # the admin's login on top of what a teammate exports
                name: value
                for file in ("team.env", "admin.env")
                for name, value in (
                    line.removeprefix("export ").split("=", 1)
                    for line in (state / file).read_text().splitlines()
                )
            }
            times: dict[str, list[float]] = {"sqlite": [], "server": []}
            for repeat in range(args.repeats):
                for store in ("sqlite", "server"):  # alternate, so background load hits both
                    clone = work / f"{store}-{repeat}"
                    sh(["git", "clone", "-q", str(ROOT), str(clone)], ROOT)
                    env = team if store == "server" else {}
                    times[store].append(sh(["dvc", "repro"], clone, env))
                    print(f"{store} run {repeat + 1}: {times[store][-1]:.1f} s", flush=True)
            source = work / "server-0"
            for line in dvc_remote_commands(ports, key):
                sh(line.split(), source)
            sh(["git", "add", "-A"], source)
            sh(["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "baseline"], source)
            pushed = sh(["dvc", "push"], source)
            teammate = work / "teammate"
            sh(["git", "clone", "-q", str(source), str(teammate)], ROOT)
            for line in dvc_remote_commands(ports, key)[2:]:
                sh(line.split(), teammate)
            pulled = sh(["dvc", "pull"], teammate)
            files = sum(1 for p in (teammate / "data").rglob("*") if p.is_file())
        finally:
            sh([*stack, "stop", "--purge", "--dir", str(state)], ROOT)
    sqlite, server = min(times["sqlite"]), min(times["server"])
    print("\n| what | seconds |\n|---|---:|")
    print(f"| team stack start (PostgreSQL, S3, mlflow server) | {started:.1f} |")
    print(f"| `dvc repro`, default pipeline, SQLite store (best of {args.repeats}) | {sqlite:.1f} |")
    print(f"| `dvc repro`, default pipeline, team server (best of {args.repeats}) | {server:.1f} |")
    print(f"| `dvc push` of that run to the S3 remote | {pushed:.1f} |")
    print(f"| fresh clone's `dvc pull` ({files} files under data/) | {pulled:.1f} |")
    print(f"\nserver / SQLite: {server / sqlite:.2f}x (goal <= 1.15)")


if __name__ == "__main__":
    main()
