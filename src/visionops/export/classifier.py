"""An exported ONNX classifier with what its metadata says: class names, input size and
channels, normalisation. One object serves the register gate, `visionops predict` and the
MLflow pyfunc model, whichever input the graph takes (uint8 NHWC since issue 13, or the
older float32 NCHW that needs the normalisation applied outside). Needs only onnxruntime,
numpy and Pillow (no torch), so a serving environment stays small."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from visionops.errors import VisionOpsError, first_line

TASK_KEYS = ("classes", "image_size", "channels")
LOGITS = "logits"  # the deployable graph's first output
EMBEDDING = "embedding"  # its second (since issue 35): the vector the class head reads, for drift tests


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable."""
    shifted = logits - logits.max(1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(1, keepdims=True)


class OnnxClassifier:
    """ONNX Runtime session + the task recorded in the model's metadata."""

    def __init__(self, path: Path, threads: int = 0, providers: list[str] | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=providers or ["CPUExecutionProvider"]
            )
            self.input = self.session.get_inputs()[0]  # an empty graph has none
        except Exception as exc:  # ORT's InvalidProtobuf, Fail, NoSuchFile, ...; IndexError
            raise VisionOpsError(
                f"{path} is not a loadable ONNX model ({first_line(exc)})",
                "use models/model.onnx as the export stage wrote it (`dvc repro export`), or a "
                "model registered by visionops",
            ) from None
        meta = {k: _json(v) for k, v in self.session.get_modelmeta().custom_metadata_map.items()}
        missing = [key for key in (*TASK_KEYS, "mean", "std") if key not in meta]
        if missing:
            raise VisionOpsError(
                f"{path} has no {', '.join(missing)} in its ONNX metadata: it was not exported by "
                "visionops's export stage",
                "use models/model.onnx from the pipeline, or a model registered by it",
            )
        self.meta = meta

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def task(self) -> dict[str, Any]:
        return {key: self.meta[key] for key in TASK_KEYS}

    @property
    def takes_uint8(self) -> bool:
        return self.input.type == "tensor(uint8)"

    @property
    def has_embedding(self) -> bool:
        """Whether the graph also outputs its embedding (models exported before issue 35 do not)."""
        return EMBEDDING in {output.name for output in self.session.get_outputs()}

    def logits(self, images: np.ndarray, batch: int = 256) -> np.ndarray:
        """Logits for uint8 NHWC `images` at the model's size and channels."""
        return self._run(images, batch, embedding=False)[0]

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Softmax of the logits."""
        return softmax(self.logits(images).astype(np.float64))

    def outputs(self, images: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities, embedding) in one pass; the embedding is None for a graph without one."""
        logits, embedding = self._run(images, batch, embedding=self.has_embedding)
        return softmax(logits.astype(np.float64)), embedding

    def _run(self, images: np.ndarray, batch: int, embedding: bool) -> tuple[np.ndarray, np.ndarray | None]:
        from visionops.data.prepared import to_model_input

        names = [self.session.get_outputs()[0].name] + ([EMBEDDING] if embedding else [])
        logits, vectors = [], []
        for start in range(0, len(images), batch):
            chunk = np.ascontiguousarray(images[start : start + batch], dtype=np.uint8)
            feed = chunk if self.takes_uint8 else to_model_input(chunk, self.meta)
            got = self.session.run(names, {self.input.name: feed})
            logits.append(got[0])
            vectors += got[1:]
        if not logits:  # no images: no rows, and no embedding to speak of
            return np.zeros((0, len(self.classes)), np.float32), None
        return np.concatenate(logits), (np.concatenate(vectors) if vectors else None)


def _json(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value  # plain-text entries (input, resize)
