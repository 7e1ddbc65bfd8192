"""Images to class probabilities, the one way visionops predicts: `Classifier` takes uint8
NHWC images at the model's size and channels and returns probabilities, a batch at a time
(a memory map is read batch by batch). Its backends say only how a batch becomes logits:
`OnnxClassifier` (the exported graph on ONNX Runtime: the register gate, `visionops predict`
and `monitor`, the MLflow pyfunc, the monitoring reference), `TensorRTClassifier`
(engine_classifier.py) and `EagerClassifier` (the PyTorch model before export: evaluate).
ONNX needs only onnxruntime, numpy and Pillow (no torch), so a serving environment stays small."""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
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


class Classifier(ABC):
    """uint8 NHWC images -> class probabilities (float64), in batches of `batch`; `meta` holds
    the task (classes, image_size, channels) and the normalisation (mean, std)."""

    meta: dict[str, Any]
    batch: int = 256

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def task(self) -> dict[str, Any]:
        return {key: self.meta[key] for key in TASK_KEYS}

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Softmax of the logits."""
        return softmax(self.logits(images).astype(np.float64))

    def labels(self, images: np.ndarray) -> np.ndarray:
        """The predicted class index of every image."""
        return self.logits(images).argmax(1)

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Logits for uint8 NHWC `images` at the model's size and channels."""
        out = [self._logits(chunk) for chunk in self._batches(images)]
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def _batches(self, images: np.ndarray):
        """Contiguous uint8 batches. A memory-mapped split is read with pread (`read_rows`), so
        its pages never count in this process's memory: flat in the split's size."""
        from visionops.data.prepared import ChunkedImages, read_rows

        mapped = isinstance(images, np.memmap | ChunkedImages)
        for start in range(0, len(images), self.batch):
            stop = min(start + self.batch, len(images))
            chunk = read_rows(images, np.arange(start, stop)) if mapped else images[start:stop]
            yield np.ascontiguousarray(chunk, dtype=np.uint8)

    @abstractmethod
    def _logits(self, batch: np.ndarray) -> np.ndarray:
        """Logits (float32) for one contiguous uint8 NHWC batch."""


class OnnxClassifier(Classifier):
    """ONNX Runtime session + the task recorded in the model's metadata, whichever input the
    graph takes (uint8 NHWC since issue 13, or the older float32 NCHW that needs the
    normalisation applied outside)."""

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
    def takes_uint8(self) -> bool:
        return self.input.type == "tensor(uint8)"

    @property
    def has_embedding(self) -> bool:
        """Whether the graph also outputs its embedding (models exported before issue 35 do not)."""
        return EMBEDDING in {output.name for output in self.session.get_outputs()}

    def outputs(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities, embedding) in one pass; the embedding is None for a graph without one."""
        if not self.has_embedding:
            return self.probabilities(images), None
        logits, vectors = [], []
        for chunk in self._batches(images):
            got = self._run(chunk, [self.session.get_outputs()[0].name, EMBEDDING])
            logits.append(got[0])
            vectors.append(got[1])
        if not logits:  # no images: no rows, and no embedding to speak of
            return np.zeros((0, len(self.classes))), None
        return softmax(np.concatenate(logits).astype(np.float64)), np.concatenate(vectors)

    def _logits(self, batch: np.ndarray) -> np.ndarray:
        return self._run(batch, [self.session.get_outputs()[0].name])[0]

    def _run(self, batch: np.ndarray, names: list[str]) -> list[np.ndarray]:
        from visionops.data.prepared import to_model_input

        feed = batch if self.takes_uint8 else to_model_input(batch, self.meta)
        return self.session.run(names, {self.input.name: feed})


class EagerClassifier(Classifier):
    """A PyTorch model in memory: evaluate scores models/model.pt before there is an ONNX graph,
    normalising as a float-input graph is fed (`to_model_input`), on the model's device."""

    def __init__(self, model, meta: dict[str, Any], batch: int = 256):
        self.model, self.meta, self.batch = model.eval(), meta, batch
        self.device = next(model.parameters()).device

    def _logits(self, batch: np.ndarray) -> np.ndarray:
        import torch

        from visionops.data.prepared import to_model_input

        with torch.inference_mode():
            inputs = torch.from_numpy(to_model_input(batch, self.meta)).to(self.device)
            return self.model(inputs).float().cpu().numpy()


def _json(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value  # plain-text entries (input, resize)
