"""Shared entry point for pipeline/ scripts: --help, --params, the project root as working
directory, and clean error reporting."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from visionops.errors import VisionOpsError
from visionops.interrupts import handle_sigterm, quiet_forked_workers
from visionops.invocation import check_params_kept, check_params_unchanged, params_now
from visionops.timings import mark


def run_stage(
    name: str,
    doc: str,
    main: Callable[[argparse.Namespace], None],
    configure: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Parse arguments, run `main`, and turn a VisionOpsError into a message and exit code 1."""
    mark("start", name)
    parser = argparse.ArgumentParser(
        prog=f"pipeline/{name}.py",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--params",
        type=Path,
        default=None,
        help="params file (default: the project's params.yaml)",
    )
    if configure is not None:
        configure(parser)
    args = parser.parse_args()
    root = project_dir(main)
    # --params as the user meant it (relative to where they are), then work from the project
    # root so that outputs land in the project whatever the caller's directory.
    args.params = args.params.resolve() if args.params else root / "params.yaml"
    os.chdir(root)
    signal.signal(signal.SIGTERM, handle_sigterm)  # clean up (MLflow run status) as for Ctrl-C
    quiet_forked_workers()
    try:
        check_params_unchanged(args.params, name)
        at_start = params_now(args.params)
        main(args)
        check_params_kept(args.params, at_start, name)  # what DVC records is what this stage read
        mark("end", name)
    except VisionOpsError as exc:
        print(f"\n[{name}] error: {exc}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:
        from visionops.io import write_problem

        problem = write_problem(exc, exc.filename or "an output file")
        if problem is None:
            raise
        print(f"\n[{name}] error: {problem}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"\n[{name}] interrupted; earlier outputs are untouched (re-run to resume).", file=sys.stderr)
        sys.exit(130)


def project_dir(main: Callable) -> Path:
    """The project root: the folder above pipeline/, where the stage script lives."""
    script = sys.modules[main.__module__].__file__
    return Path(script).resolve().parent.parent
