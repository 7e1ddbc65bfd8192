"""ONNX Runtime sessions, prediction in batches, parity against PyTorch, and latency."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def cpu_session(path: Path, threads: int):
    """An ONNX Runtime CPU session with a fixed thread count (for fair latency comparisons)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_session(session, inputs: np.ndarray, batch: int = 256) -> np.ndarray:
    """Logits for float32 NCHW `inputs`, in batches."""
    name = session.get_inputs()[0].name
    return np.concatenate(
        [session.run(None, {name: inputs[i : i + batch]})[0] for i in range(0, len(inputs), batch)]
    )


def parity(reference: np.ndarray, candidate: np.ndarray) -> dict[str, Any]:
    """Max/mean absolute difference of logits and top-1 agreement."""
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    return {
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "top1_agreement": float((reference.argmax(1) == candidate.argmax(1)).mean()),
    }


def median_latency_ms(fn: Callable[[], Any], repeats: int, warmup: int = 5) -> float:
    """Median wall time of `fn` in milliseconds, after warm-up calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)
