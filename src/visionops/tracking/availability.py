"""Is MLflow unreachable (retry later), as opposed to refusing a request (a real error)?
And MLflow's own HTTP retry settings, from params."""

from __future__ import annotations

import os

from visionops.config import TrackingParams

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

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, requests.ConnectionError | requests.Timeout | ConnectionError | TimeoutError):
            return True
        if any(marker in str(seen) for marker in OUTAGE_MARKERS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def apply_http_settings(cfg: TrackingParams) -> None:
    """MLflow retries each HTTP request itself (exponential backoff); bound it from params so
    an outage is recognised in seconds, not MLflow's default of minutes."""
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(cfg.retries)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = str(cfg.backoff_factor)
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(int(cfg.timeout_s))
