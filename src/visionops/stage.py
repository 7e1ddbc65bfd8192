"""Shared entry point for pipeline/ scripts: --help, --params, and clean error reporting."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from visionops.errors import VisionOpsError
from visionops.interrupts import handle_sigterm


def run_stage(
    name: str,
    doc: str,
    main: Callable[[argparse.Namespace], None],
    configure: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Parse arguments, run `main`, and turn a VisionOpsError into a message and exit code 1."""
    parser = argparse.ArgumentParser(
        prog=f"pipeline/{name}.py",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--params",
        type=Path,
        default=Path("params.yaml"),
        help="params file (default: %(default)s)",
    )
    if configure is not None:
        configure(parser)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, handle_sigterm)  # clean up (MLflow run status) as for Ctrl-C
    try:
        main(args)
    except VisionOpsError as exc:
        print(f"\n[{name}] error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"\n[{name}] interrupted; earlier outputs are untouched (re-run to resume).", file=sys.stderr)
        sys.exit(130)
