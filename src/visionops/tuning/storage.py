"""Where a study lives: Optuna's RDB storage at any SQLAlchemy URL (the project's SQLite file
by default, the team's PostgreSQL to spread a search), opened with a clear error before any
training, the password never shown."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

from visionops.errors import VisionOpsError, first_line


def default_storage(root: Path) -> str:
    """A SQLite file in the project: <root>/.visionops/optuna.db."""
    folder = Path(root) / ".visionops"
    folder.mkdir(exist_ok=True)
    return f"sqlite:///{(folder / 'optuna.db').resolve()}"


# What a worker sees when another one creates the same new PostgreSQL storage at that moment
# (SQLite files are created under a lock instead).
CREATION_RACE = ("already exists", "alembic_version", "duplicate key")


def open_storage(url: str, attempts: int = 4):
    """Optuna's RDB storage at `url`, or a clear error before any training. A new SQLite file is
    created under `io.sqlite_creation_lock`; a worker that loses the race to create a new
    server-side storage tries again once the winner is done."""
    import optuna

    from visionops.io import sqlite_creation_lock

    _check_sqlite_folder(url)

    def rdb_storage():
        with warnings.catch_warnings(), sqlite_creation_lock(url):
            warnings.simplefilter("ignore")  # heartbeats are "experimental" (since Optuna 2.9)
            # a worker that dies without a word (kill -9, a lost machine) has its trial failed
            return optuna.storages.RDBStorage(url, heartbeat_interval=60, grace_period=180)

    try:
        return retried(rdb_storage, CREATION_RACE, attempts, pause_s=1.0)
    except Exception as exc:  # a bad URL, a refused connection, a wrong password, the race
        fix = (
            "give --storage (or $VISIONOPS_TUNE_STORAGE) a reachable SQLAlchemy URL "
            "(sqlite:///path/optuna.db, postgresql+psycopg://user:password@host/optuna), or "
            "leave both out for the project's SQLite file"
        )
        if isinstance(exc, ImportError):  # Optuna's words for a missing database driver
            fix = "install the URL's database driver (PostgreSQL: pip install 'psycopg[binary]')"
        raise VisionOpsError(
            f"cannot open the study storage {redacted(url)}: {type(exc).__name__}: {first_line(exc)}",
            fix,
        ) from None


def _check_sqlite_folder(url: str) -> None:
    """A SQLite storage's folder must exist and take new files: SQLite itself would create
    nothing and say little, and its lock file in a folder like /proc waits for minutes."""
    from visionops.io import probe_writable

    if not url.startswith("sqlite:///"):
        return
    folder = Path(url.removeprefix("sqlite:///")).parent
    try:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} does not exist")
        probe_writable(folder)
    except OSError as exc:
        raise VisionOpsError(
            f"cannot keep the study storage {url} there: {folder} is not a folder this process can "
            f"write ({exc.strerror or exc})",
            f"create the folder (mkdir -p {folder}) or give --storage a path in a writable folder, "
            "or leave --storage out for the project's .visionops/optuna.db",
        ) from None


def retried(call, signs: tuple[str, ...], attempts: int = 4, pause_s: float = 1.0):
    """`call()`, tried again (pausing pause_s x n before try n + 1) while its error names a race
    with another process (`signs`): the loser of a concurrent create or insert finds, next time,
    what the winner wrote. Any other error, or the last attempt's, is raised."""
    for attempt in range(1, attempts):
        try:
            return call()
        except Exception as exc:
            if not any(sign in str(exc) for sign in signs):
                raise
            time.sleep(pause_s * attempt)
    return call()  # the last attempt: any error is raised


def redacted(url: str) -> str:
    """The URL without its password."""
    head, sep, tail = url.rpartition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, credentials = head.partition("//")
    return f"{scheme}//{credentials.split(':', 1)[0]}:***@{tail}"
