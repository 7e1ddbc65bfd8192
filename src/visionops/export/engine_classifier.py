"""A TensorRT engine as a `Classifier` (export/classifier.py: meta, classes, task,
probabilities), so `visionops predict` can use it in the ONNX model's place. Loading checks
the engine's sidecar against this machine's TensorRT version and GPU first.

Needs CUDA + TensorRT: not executed on this project's CPU machines (the refusals are tested).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from visionops.errors import VisionOpsError, first_line
from visionops.export import tensorrt as trt_builder
from visionops.export.classifier import Classifier
from visionops.io import file_sha256


class TensorRTClassifier(Classifier):
    """Deserialized engine + the task recorded beside it by the export stage; batches are the
    engine's largest profile batch."""

    def __init__(self, path: Path):
        self.path = Path(path)
        info = trt_builder.read_engine_info(self.path)
        if "model" not in info:
            raise VisionOpsError(
                f"{self.path.name}.json records no model metadata (built before issue 13)",
                "rebuild it with the export stage: `dvc repro --force export`",
            )
        available = trt_builder.tensorrt_availability()
        if not available.ok:
            raise VisionOpsError(
                f"cannot run TensorRT engine {self.path}: {available.reason}",
                "use the .onnx model beside it (ONNX Runtime), or run where the engine was built",
            )
        self.trt = available.module
        self.warnings = trt_builder.check_engine_matches(
            info, trt_builder.engine_identity(self.trt), self.path
        )
        self.engine = trt_builder.deserialize_engine(self.trt, self.path.read_bytes())
        self.info, self.meta = info, info["model"]
        self.batch = int(info["profile"]["max"][0])

    def _logits(self, batch: np.ndarray) -> np.ndarray:
        import torch

        images = torch.from_numpy(batch).cuda()
        return trt_builder.run_engine(self.trt, self.engine, images).float().cpu().numpy()


def engine_for(onnx_path: Path) -> tuple[TensorRTClassifier | None, str]:
    """The engine built beside `onnx_path` from that very model, if it runs here; else None
    and why not ('' when there is no engine at all)."""
    engine_path = Path(onnx_path).with_suffix(".engine")
    if not engine_path.is_file():
        return None, ""
    try:
        info = trt_builder.read_engine_info(engine_path)
        if info.get("stands_for_sha256") != file_sha256(onnx_path):
            return None, f"{engine_path} was built from another model than {onnx_path}"
        return TensorRTClassifier(engine_path), ""
    except VisionOpsError as exc:
        return None, first_line(exc)
