"""torch -> ONNX (dynamo exporter, dynamic batch), checked, with metadata for deployment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from visionops.errors import VisionOpsError
from visionops.export.classifier import LOGITS
from visionops.io import atomic_path

INPUT_NAME = "input"


def export_onnx(
    model: nn.Module, example: torch.Tensor, path: Path, opset: int, metadata: dict[str, Any]
) -> None:
    """Export with a dynamic batch dimension, weights in the one file, metadata_props set,
    and `onnx.checker` (full check) passed; written atomically. The outputs are named by the
    model's `output_names` (the deployable graph: logits and embedding), else `logits`."""
    import onnx

    batch = torch.export.Dim("batch", min=1, max=4096)
    with atomic_path(path, suffix=".onnx") as tmp:
        torch.onnx.export(
            model.eval().cpu(),
            (example.cpu(),),
            str(tmp),
            dynamo=True,
            opset_version=opset,
            dynamic_shapes={"x": {0: batch}},
            input_names=[INPUT_NAME],
            output_names=list(getattr(model, "output_names", (LOGITS,))),
            external_data=False,
            verbose=False,
        )
        proto = onnx.load(str(tmp))
        written = declared_opset(proto)
        if written != opset:  # the exporter falls back (with a warning) to an opset it can write
            raise VisionOpsError(
                f"export.opset is {opset}, but this PyTorch/ONNX exporter wrote opset {written}: it "
                f"cannot produce {opset}",
                f"set export.opset to {written} (or another opset from 17 to "
                f"{onnx.defs.onnx_opset_version()} that the exporter supports)",
            )
        onnx.helper.set_model_props(
            proto, {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
        )
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(tmp))


def declared_opset(proto) -> int:
    """The default-domain opset an ONNX model declares."""
    return next(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx"))


def read_metadata(path: Path) -> dict[str, str]:
    """The metadata_props of an ONNX file."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {prop.key: prop.value for prop in proto.metadata_props}


def convert_fp16(fp32_path: Path, fp16_path: Path) -> None:
    """FP16 weights and compute with fp32 inputs/outputs (for GPU runtimes, TensorRT 11)."""
    import onnx
    import onnx_ir as ir
    from onnx_ir.passes.common import TopologicalSortPass
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with atomic_path(fp16_path, suffix=".onnx") as tmp:
        converted = ir.from_proto(convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True))
        TopologicalSortPass()(converted)  # the converter appends its input Casts at the end
        proto = ir.to_proto(converted)
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(tmp))
