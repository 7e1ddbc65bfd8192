"""INT8 static quantization with onnxruntime.quantization: QDQ, per-channel weights.

Two targets. `cpu`: U8 activations, S8 weights (x86 VNNI kernels; S8S8 was measured slower
than fp32 on this machine kind). `tensorrt`: symmetric S8 activations and weights with zero
points 0, the explicit-quantization Q/DQ form TensorRT 10/11 consumes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from visionops.io import atomic_path


def quantize_int8(
    fp32_onnx: Path,
    int8_onnx: Path,
    calibration: np.ndarray,
    target: str = "cpu",
    batch: int = 64,
) -> None:
    """Calibrate on `calibration` (float32 NCHW, already normalised) and write the INT8 model."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Batches(CalibrationDataReader):
        def __init__(self, input_name: str):
            self.items = iter(
                {input_name: calibration[i : i + batch]} for i in range(0, len(calibration), batch)
            )

        def get_next(self):
            return next(self.items, None)

    symmetric = {"ActivationSymmetric": True, "WeightSymmetric": True} if target == "tensorrt" else {}
    int8_onnx = Path(int8_onnx)
    pre = int8_onnx.with_name(f".{int8_onnx.stem}.pre.onnx")
    try:
        _pre_process(fp32_onnx, pre)
        with atomic_path(int8_onnx, suffix=".onnx") as tmp:
            quantize_static(
                str(pre),
                str(tmp),
                Batches(_input_name(pre)),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8 if target == "cpu" else QuantType.QInt8,
                weight_type=QuantType.QInt8,
                extra_options=symmetric,
            )
    finally:
        pre.unlink(missing_ok=True)


def _pre_process(source: Path, destination: Path) -> None:
    """ORT's recommended pre-processing; its symbolic shape inference fails on some exported
    graphs (e.g. ResNet-9's global max-pool reshape), so fall back to ONNX shape inference."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(source), str(destination))
    except Exception:
        quant_pre_process(str(source), str(destination), skip_symbolic_shape=True)


def _input_name(path: Path) -> str:
    import onnx

    return onnx.load(str(path), load_external_data=False).graph.input[0].name
