"""SIGTERM handling that never interrupts in the middle of a write.

Raising KeyboardInterrupt from a signal handler at an arbitrary point can land inside a
SQLite transaction (MLflow) and leave the store locked. While a loop has declared safe
points (`deferred_interrupts`), the first SIGTERM only sets a flag and the loop raises at
its next `raise_if_interrupted()`; outside such a loop, or on a second SIGTERM, the
interrupt is raised at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

_depth = 0
_pending = False


def handle_sigterm(signum, frame) -> None:
    """Signal handler: defer inside a safe-point loop, otherwise interrupt now."""
    global _pending
    if _depth and not _pending:
        _pending = True
        return
    raise KeyboardInterrupt(f"signal {signum}")


def quiet_forked_workers() -> None:
    """Forked workers (cleanlab's and the manifest's process pools) do not inherit the stage's
    SIGTERM handler and ignore Ctrl-C: the parent shuts its pools down. Inherited, the handler
    raised KeyboardInterrupt in every worker, each printing a ForkPoolWorker traceback. SIGTERM
    keeps its default action, so a pool's terminate() still ends them."""
    os.register_at_fork(after_in_child=_worker_signals)


def _worker_signals() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Within this block SIGTERM waits for the next `raise_if_interrupted()`."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1


def raise_if_interrupted() -> None:
    """A safe point: raise the deferred interrupt, if one arrived."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt("SIGTERM")
