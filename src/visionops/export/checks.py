"""Export the trained model and prove it: ONNX parity and latency, TensorRT where possible.

Returns a report dict; the caller fails the stage when `parity.passed` is false, after
writing the report. TensorRT is `built`, `skipped` (with the reason) or `failed`, never faked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from visionops.config import ExportParams
from visionops.data.prepared import to_model_input
from visionops.export import tensorrt as trt_builder
from visionops.export.deployable import INPUT_SPEC, Deployable, onnx_metadata
from visionops.export.onnx_export import convert_fp16, export_onnx
from visionops.export.runtime import cpu_session, median_latency_ms, parity, run_session
from visionops.io import file_sha256


def export_and_check(
    model: torch.nn.Module,
    meta: dict[str, Any],
    images: np.ndarray,
    onnx_path: Path,
    fp16_path: Path,
    engine_path: Path,
    cfg: ExportParams,
    resize: str,
    int8_qdq_path: Path,
) -> dict[str, Any]:
    """Export the deployable graph (uint8 NHWC `images` in, normalisation inside; fp32, and
    FP16 with the same I/O), parity of each against the PyTorch model on the normalised
    images as training fed them, latency, and TensorRT (an int8 engine is built from the
    compress stage's S8S8 Q/DQ ONNX `int8_qdq_path` of the pruned model)."""
    model = model.cpu().eval()
    deployable = Deployable(model, meta["mean"], meta["std"]).eval()
    export_onnx(deployable, torch.from_numpy(images[:2]), onnx_path, cfg.opset, onnx_metadata(meta, resize))
    threads = torch.get_num_threads()
    session = cpu_session(onnx_path, threads)
    inputs = to_model_input(images, meta)
    with torch.inference_mode():
        reference = model(torch.from_numpy(inputs)).numpy()
    onnx_parity = parity(reference, run_session(session, images))
    onnx_parity["atol"] = cfg.parity_atol
    onnx_parity["passed"] = (
        onnx_parity["max_abs_diff"] <= cfg.parity_atol and onnx_parity["top1_agreement"] == 1.0
    )
    convert_fp16(onnx_path, fp16_path)
    fp16_parity = parity(reference, run_session(cpu_session(fp16_path, threads), images))
    fp16_parity |= {
        "atol": cfg.fp16_parity_atol,
        "passed": fp16_parity["max_abs_diff"] <= cfg.fp16_parity_atol,
    }
    with torch.inference_mode():
        eager_ms = median_latency_ms(lambda: model(torch.from_numpy(inputs[:1])), cfg.latency_repeats)
    ort_ms = median_latency_ms(lambda: run_session(session, images[:1]), cfg.latency_repeats)
    return {
        "onnx": {
            "path": str(onnx_path),
            "opset": cfg.opset,
            "file_bytes": Path(onnx_path).stat().st_size,
            "dynamic_batch": True,
            "input": INPUT_SPEC,
        },
        "parity": onnx_parity | {"images": len(images)},
        "fp16": {"path": str(fp16_path), "file_bytes": Path(fp16_path).stat().st_size, "parity": fp16_parity},
        "latency_b1_ms": {"torch_eager": eager_ms, "onnxruntime": ort_ms, "threads": threads},
        "tensorrt": tensorrt_record(
            cfg,
            {"fp32": onnx_path, "fp16": fp16_path, "int8": int8_qdq_path},
            engine_path,
            images,
            reference,
            {"model": onnx_metadata(meta, resize), "stands_for_sha256": file_sha256(onnx_path)},
        ),
    }


def tensorrt_record(
    cfg: ExportParams,
    onnx_paths: dict[str, Path],
    engine_path: Path,
    images: np.ndarray,
    reference: np.ndarray,
    sidecar: dict[str, Any],
) -> dict[str, Any]:
    """Build and check a TensorRT engine from the deployable ONNX (uint8 NHWC `images` in), or
    say exactly why not. `sidecar` (the model's ONNX metadata and digest) is stored beside
    the engine so `visionops predict` can use it in the ONNX model's place."""
    if cfg.tensorrt == "off":
        return {"status": "skipped", "reason": "export.tensorrt is 'off'"}
    available = trt_builder.tensorrt_availability()
    if not available.ok:
        return {"status": "skipped", "reason": available.reason}
    trt = available.module
    try:  # pragma: no cover - needs CUDA + TensorRT
        plan, info = trt_builder.build_engine(
            trt,
            onnx_paths,
            cfg.tensorrt_precision,
            tuple(images.shape[1:]),
            cfg.tensorrt_max_batch,
            cfg.tensorrt_workspace_mb,
            engine_path.with_suffix(".timing-cache"),
        )
        trt_builder.write_engine(plan, info | sidecar, engine_path)
        engine = trt_builder.deserialize_engine(trt, plan)
        batch = torch.from_numpy(images[: cfg.tensorrt_max_batch]).cuda()
        logits = trt_builder.run_engine(trt, engine, batch).float().cpu().numpy()
        latency = median_latency_ms(
            lambda: trt_builder.run_engine(trt, engine, batch[:1]), cfg.latency_repeats
        )
        return {
            "status": "built",
            "engine": str(engine_path),
            **info,
            "parity_vs_torch": parity(reference[: len(batch)], logits),
            "latency_b1_ms": latency,
        }
    except Exception as exc:  # pragma: no cover - needs CUDA + TensorRT
        return {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
