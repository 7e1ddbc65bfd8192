"""Search hyperparameters: an Optuna study (TPE, median pruning) over the train.* and model.*
keys of params.yaml's `tune.space`, on data/prepared from the last `dvc repro`. Trials train on
the training part of train and are scored on its validation part; the test split is never used.

    visionops tune --trials 20                       # the project's study, in .visionops/optuna.db
    visionops tune --storage postgresql+psycopg://user:pw@host/optuna --study lr-search
    visionops tune --write-params && dvc repro       # the winner into params.yaml, then the pipeline

Every trial is a child run of the study's MLflow run (params, per-epoch validation metrics,
state). Several processes (on one machine or many) that give the same --storage and --study
share one study and its trial count. Ctrl-C stops cleanly; the same command resumes.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path


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
        "--storage", help="Optuna storage, any SQLAlchemy URL (default: .visionops/optuna.db)"
    )
    parser.add_argument("--study", default="visionops", help="study name; an existing study is resumed")
    parser.add_argument(
        "--write-params",
        action="store_true",
        help="write the winner's values into --params (else print the `dvc exp run -S` line)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run the study, then hand the winner back to DVC."""
    from visionops.config import load_params
    from visionops.data.prepared import open_prepared
    from visionops.interrupts import handle_sigterm
    from visionops.paths import PREPARED
    from visionops.tracking.runs import project_root
    from visionops.tuning.study import StudyPlan, default_storage, run_study
    from visionops.tuning.winner import exp_run_line, write_params

    params = load_params(args.params, "model", "train", "tracking", "tune")
    tune = params["tune"]
    budget = {"trials": args.trials, "timeout_s": args.timeout}
    tune = tune.model_copy(update={k: v for k, v in budget.items() if v is not None})
    root = project_root()
    plan = StudyPlan(args.storage or default_storage(root), args.study, tune, params)
    data = open_prepared(args.prepared or PREPARED)
    signal.signal(signal.SIGTERM, handle_sigterm)  # stop after the current epoch, never mid-write
    signal.signal(signal.SIGINT, handle_sigterm)
    try:
        study = run_study(plan, data, root, progress=not args.no_progress)
    except KeyboardInterrupt:
        print("tune: interrupted; every MLflow run is ended; run the same command to resume", file=sys.stderr)
        return 130
    best = _best(study)
    if best is None:
        print("tune: no trial completed, so there is no winner", file=sys.stderr)
        return 1
    print(f"tune: best trial {best.number}: val_accuracy {best.value:.4f} with {best.params}")
    if args.write_params:
        write_params(args.params, best.params)
        print(f"tune: wrote the winner into {args.params}; `dvc repro` trains, evaluates and gates it")
    else:
        print(f"tune: train it with: {exp_run_line(best.params)}")
    return 0


def _best(study):
    try:
        return study.best_trial
    except ValueError:  # no complete trial
        return None
