"""Validation speed on 10,000 small JPEGs (CIFAR-10 subset): serial vs parallel manifest,
and a re-run against the content cache, all with the full GX suites. Prints times and
ratios; the target is under a minute for 10,000 images on 2 cores. Usage:
    python benchmarks/validate_speed.py --cifar ../shared/datasets/cifar10_jpg.tar.gz
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import write_images

import visionops  # noqa: F401  (process hygiene)


def main() -> None:
    from visionops.config import ValidateParams
    from visionops.data.shards import pack_tree
    from visionops.validation import manifest
    from visionops.validation.run import validate_dataset

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cifar", type=Path, required=True, help="CIFAR-10 JPEG archive")
    parser.add_argument("--per-class", type=int, default=834, help="train images per class (test gets 1/5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="visionops-validate-bench-") as tmp:
        root = Path(tmp) / "images"
        write_images(root, args.cifar, args.per_class)
        classes = sorted(p.name for p in (root / "train").iterdir())
        count = sum(1 for _ in root.rglob("*.jpg"))
        raw = pack_tree(root, Path(tmp) / "raw")
        known: dict = {}

        def timed(name: str, workers: int | None, use_cache: bool) -> float:
            manifest.PARALLEL_FROM = 1 if workers != 1 else 10**9
            start = time.perf_counter()
            outcome = validate_dataset(
                raw, ValidateParams(), classes, Path(tmp) / f"gx-{name}", False, known if use_cache else None
            )
            if use_cache:
                known.update(outcome.descriptions)
            seconds = time.perf_counter() - start
            failed = {r.check for r in outcome.results if not r.success}
            near = int(outcome.manifest["near_leaked"].sum())
            print(f"{name:28s} {seconds:6.1f} s  {count / seconds:7.0f} img/s  near-duplicate rows: {near}")
            print(f"{'':28s} failed checks: {sorted(failed)}")
            return seconds

        print(f"{count} JPEGs, 32x32, {len(classes)} classes")
        serial = timed("serial, cold", 1, False)
        parallel = timed("parallel (all cores), cold", None, True)
        warm = timed("parallel, warm cache", None, True)
    print(f"parallel vs serial: {serial / parallel:.2f}x; warm cache vs cold: {parallel / warm:.2f}x")
    print(
        f"target: 10,000 images under 60 s -> {'met' if parallel < 60 else 'MISSED'} ({parallel:.1f} s cold)"
    )


if __name__ == "__main__":
    main()
