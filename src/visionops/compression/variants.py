"""Measure deployable variants of one model the same way: test accuracy, parameters, MACs,
file size and median latency (batch 1 and a larger batch) on CPU, with ratios against the
first variant (fp32 PyTorch eager)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from visionops.data.prepared import Split, read_rows, to_model_input
from visionops.export.runtime import cpu_session, median_latency_ms, run_session

Predict = Callable[[np.ndarray], np.ndarray]


class Variant(NamedTuple):
    """One variant to measure: how to run it, its file, and its (MACs, parameters)."""

    name: str
    predict: Predict
    path: Path
    cost: tuple[float, float]


def eager(model: torch.nn.Module) -> Predict:
    """A PyTorch model as a numpy -> numpy predictor (CPU, inference mode)."""
    model = model.cpu().eval()

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return predict


def onnx(path: Path, threads: int) -> Predict:
    """An ONNX file as a numpy -> numpy predictor on ONNX Runtime's CPU provider."""
    session = cpu_session(path, threads)
    return lambda x: run_session(session, x)


def accuracy(predict: Predict, split: Split, meta: dict[str, Any] | None = None, batch: int = 256) -> float:
    """Top-1 accuracy over a split, one batch at a time: converted to model input with
    `meta`'s normalisation, or as uint8 NHWC images (deployable graphs) when `meta` is None."""
    correct = 0
    for start in range(0, len(split), batch):
        images = read_rows(split.x, np.arange(start, min(start + batch, len(split))))
        logits = predict(images if meta is None else to_model_input(images, meta))
        correct += int((logits.argmax(1) == split.y[start : start + batch]).sum())
    return correct / len(split)


def measure(
    variants: list[Variant], test: Split, meta: dict[str, Any], batch: np.ndarray, repeats: int
) -> list[dict[str, Any]]:
    """One row per variant: accuracy, cost, size, latency at batch 1 and len(batch), and the
    ratios against the first variant."""
    rows = [
        {
            "variant": v.name,
            "accuracy": accuracy(v.predict, test, meta),
            "parameters": v.cost[1],
            "macs": v.cost[0],
            "file_bytes": Path(v.path).stat().st_size,
            "latency_b1_ms": median_latency_ms(lambda p=v.predict: p(batch[:1]), repeats),
            f"latency_b{len(batch)}_ms": median_latency_ms(lambda p=v.predict: p(batch), repeats),
        }
        for v in variants
    ]
    base, n = rows[0], len(batch)
    for row in rows:
        row["speedup_b1"] = base["latency_b1_ms"] / row["latency_b1_ms"]
        row[f"speedup_b{n}"] = base[f"latency_b{n}_ms"] / row[f"latency_b{n}_ms"]
        row["size_ratio"] = base["file_bytes"] / row["file_bytes"]
        row["macs_ratio"] = base["macs"] / row["macs"]
        row["accuracy_drop_pt"] = 100.0 * (base["accuracy"] - row["accuracy"])
    return rows


def headline(rows: list[dict[str, Any]], batch: int) -> dict[str, float]:
    """The few numbers `dvc metrics diff` compares: accuracy and gains (× faster at batch
    `batch`, × smaller file, × fewer MACs) of the INT8 and pruned+INT8 variants."""
    by_name = {row["variant"]: row for row in rows}
    numbers = {"pruned_macs_fewer": float(by_name["pruned_eager"]["macs_ratio"])}
    for prefix, name in (("int8", "int8_onnxruntime"), ("pruned_int8", "pruned_int8_onnxruntime")):
        row = by_name[name]
        numbers |= {
            f"{prefix}_acc": float(row["accuracy"]),
            f"{prefix}_speedup": float(row[f"speedup_b{batch}"]),
            f"{prefix}_smaller": float(row["size_ratio"]),
        }
    return numbers


def flat_metrics(rows: list[dict[str, Any]], batch: int) -> dict[str, float]:
    """Every variant's accuracy, latency and ratios as flat MLflow metric names."""
    keys = (
        "accuracy",
        "latency_b1_ms",
        f"latency_b{batch}_ms",
        "speedup_b1",
        f"speedup_b{batch}",
        "size_ratio",
    )
    return {f"{row['variant']}_{key}": float(row[key]) for row in rows for key in keys}
