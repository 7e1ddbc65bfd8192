"""A run's status: no stage leaves a model's MLflow run RUNNING when it gives up on it.

`train` creates the run (RUNNING) and the stages after it re-open it, each ending it as
FINISHED. A failure or an interrupt in between ends it as FAILED or KILLED, with the reason as
the tag `visionops.failure`; resuming an interrupted training re-opens the same run. All of it
is best effort: a tracking outage must not hide the error that stopped the stage.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from visionops.errors import first_line

FAILURE_TAG = "visionops.failure"


def end_run(record: dict[str, Any], status: str, reason: str) -> None:
    """Mark the record's run FAILED or KILLED with `reason` (never raises)."""
    run_id = record.get("run_id")
    if not run_id:
        return
    import mlflow

    try:
        client = mlflow.MlflowClient()
        client.set_tag(run_id, FAILURE_TAG, reason[:5000])
        client.set_terminated(run_id, status=status)
    except Exception as exc:  # the store may be what failed
        print(f"warning: could not mark MLflow run {run_id} {status} ({first_line(exc)})", file=sys.stderr)


def reopen_run(record: dict[str, Any]) -> None:
    """A resumed run is RUNNING again, without the interruption's reason (never raises)."""
    run_id = record.get("run_id")
    if not run_id:
        return
    import mlflow

    with contextlib.suppress(Exception):
        client = mlflow.MlflowClient()
        client.update_run(run_id, status="RUNNING")
        client.delete_tag(run_id, FAILURE_TAG)


@contextlib.contextmanager
def ended_on_failure(record: dict[str, Any]) -> Iterator[None]:
    """Within this block, an interrupt ends the run KILLED (resumable) and an error FAILED."""
    try:
        yield
    except KeyboardInterrupt:
        end_run(
            record, "KILLED", "interrupted (Ctrl-C or SIGTERM); re-running with the same params resumes it"
        )
        raise
    except BaseException as exc:
        end_run(record, "FAILED", f"{type(exc).__name__}: {exc}")
        raise
