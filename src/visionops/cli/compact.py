"""`visionops compact`: reclaim now the bytes that removed images still hold in data/raw.

A new version of the data adds shards and never rewrites one (data/shards.py), so the bytes of
removed images stay in their shards, beside live ones, until they exceed
data.max_dead_fraction of data/raw; then the download stage packs every image afresh. This
asks for that now: `dvc repro --force --single-item download` with the re-pack on. The images,
their paths and labels are the same afterwards (so is everything trained on them); only the
shards change. Run `dvc repro` after it, and commit dvc.lock.
"""

from __future__ import annotations

import argparse
import os
import subprocess


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run", action="store_true", help="only say how much of data/raw removed images hold"
    )


def run(args: argparse.Namespace) -> int:
    """Re-pack data/raw through DVC (so dvc.lock records the result); DVC's exit status."""
    from visionops.data.shards import COMPACT_ENV, RawImages, dead_share
    from visionops.paths import RAW

    share, total = dead_share(RawImages(RAW))
    print(f"compact: removed images hold {share:.1%} of data/raw's {total / 1e6:.1f} MB of shards")
    if args.dry_run:
        return 0
    command = ["dvc", "repro", "--force", "--single-item", "download"]
    return subprocess.run(command, env=os.environ | {COMPACT_ENV: "1"}, check=False).returncode
