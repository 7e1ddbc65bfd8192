"""What the request log costs the served model: `visionops serve` of a registered version with
and without `--request-log`, 4 client threads each posting one image per request. Prints the
p50/p99 latency of each, their ratio (the target: p99 with the log <= 1.10x without), and
whether every answered image left exactly one record (the target: none lost).

Runs against the project's store (after `make run`: models:/visionops-classifier@champion) and
its test images (data/raw). Off and on alternate `--rounds` times; the best p99 of each counts.

    python benchmarks/request_log_overhead.py --requests 300 --rounds 2
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

from visionops.data.shards import RawImages
from visionops.stack.processes import answers, free_port, stop_group, wait_until

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = 4


def bodies(count: int) -> list[dict]:
    """`count` single-image requests from the project's test images (cycled)."""
    raw = RawImages(ROOT / "data" / "raw")
    tests = [entry for entry in raw if entry.split == "test"]
    images = [base64.b64encode(raw.member(entry.path).read()).decode() for entry in tests[:count]]
    return [
        {"dataframe_split": {"columns": ["image"], "data": [[images[i % len(images)]]]}} for i in range(count)
    ]


def serve(model: str, port: int, log_dir: Path | None, out: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "visionops", "serve", "--model", model, "--port", str(port)]
    if log_dir is not None:
        command += ["--request-log", str(log_dir)]
    with open(out, "wb") as log:
        server = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log, start_new_session=True)
    wait_until(answers(f"http://127.0.0.1:{port}/ping"), "visionops serve", out, 180, server)
    return server


def load(url: str, payloads: list[dict]) -> np.ndarray:
    """Latencies (ms) of every request, sent by CLIENTS threads at once."""
    session_for = {}

    def one(body: dict) -> float:
        import threading

        session = session_for.setdefault(threading.get_ident(), requests.Session())
        start = time.perf_counter()
        answer = session.post(f"{url}/invocations", json=body, timeout=60)
        answer.raise_for_status()
        return 1000 * (time.perf_counter() - start)

    with ThreadPoolExecutor(CLIENTS) as pool:
        return np.asarray(list(pool.map(one, payloads)))


def round_trip(model: str, payloads: list[dict], log_dir: Path | None, work: Path) -> dict:
    port = free_port()
    server = serve(model, port, log_dir, work / f"serve-{port}.log")
    try:
        load(f"http://127.0.0.1:{port}", payloads[:20])  # warm-up, not timed
        latencies = load(f"http://127.0.0.1:{port}", payloads)
    finally:
        stop_group(server.pid)
    result = {"p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99))}
    if log_dir is not None:
        lines = [
            (f.name.split(".")[0], json.loads(line)["seq"])  # (process, seq): one record's identity
            for f in log_dir.glob("requests-*.jsonl*")
            for line in f.read_text().splitlines()
        ]
        unique = set(lines)
        result["records"], result["expected"] = len(unique), len(payloads) + 20
        result["duplicated"] = len(lines) - len(unique)  # records written more than once
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models:/visionops-classifier@champion")
    parser.add_argument("--requests", type=int, default=300, help="requests per measurement")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{ROOT / 'mlflow.db'}")
    payloads = bodies(args.requests)
    best: dict[str, dict] = {}
    rounds: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="visionops-reqlog-") as tmp:
        work = Path(tmp)
        for n in range(args.rounds):
            for name in ("off", "on"):
                log_dir = work / f"log-{n}" if name == "on" else None
                result = round_trip(args.model, payloads, log_dir, work)
                print(name, result, flush=True)
                rounds.append(result)
                if name not in best or result["p99_ms"] < best[name]["p99_ms"]:
                    best[name] = result
    on, off = best["on"], best["off"]
    print("\n| request log | p50 ms | p99 ms | records / answered |\n|---|---|---|---|")
    print(f"| off | {off['p50_ms']:.1f} | {off['p99_ms']:.1f} | |")
    print(f"| on | {on['p50_ms']:.1f} | {on['p99_ms']:.1f} | {on['records']} / {on['expected']} |")
    lost = on["expected"] - on["records"]
    duplicated = sum(result.get("duplicated", 0) for result in rounds)
    print(
        f"p99 ratio (on / off): {on['p99_ms'] / off['p99_ms']:.2f}; lost records: {lost}; "
        f"duplicated in any round: {duplicated}"
    )


if __name__ == "__main__":
    main()
