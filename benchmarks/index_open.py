"""Opening data/raw's index: RawImages (every row checked: shard name, byte range inside the
shard, path against split and class, no path twice; issue 32) vs the bare CSV read it does
anyway, on a synthetic 60,000-image data/raw, in the same invocation. Prints seconds (best of
5) and the ratio. Usage:
    python benchmarks/index_open.py [--images 60000]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import visionops  # noqa: F401  (process hygiene)


def best_of(runs: int, call) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    from visionops.data.shards import INDEX, RawImages, ShardWriter

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=60_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "raw"
        with ShardWriter(root, shard_bytes=64 * 2**20) as shards:
            for i in range(args.images):
                split = "test" if i % 6 == 0 else "train"
                shards.add(split, f"class{i % 10}", f"{i:06d}.jpg", b"\xff\xd8" + bytes(900))

        def bare() -> list:
            with open(root / INDEX, newline="", encoding="utf-8") as handle:
                return list(csv.DictReader(handle))

        plain, checked = best_of(5, bare), best_of(5, lambda: RawImages(root))
    rows = f"{args.images} rows"
    print(
        f"{rows}: csv read {plain:.3f} s, RawImages (checked) {checked:.3f} s, ratio {checked / plain:.2f}x"
    )


if __name__ == "__main__":
    main()
