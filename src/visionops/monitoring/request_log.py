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
import os
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

    def append(self, probabilities: np.ndarray, stats: np.ndarray, embeddings: np.ndarray | None) -> None:
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
            self.folder / f"requests-{os.getpid()}.jsonl", maxBytes=MAX_BYTES, backupCount=BACKUPS
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        return logger


def from_environment(model_sha256: str) -> RequestLog | None:
    """The request log VISIONOPS_REQUEST_LOG asks for, if any."""
    folder = os.environ.get(ENV)
    return RequestLog(Path(folder), model_sha256) if folder else None


@dataclass(frozen=True)
class Logged:
    """The newest records of one model, oldest first."""

    probabilities: np.ndarray  # [N, K]
    stats: np.ndarray  # [N, len(STATS)]
    embeddings: np.ndarray | None  # [N, D]; None when any of them was logged without one
    others: int  # records of other models, left out


def read_newest(folder: Path, model_sha256: str, count: int) -> Logged:
    """The `count` newest records of this model in `folder`; memory holds `count` records,
    whatever the log's size."""
    files = sorted(Path(folder).glob("requests-*.jsonl*"))
    if not files:
        raise VisionOpsError(
            f"{folder} holds no request log (requests-*.jsonl)",
            f"serve the model with {ENV}={folder} set (`visionops serve` passes it on), then check again",
        )
    newest: list[tuple[float, int, list, list, str | None]] = []
    others = 0
    for path in files:
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash: the rest of the log still counts
                if record.get("model_sha256") != model_sha256:
                    others += 1
                    continue
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
    )
