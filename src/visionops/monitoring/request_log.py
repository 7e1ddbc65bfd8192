"""What the served model saw, one compact JSON line per image: time, the model file's sha256,
its probabilities, its embedding (float16, base64) and the image's statistics (no image
bytes). The pyfunc model appends them when VISIONOPS_REQUEST_LOG names a folder; `visionops
monitor --requests FOLDER` reads the newest back as its window. Each serving process writes
its own file (no two writers share one), rotated by the standard library's
RotatingFileHandler so the log stays bounded."""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import logging
import logging.handlers
import math
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from visionops.errors import VisionOpsError

ENV = "VISIONOPS_REQUEST_LOG"
MAX_BYTES = 64 << 20  # one file's size before it rotates
BACKUPS = 16  # rotated files kept per process


class RequestLog:
    """Appends records to FOLDER/requests-<pid>.jsonl (opened lazily, reopened after a fork).
    Safe from several threads: the scoring server calls predict concurrently."""

    def __init__(self, folder: Path, model_sha256: str):
        self.folder, self.model_sha256 = Path(folder), model_sha256
        self._pid, self._logger = None, None
        self._opening = threading.Lock()  # one handler per process, however many first calls
        self._sequence = itertools.count()  # orders one process's records logged at the same time
        self._warned = False

    def append(self, probabilities: np.ndarray, stats: np.ndarray, embeddings: np.ndarray | None) -> None:
        """Log one record per image; a log that cannot be written is said once on stderr and
        never fails the prediction it records."""
        try:
            self._append(probabilities, stats, embeddings)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                print(
                    f"request log: cannot write to {self.folder} ({exc.strerror}); predictions go on",
                    file=sys.stderr,
                )

    def _append(self, probabilities: np.ndarray, stats: np.ndarray, embeddings: np.ndarray | None) -> None:
        logger = self._open()
        now = time.time()
        for row, (p, s) in enumerate(zip(probabilities.tolist(), stats.tolist(), strict=True)):
            record = {
                "time": now,
                "seq": next(self._sequence),
                "model_sha256": self.model_sha256,
                "probabilities": p,
                "stats": s,
            }
            if embeddings is not None:
                record["embedding"] = base64.b64encode(embeddings[row].astype("<f2").tobytes()).decode()
            logger.info(json.dumps(record, separators=(",", ":")))

    def _open(self) -> logging.Logger:
        with self._opening:
            if self._pid != os.getpid():
                self._logger = self._new_logger()
                self._pid = os.getpid()
        return self._logger

    def _new_logger(self) -> logging.Logger:
        """A logger writing this process's rotating file (a handler left by a fork removed)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        logger = logging.getLogger(f"visionops.requests.{os.getpid()}.{id(self)}")
        logger.propagate, logger.level = False, logging.INFO
        for old in list(logger.handlers):
            logger.removeHandler(old)
        handler = logging.handlers.RotatingFileHandler(
            self.folder / f"requests-{os.getpid()}.jsonl",
            maxBytes=MAX_BYTES,
            backupCount=BACKUPS,
            delay=False,
        )
        handler.handleError = _raise  # logging's default prints a traceback and goes on
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        return logger


def from_environment(model_sha256: str) -> RequestLog | None:
    """The request log VISIONOPS_REQUEST_LOG asks for, if any."""
    folder = os.environ.get(ENV)
    return RequestLog(Path(folder), model_sha256) if folder else None


def _raise(record) -> None:
    """The handler's handleError, which logging calls inside its `except`: re-raise what failed,
    so that `append` decides (logging's default prints a traceback and carries on)."""
    raise


def check_folder(folder: Path) -> Path:
    """The request log's folder, made if needed and checked writable before serving starts."""
    from visionops.io import probe_writable

    folder = Path(folder).resolve()
    if folder.exists() and not folder.is_dir():
        raise VisionOpsError(
            f"the request log {folder} is a file: the log is a folder of requests-*.jsonl files",
            "pass a folder (new or existing) for --request-log",
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe_writable(folder)
    except OSError as exc:
        raise VisionOpsError(
            f"the request log {folder} cannot be written ({exc.strerror})", "pass a folder you can write"
        ) from None
    return folder


@dataclass(frozen=True)
class Shape:
    """What a record of this model holds: its class count, image statistics and embedding width."""

    classes: int
    stats: int
    embedding: int | None


@dataclass(frozen=True)
class Logged:
    """The newest records of one model, oldest first."""

    probabilities: np.ndarray  # [N, K]
    stats: np.ndarray  # [N, len(STATS)]
    embeddings: np.ndarray | None  # [N, D]; None when any of them was logged without one
    others: int  # records of other models, left out
    malformed: int = 0  # lines that are not a record of this model's shape, left out
    first_problem: str = ""  # where the first of them is, and why
    found: int = 0  # records of this model, the window's and the older ones left out


def read_newest(folder: Path, model_sha256: str, count: int, shape: Shape) -> Logged:
    """The `count` newest records of this model in `folder`; memory holds `count` records,
    whatever the log's size. A line that is not such a record (cut short by a crash, not JSON,
    not UTF-8, missing a field, numbers that are not finite, lengths of another model) is left
    out and counted."""
    files = sorted(Path(folder).glob("requests-*.jsonl*"))
    if not files:
        raise VisionOpsError(
            f"{folder} holds no request log (requests-*.jsonl)",
            f"serve the model with {ENV}={folder} set (`visionops serve` passes it on), then check again",
        )
    newest: list[tuple[float, int, list, list, str | None]] = []
    others = malformed = found = 0
    first_problem = ""
    for path in files:
        with open(path, "rb") as lines:
            for number, line in enumerate(lines, 1):
                try:
                    record = _parsed(line)
                    if record["model_sha256"] != model_sha256:
                        others += 1
                        continue
                    _check(record, shape)
                except ValueError as exc:
                    malformed += 1
                    first_problem = first_problem or f"{path.name} line {number}: {exc}"
                    continue
                found += 1
                item = (
                    record["time"],
                    record["seq"],
                    record["probabilities"],
                    record["stats"],
                    record.get("embedding"),
                )
                (heapq.heappush if len(newest) < count else heapq.heappushpop)(newest, item)
    newest.sort()
    encoded = [item[4] for item in newest]
    embeddings = None
    if encoded and all(encoded):
        embeddings = np.stack([np.frombuffer(base64.b64decode(e), dtype="<f2") for e in encoded]).astype(
            np.float32
        )
    return Logged(
        np.asarray([item[2] for item in newest], dtype=np.float64),
        np.asarray([item[3] for item in newest], dtype=np.float64),
        embeddings,
        others,
        malformed,
        first_problem,
        found,
    )


def _parsed(line: bytes) -> dict:
    """One line as a record naming its model; ValueError saying what is wrong."""
    try:
        record = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except json.JSONDecodeError:
        raise ValueError("not JSON (a line cut short?)") from None
    if not isinstance(record, dict):
        raise ValueError(f"a JSON {type(record).__name__}, not a record")
    missing = [key for key in ("time", "seq", "model_sha256", "probabilities", "stats") if key not in record]
    if missing:
        raise ValueError(f"no {', '.join(missing)}")
    if not isinstance(record["model_sha256"], str):
        raise ValueError("model_sha256 is not text")
    return record


def _check(record: dict, shape: Shape) -> None:
    """A record of this model holds finite numbers of this model's lengths; ValueError if not."""
    _numbers(record, "time", None)
    if not isinstance(record["seq"], int) or isinstance(record["seq"], bool):
        raise ValueError("seq is not an integer")
    probabilities = _numbers(record, "probabilities", shape.classes)
    if min(probabilities) < 0 or abs(sum(probabilities) - 1) > 1e-3:
        raise ValueError("probabilities are not a distribution (negative, or their sum is not 1)")
    _numbers(record, "stats", shape.stats)
    if "embedding" in record and record["embedding"] is not None:
        try:
            raw = base64.b64decode(record["embedding"], validate=True)
        except (ValueError, TypeError):
            raise ValueError("embedding is not base64") from None
        if shape.embedding is not None and len(raw) != 2 * shape.embedding:
            raise ValueError(f"embedding has {len(raw) // 2} values, the model's has {shape.embedding}")
        if not np.isfinite(np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<f2")).all():
            raise ValueError("embedding holds a value that is not finite")


def _numbers(record: dict, key: str, length: int | None) -> list[float]:
    value = record[key]
    values = [value] if length is None else value
    if not isinstance(values, list) or (length is not None and len(values) != length):
        raise ValueError(
            f"{key} has {len(values) if isinstance(values, list) else 'no'} values, the model's has {length}"
        )
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise ValueError(f"{key} holds a value that is not a finite number")
    return values
