"""`visionops compact`: reclaim now the bytes that removed images still hold in the data stages'
outputs.

A new version of the data adds files and never rewrites one (data/raw's shards and index
fragments, validate's description parts, data/prepared's chunks), so what removed images took
stays there, beside what live ones use, until it passes data.max_dead_fraction of the output;
then the stage writes everything afresh. This asks for that now, in all three: `dvc repro
--force augment` (scan, download, validate, augment) with the re-pack on. The images, their
paths and labels are the same afterwards, and so is a model trained on them (the next `dvc
repro` trains again, since data/prepared's files changed, and writes the same model.pt); only the
files change. Commit dvc.lock after it.
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
    command = ["dvc", "repro", "--force", "augment"]  # download, validate and augment each compact
    return subprocess.run(command, env=os.environ | {COMPACT_ENV: "1"}, check=False).returncode
