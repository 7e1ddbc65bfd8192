"""Local servers for the team stack, the tests and the benchmarks: a free port, waiting until a
started process answers (or naming why it never will), and stopping a process group."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path


class StackError(Exception):
    """A problem with the cause and the fix."""

    def __init__(self, cause: str, fix: str):
        super().__init__(f"{cause}\n  fix: {fix}")


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def is_free(port: int) -> bool:
    """Whether a server could bind `port` on 127.0.0.1 now (a port left in TIME_WAIT by a server
    just stopped counts as free: servers bind with SO_REUSEADDR)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def answers(url: str) -> Callable[[], bool]:
    """A check for `wait_until`: does a GET of `url` succeed?"""

    def check() -> bool:
        import requests

        return requests.get(url, timeout=2).ok

    return check


def wait_until(check: Callable[[], bool], what: str, log: Path, timeout: float = 120, proc=None) -> None:
    """Poll `check` (exceptions count as "not yet") until it is true; a StackError with the end
    of `log` when `proc` exits first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"{what} exited at start-up:\n{tail(log)}", f"see {log}")
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.5)
    raise StackError(f"{what} did not answer within {timeout:.0f} s:\n{tail(log)}", f"see {log}")


def tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.is_file() else ""


def stop_group(pid: int, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    """Signal the process group `pid` leads and wait until it is gone (SIGKILL after `timeout`)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(pid, signal.SIGKILL)
