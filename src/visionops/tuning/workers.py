"""`visionops tune --workers K`: K local `visionops tune` processes on one study, each with 1/K
of the CPU cores, exactly as K machines would join it. This process creates the study and its
MLflow parent run first (so the workers only join), shows the study's progress, forwards Ctrl-C
once, and ends the parent run when every worker has stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from visionops.tuning import STORAGE_ENV
from visionops.tuning.mlflow_runs import end_parent_run
from visionops.tuning.study import StudyPlan, counted_trials, open_study

POLL_S = 1.0


def cpu_cores() -> int:
    """The cores this process may run on (a container's or taskset's share, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    return max(1, cpu_cores() // workers)


def run_workers(
    plan: StudyPlan,
    root: Path,
    worker_args: list[str],
    workers: int,
    threads: int | None = None,
    progress: bool = True,
):
    """Run `workers` processes of `visionops tune <worker_args>` on the study, each with
    `threads` CPU threads (default: its share of the cores); returns (optuna.Study, exit code:
    0, 130 after Ctrl-C, or the first failing worker's code)."""
    study, parent = open_study(plan, root)
    workers = max(1, min(workers, plan.tune.trials - counted_trials(study)))  # no idle worker
    threads = threads or threads_per_worker(workers)
    command = [sys.executable, "-m", "visionops", "tune", *worker_args, "--threads", str(threads), "--joined"]
    print(f"tune: {workers} workers, {threads} CPU thread(s) each, on study '{plan.name}'")
    # own sessions: a terminal's Ctrl-C reaches only this process, which forwards it once
    env = os.environ | {STORAGE_ENV: plan.storage}  # never on a command line: it may hold a password
    procs = [subprocess.Popen(command, env=env, start_new_session=True) for _ in range(workers)]
    status, code = "FINISHED", 0
    try:
        _watch(procs, study, plan.tune.trials, progress)
    except KeyboardInterrupt:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # each stops after its current epoch
        for proc in procs:
            proc.wait()
        status, code = "KILLED", 130
    else:
        failed = [proc.returncode for proc in procs if proc.returncode != 0]
        if failed:
            status, code = "FAILED", failed[0]
            print(f"tune: {len(failed)} of {workers} workers failed (exit codes {failed})", file=sys.stderr)
    finally:
        end_parent_run(study, parent, status)
    return study, code


def _watch(procs: list[subprocess.Popen], study, total: int, progress: bool) -> None:
    """Wait for every worker, with a bar of the study's complete + pruned trials."""
    from tqdm import tqdm

    with tqdm(total=total, desc="trials", unit="trial", disable=not progress) as bar:
        while any(proc.poll() is None for proc in procs):
            time.sleep(POLL_S)
            bar.n = min(total, counted_trials(study))
            bar.refresh()
        bar.n = min(total, counted_trials(study))
        bar.refresh()
