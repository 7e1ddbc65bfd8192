"""The url source on the real CIFAR-10 JPEG archive (60,000 files), served over http on
127.0.0.1: cold (download + verify + safe extract + copy) vs warm cache (no download).
Prints times and the warm/cold ratio. Usage:
    python benchmarks/download_speed.py --archive ../shared/datasets/cifar10_jpg.tar.gz
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import visionops  # noqa: F401  (process hygiene)


def serve(folder: Path) -> tuple[subprocess.Popen, int]:
    """`python -m http.server` on a free port of 127.0.0.1, once it answers; returns (process, port)."""
    from visionops.stack.processes import answers, free_port, wait_until

    port = free_port()
    log = folder.with_name("http-server.log")
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d", str(folder)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_until(answers(f"http://127.0.0.1:{port}/"), "http.server", log, 30, server)
    return server, port


def main() -> None:
    from visionops.config import DataParams
    from visionops.data.sources import materialize

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--archive", type=Path, required=True, help="a class-folder .tar.gz")
    args = parser.parse_args()
    digest = hashlib.sha256(args.archive.read_bytes()).hexdigest()
    server, port = serve(args.archive.resolve().parent)
    try:
        with tempfile.TemporaryDirectory(prefix="visionops-download-bench-") as tmp:
            cfg = DataParams(
                source="url",
                url=f"http://127.0.0.1:{port}/{args.archive.name}",
                sha256=digest,
                allow_http=True,
                cache_dir=str(Path(tmp) / "cache"),
            )

            def timed(name: str) -> float:
                start = time.perf_counter()
                record = materialize(cfg, Path(tmp) / name, progress=False)
                seconds = time.perf_counter() - start
                files = sum(sum(c.values()) for c in record["counts"].values())
                print(f"{name:28s} {seconds:6.1f} s  {files} files, {len(record['classes'])} classes")
                return seconds

            cold = timed("cold (download + unpack)")
            warm = timed("warm cache (unpack only)")
    finally:
        server.terminate()
    size_mb = args.archive.stat().st_size / 1e6
    print(f"archive {size_mb:.1f} MB; warm cache is {cold / warm:.2f}x faster than cold")


if __name__ == "__main__":
    main()
