"""TensorRT engine build + parity + latency, for TensorRT 10 and 11.

TensorRT 10: explicit-batch networks; fp16 via the builder flag. TensorRT 11: strongly
typed networks; the FP16/INT8 flags are gone and precision comes from the ONNX itself, so an
fp16 engine is built from the FP16 ONNX the export writes. INT8 (both versions): explicit
quantization, a strongly typed network parsed from the compress stage's symmetric S8S8 Q/DQ
ONNX (no precision flags, as NVIDIA's docs ask).

An engine only runs under the TensorRT version and GPU architecture it was built for, so
its JSON sidecar records both (and the GPU's name); `check_engine_matches` refuses a
mismatched engine with a message saying to rebuild.

Runs without a GPU (and is tested): `tensorrt_availability`, `build_settings`,
`profile_shapes`, `write_engine`, `read_engine_info`, `check_engine_matches`. The rest needs
CUDA + TensorRT and has not been executed on this project's CPU machines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Availability:
    """Whether an engine can be built here, and if not, why."""

    module: Any | None
    reason: str

    @property
    def ok(self) -> bool:
        return self.module is not None


def tensorrt_availability() -> Availability:
    """Import tensorrt and check for a CUDA GPU; never raises."""
    try:
        import tensorrt
    except Exception as exc:  # ImportError, or a missing libnvinfer / libnvonnxparser
        return Availability(
            None,
            f"tensorrt is not importable ({type(exc).__name__}: {exc}); install it on a CUDA "
            "machine from NVIDIA's index (pip install tensorrt)",
        )
    import torch

    if not torch.cuda.is_available():
        return Availability(None, "no CUDA GPU visible (torch.cuda.is_available() is False)")
    return Availability(tensorrt, "")


def major_version(version: str) -> int:
    """'10.13.0.35' -> 10."""
    return int(version.split(".")[0])


def build_settings(major: int, precision: str) -> dict[str, Any]:
    """What the builder must do for this TensorRT major version and requested precision,
    including which exported ONNX to parse (`onnx`: fp32, fp16 or int8)."""
    if major < 10:
        raise ValueError(f"TensorRT {major}.x is not supported: use TensorRT 10 or 11")
    if precision == "int8":  # explicit quantization: Q/DQ in the graph, strong typing, no flags
        return {"strongly_typed": True, "fp16_flag": False, "onnx": "int8", "effective_precision": "int8"}
    if major >= 11:  # strongly typed: the FP16 ONNX itself carries the precision
        return {
            "strongly_typed": True,
            "fp16_flag": False,
            "onnx": precision,
            "effective_precision": precision,
        }
    return {  # TensorRT 10: fp32 ONNX, precision from the builder flag
        "strongly_typed": False,
        "fp16_flag": precision == "fp16",
        "onnx": "fp32",
        "effective_precision": precision,
    }


def profile_shapes(image: tuple[int, int, int], max_batch: int) -> dict[str, tuple[int, ...]]:
    """Optimization profile over one image's shape (HWC for the deployable graph): batch
    1 .. max_batch, optimised for max_batch // 2 (at least 1)."""
    opt = max(1, max_batch // 2)
    return {"min": (1, *image), "opt": (opt, *image), "max": (max_batch, *image)}


def build_engine(
    trt,
    onnx_paths: dict[str, Path],
    precision: str,
    image: tuple[int, int, int],
    max_batch: int,
    workspace_mb: int,
    timing_cache: Path,
) -> tuple[bytes, dict[str, Any]]:
    """Parse the fp32 or fp16 ONNX (as the version needs) and build a serialized engine;
    reuse and update the timing cache."""
    settings = build_settings(major_version(trt.__version__), precision)
    onnx_path = onnx_paths[settings["onnx"]]
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if settings["strongly_typed"] else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if settings["fp16_flag"]:
        config.set_flag(trt.BuilderFlag.FP16)
    shapes = profile_shapes(image, max_batch)
    profile = builder.create_optimization_profile()
    profile.set_shape(network.get_input(0).name, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(profile)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError("TensorRT build_serialized_network returned None (see the log above)")
    timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    info = {
        **engine_identity(trt),
        "onnx_path": str(onnx_path),
        "profile": {k: list(v) for k, v in shapes.items()},
        **settings,
    }
    return bytes(plan), info


def engine_identity(trt) -> dict[str, str]:
    """What a serialized engine is bound to: the TensorRT version and this GPU."""
    import torch

    major, minor = torch.cuda.get_device_capability()
    return {
        "tensorrt": trt.__version__,
        "gpu": torch.cuda.get_device_name(),
        "compute_capability": f"{major}.{minor}",
    }


def check_engine_matches(recorded: dict[str, Any], current: dict[str, str], engine_path: Path) -> list[str]:
    """Refuse an engine built for another TensorRT version or GPU architecture (it would not
    deserialize, or run wrongly); return warnings for softer differences (another GPU model
    of the same architecture runs it, tuned for the other card)."""
    from visionops.errors import VisionOpsError

    fatal = [
        f"{key} {recorded.get(key, 'unrecorded')} (this machine: {current[key]})"
        for key in ("tensorrt", "compute_capability")
        if recorded.get(key) != current[key]
    ]
    if fatal:
        raise VisionOpsError(
            f"TensorRT engine {engine_path} was built for " + ", ".join(fatal),
            "rebuild it on this machine: `dvc repro --force export` (or use the .onnx beside it)",
        )
    if recorded.get("gpu") != current["gpu"]:
        return [f"{engine_path} was tuned on {recorded.get('gpu')}, running on {current['gpu']}"]
    return []


def read_engine_info(engine_path: Path) -> dict[str, Any]:
    """The JSON sidecar `write_engine` wrote; an engine without one cannot be trusted."""
    from visionops.errors import VisionOpsError
    from visionops.io import read_json

    sidecar = Path(engine_path).with_name(Path(engine_path).name + ".json")
    if not sidecar.is_file():
        raise VisionOpsError(
            f"TensorRT engine {engine_path} has no {sidecar.name} recording its TensorRT version and GPU",
            "rebuild it with the export stage: `dvc repro --force export`",
        )
    return read_json(sidecar)


def deserialize_engine(trt, plan: bytes):
    """A runnable ICudaEngine from serialized bytes (None from TensorRT becomes an error)."""
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)
    if engine is None:
        raise RuntimeError("TensorRT could not deserialize the engine (see the log above)")
    return engine


def run_engine(trt, engine, inputs):
    """Run the CUDA tensor `inputs` (uint8 NHWC for the deployable graph) through the
    deserialized `engine`; returns a float32 CUDA tensor of logits. Every output gets a buffer
    (TensorRT needs an address for each); the deployable graph's embedding is not returned."""
    import torch

    from visionops.export.classifier import LOGITS

    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    input_name = next(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
    output_names = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
    context.set_input_shape(input_name, tuple(inputs.shape))
    context.set_tensor_address(input_name, inputs.contiguous().data_ptr())
    outputs = {}
    for name in output_names:
        shape = tuple(context.get_tensor_shape(name))
        outputs[name] = torch.empty(shape, dtype=torch.float32, device=inputs.device)
        context.set_tensor_address(name, outputs[name].data_ptr())
    stream = torch.cuda.current_stream()
    if not context.execute_async_v3(stream.cuda_stream):
        raise RuntimeError("TensorRT execute_async_v3 failed")
    stream.synchronize()
    return outputs.get(LOGITS, outputs[output_names[0]])


def write_engine(plan: bytes, info: dict[str, Any], engine_path: Path) -> None:
    """Write the engine and its JSON metadata (engine_path + '.json') atomically."""
    from visionops.io import atomic_path, write_json

    with atomic_path(engine_path) as tmp:
        tmp.write_bytes(plan)
    write_json(Path(engine_path).with_name(Path(engine_path).name + ".json"), info)
