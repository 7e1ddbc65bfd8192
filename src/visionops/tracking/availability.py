"""Is MLflow unreachable (retry later), as opposed to refusing a request (a real error)?
And MLflow's own HTTP retry settings, from params."""

from __future__ import annotations

import os

from visionops.config import TrackingParams
from visionops.errors import VisionOpsError, first_line

OUTAGE_MARKERS = (
    "failed with exception",  # connection refused/reset, DNS, ... after MLflow's own retries
    "failed with timeout exception",
    "Max retries exceeded",
    "error code 502",
    "error code 503",
    "error code 504",
    "database is locked",  # SQLite under concurrent writers
)


def is_unavailable(exc: BaseException) -> bool:
    """True for connection errors, timeouts, gateway errors and a locked SQLite store."""
    import requests

    for seen in _chain(exc):
        if isinstance(seen, requests.ConnectionError | requests.Timeout | ConnectionError | TimeoutError):
            return True
        if any(marker in str(seen) for marker in OUTAGE_MARKERS):
            return True
    return False


def apply_http_settings(cfg: TrackingParams) -> None:
    """MLflow retries each HTTP request itself (exponential backoff); bound it from params so
    an outage is recognised in seconds, not MLflow's default of minutes."""
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(cfg.retries)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = str(cfg.backoff_factor)
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(int(cfg.timeout_s))


def access_problem(exc: BaseException, uri: str) -> VisionOpsError | None:
    """A tracking server that refused this login (401) or this user (403), as a message naming
    MLflow's own settings; None for anything else."""
    codes = {getattr(e, "error_code", None) for e in _chain(exc)}
    text = " ".join(str(e) for e in _chain(exc))
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if "UNAUTHENTICATED" in codes or "error code 401" in text:
        who = f"user '{user}'" if user else "no user (MLFLOW_TRACKING_USERNAME is not set)"
        return VisionOpsError(
            f"the MLflow server {uri} refused the login of {who} (401)",
            "export MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD with your login on that "
            "server (ask its admin for one)",
        )
    if "PERMISSION_DENIED" in codes or "error code 403" in text:
        return VisionOpsError(
            f"the MLflow server {uri} does not allow user '{user}' this change (403: {first_line(exc)})",
            "ask the server's admin to grant your user EDIT on the experiment and the registered "
            "model (`python scripts/team_stack.py grant USER` on a `make server` stack)",
        )
    return None


def store_problem(exc: BaseException, uri: str) -> VisionOpsError | None:
    """A tracking store that cannot work as it is (damaged, full, read-only, refusing this
    login or user), as a message naming it with the fix; None for anything else."""
    refused = access_problem(exc, uri)
    if refused is not None:
        return refused
    text = " ".join(str(e) for e in _chain(exc))
    path = uri.removeprefix("sqlite:///")
    if "file is not a database" in text or "database disk image is malformed" in text:
        return VisionOpsError(
            f"the MLflow store {path} is not a readable SQLite database (damaged or overwritten)",
            f"move it aside (`mv {path} {path}.broken`) and re-run to start a new store, restore it "
            "from a backup, or set MLFLOW_TRACKING_URI to your tracking server",
        )
    if "database or disk is full" in text or "disk I/O error" in text:
        return VisionOpsError(
            f"the MLflow store {path} could not be written (no space left, or a disk error)",
            "free disk space (or check the disk), then re-run the stage; its DVC outputs are already written",
        )
    if "readonly database" in text or "unable to open database file" in text:
        return VisionOpsError(
            f"the MLflow store {path} cannot be opened for writing",
            f"make {path} and its folder writable, or set MLFLOW_TRACKING_URI to a store you can write",
        )
    return None


def raise_store_problem(exc: Exception, uri: str) -> None:
    """Re-raise `exc`, as a message with the fix when the store itself is the problem."""
    problem = store_problem(exc, uri)
    if problem is not None:
        raise problem from None
    raise exc


def is_outage(exc: Exception, uri: str) -> bool:
    """True when `exc` says the store is unreachable (the caller defers or retries later);
    any other error is re-raised, as a message with the fix when the store is the problem."""
    if is_unavailable(exc):
        return True
    raise_store_problem(exc, uri)
    return False  # not reached: raise_store_problem always raises


def _chain(exc: BaseException):
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__
