"""Search hyperparameters: an Optuna study (TPE, Hyperband pruning) over the train.* and model.*
keys of params.yaml's `tune.space`, on data/prepared from the last `dvc repro`. Trials train on
the training part of train and are scored on its validation part; the test split is never used.

    visionops tune --trials 20                       # the project's study, in .visionops/optuna.db
    visionops tune --storage postgresql+psycopg://user:pw@host/optuna --study lr-search
    visionops tune --write-params && dvc repro       # the winner into params.yaml, then the pipeline
    visionops tune --workers 2                       # two local processes, half the cores each
    export VISIONOPS_TUNE_STORAGE=postgresql+psycopg://...  # the team's: every machine joins

Every trial is a child run of the study's MLflow run (params, per-epoch validation metrics,
state). Several processes (on one machine or many) that give the same --storage and --study
share one study and its trial count. Ctrl-C stops cleanly; the same command resumes.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from visionops.tuning import STORAGE_ENV


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="params file (default %(default)s)"
    )
    parser.add_argument("--prepared", type=Path, help="prepared data folder (default: data/prepared)")
    parser.add_argument(
        "--trials", type=int, help="the study's total number of trials (default: tune.trials)"
    )
    parser.add_argument("--timeout", type=float, help="seconds after which this process starts no new trial")
    parser.add_argument(
        "--storage",
        default=os.environ.get(STORAGE_ENV),
        help=f"Optuna storage, any SQLAlchemy URL (default: ${STORAGE_ENV}, else .visionops/optuna.db)",
    )
    parser.add_argument("--study", default="visionops", help="study name; an existing study is resumed")
    parser.add_argument(
        "--write-params",
        action="store_true",
        help="write the winner's values into --params (else print the `dvc exp run -S` line)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="K",
        default=1,
        help="local processes working on the study, each with 1/K of the CPU cores (default %(default)s)",
    )
    parser.add_argument(
        "--threads", type=int, metavar="N", help="torch CPU threads per process (default: cores / workers)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--joined", action="store_true", help=argparse.SUPPRESS)  # a --workers child


def run(args: argparse.Namespace) -> int:
    """Run the study (here, or in --workers processes), then hand the winner back to DVC."""
    from visionops.errors import VisionOpsError
    from visionops.interrupts import handle_sigterm

    if args.workers < 1 or (args.threads is not None and args.threads < 1):
        raise VisionOpsError("--workers and --threads must be at least 1", "e.g. --workers 2")
    if args.trials is not None and args.trials < 1:
        raise VisionOpsError(f"--trials {args.trials}: a study needs at least one trial", "e.g. --trials 20")
    plan, data, root = _plan(args)
    if not args.joined:
        from visionops.tuning.space import implausible

        for warning in implausible(plan.tune.space):
            print(f"tune: warning: {warning}", file=sys.stderr)
    signal.signal(signal.SIGTERM, handle_sigterm)  # stop after the current epoch, never mid-write
    signal.signal(signal.SIGINT, handle_sigterm)
    study, code = _search(args, plan, data, root)
    if code == 130 and not args.joined:
        print(INTERRUPTED, file=sys.stderr)
    if code or args.joined:  # a worker leaves the winner to its launcher
        return code
    return _hand_back(study, args.params, args.write_params, _majority_share(data.train.y))


def _plan(args: argparse.Namespace):
    """The study to run, the prepared data (opened, so a missing one fails before any worker
    starts) and the project root."""
    from visionops.config import load_params
    from visionops.data.prepared import open_prepared
    from visionops.paths import PREPARED
    from visionops.tracking.runs import project_root
    from visionops.tuning.storage import default_storage
    from visionops.tuning.study import StudyPlan

    params = load_params(args.params, "model", "train", "tracking", "tune")
    budget = {"trials": args.trials, "timeout_s": args.timeout}
    tune = params["tune"].model_copy(update={k: v for k, v in budget.items() if v is not None})
    root = project_root()
    plan = StudyPlan(args.storage or default_storage(root), args.study, tune, params)
    return plan, open_prepared(args.prepared or PREPARED), root


def _search(args: argparse.Namespace, plan, data, root: Path):
    """(optuna.Study, exit code): 0, 130 after Ctrl-C, or a failed worker's code."""
    from visionops.tuning.study import run_study
    from visionops.tuning.workers import run_workers

    progress = not args.no_progress
    if args.workers > 1:
        worker_args = _worker_args(args, data.root)
        return run_workers(plan, root, worker_args, args.workers, args.threads, progress)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        return run_study(plan, data, root, progress=progress, end_parent=not args.joined), 0
    except KeyboardInterrupt:
        return None, 130


def _hand_back(study, params: Path, write: bool, chance: float) -> int:
    """Print the winner, and its `dvc exp run -S` line or write it into params.yaml."""
    from visionops.tuning.winner import exp_run_line, write_params

    best = _best(study)
    if best is None:
        print("tune: no trial completed, so there is no winner", file=sys.stderr)
        return 1
    print(f"tune: best trial {best.number}: val_accuracy {best.value:.4f} with {best.params}")
    if best.value <= chance:
        print(
            f"tune: warning: the best trial is no better than always answering the most frequent "
            f"class ({chance:.4f}): check tune.space's ranges before training it",
            file=sys.stderr,
        )
    if write:
        write_params(params, best.params)
        print(f"tune: wrote the winner into {params}; `dvc repro` trains, evaluates and gates it")
    else:
        print(f"tune: train it with: {exp_run_line(best.params)}")
    return 0


INTERRUPTED = "tune: interrupted; every MLflow run is ended; run the same command to resume"


def _worker_args(args: argparse.Namespace, prepared: Path) -> list[str]:
    """A --workers child's arguments: this command's, with every path resolved (the storage URL,
    which may hold a password, goes by environment, never on a command line `ps` shows)."""
    worker = ["--params", str(args.params.resolve()), "--prepared", str(Path(prepared).resolve()),
              "--study", args.study, "--no-progress"]  # fmt: skip
    if args.trials is not None:
        worker += ["--trials", str(args.trials)]
    if args.timeout is not None:
        worker += ["--timeout", str(args.timeout)]
    return worker


def _majority_share(labels) -> float:
    """The accuracy of always answering the most frequent training class."""
    import numpy as np

    counts = np.bincount(np.asarray(labels))
    return float(counts.max() / max(counts.sum(), 1))


def _best(study):
    try:
        return study.best_trial
    except ValueError:  # no complete trial
        return None
