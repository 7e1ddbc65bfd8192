"""Opt-in wall-clock marks for `benchmarks/first_epoch.py`: with VISIONOPS_TIMINGS=FILE set,
`mark` appends one JSON line {"event", "stage", "t"} (Unix time) per event and process;
without it, nothing happens (no file, no cost)."""

from __future__ import annotations

import json
import os
import time

ENV = "VISIONOPS_TIMINGS"
_seen: set[str] = set()


def mark(event: str, stage: str = "") -> None:
    """Record `event` once per process (e.g. a stage's start and end, the first training step)."""
    target = os.environ.get(ENV)
    if not target or event in _seen:
        return
    _seen.add(event)
    line = json.dumps({"event": event, "stage": stage, "t": time.time(), "pid": os.getpid()})
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
