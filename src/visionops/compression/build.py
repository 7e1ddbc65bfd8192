"""The compress stage's work: prune + fine-tune, quantize (CPU and TensorRT forms), and
measure every variant against fp32 PyTorch eager. The stage script and
`benchmarks/compress_variants.py` both call `build_and_measure`."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple


class Outputs(NamedTuple):
    pruned: Path  # the pruned + fine-tuned PyTorch model
    int8: Path  # its INT8 ONNX, CPU form
    int8_tensorrt: Path  # its INT8 ONNX, TensorRT form (deployable graph)


def build_and_measure(model_path: Path, prepared: Path, out: Outputs, cfg, train_cfg, workdir: Path) -> dict:
    """Prune + fine-tune `model_path` on `prepared`, write the three `out` files, and return
    the report: every variant's accuracy, size, MACs and latency, and the headline summary."""
    import copy

    import torch

    from visionops.compression import variants
    from visionops.compression.prune import count_macs_params, prune_iteratively
    from visionops.data.prepared import open_prepared, to_model_input
    from visionops.models.serialize import load_model, save_model
    from visionops.training.finetune import finetune

    data = open_prepared(prepared)
    meta = data.meta.model_meta()
    baseline, payload = load_model(model_path)
    example = torch.from_numpy(to_model_input(data.test.x[:2], meta))
    pruned, before = copy.deepcopy(baseline), []

    def after_step(model: torch.nn.Module) -> None:
        before.append(variants.accuracy(variants.eager(model), data.test, meta))
        finetune(model, data, cfg, train_cfg, teacher=baseline if cfg.distill else None)

    steps = prune_iteratively(
        pruned,
        example,
        cfg.pruning_ratio,
        steps=cfg.pruning_steps,
        target_macs_ratio=cfg.target_macs_ratio,
        global_pruning=cfg.global_pruning,
        round_to=cfg.round_to,
        after_step=after_step,
    )
    save_model(out.pruned, pruned, payload["spec"], payload["meta"] | {"pruning_steps": steps})
    onnx = _quantized_variants(
        baseline, pruned, data, example, payload["meta"], cfg.calibration_images, out, workdir
    )
    threads = torch.get_num_threads()
    base_cost, pruned_cost = count_macs_params(baseline, example), count_macs_params(pruned, example)
    candidates = [
        variants.Variant("fp32_eager", variants.eager(baseline), model_path, base_cost),
        variants.Variant("fp32_onnxruntime", variants.onnx(onnx["fp32"], threads), onnx["fp32"], base_cost),
        variants.Variant("int8_onnxruntime", variants.onnx(onnx["int8"], threads), onnx["int8"], base_cost),
        variants.Variant("pruned_eager", variants.eager(pruned), out.pruned, pruned_cost),
        variants.Variant("pruned_int8_onnxruntime", variants.onnx(out.int8, threads), out.int8, pruned_cost),
    ]
    batch = to_model_input(data.test.x[: cfg.latency_batch_size], meta)
    rows = variants.measure(candidates, data.test, meta, batch, cfg.latency_repeats)
    return {
        "threads": threads,
        "latency_batch": len(batch),
        "pruning_ratio": cfg.pruning_ratio,
        "pruning_steps": steps,
        "target_macs_ratio": cfg.target_macs_ratio,
        "target_met": None if cfg.target_macs_ratio is None else _target_met(steps, cfg.target_macs_ratio),
        "distilled": cfg.distill,
        "pruned_accuracy_before_finetune": before[0] if before else rows[3]["accuracy"],
        "pruned_int8_tensorrt_form_accuracy": variants.accuracy(
            variants.onnx(out.int8_tensorrt, threads), data.test
        ),
        "summary": variants.headline(rows, len(batch)),
        "variants": rows,
    }


def _quantized_variants(
    baseline, pruned, data, example, model_meta, calibration_images, out, workdir
) -> dict:
    """fp32 and INT8 ONNX of the baseline (in `workdir`, to be measured), the pruned INT8 in
    CPU form and, from the pruned deployable graph (uint8 NHWC in, normalisation inside, task
    metadata), in TensorRT form, so an engine built from it takes what any exported model takes."""
    import numpy as np
    import torch

    from visionops.compression.quantize import quantize_int8
    from visionops.data.prepared import to_model_input
    from visionops.export.deployable import Deployable, onnx_metadata
    from visionops.export.onnx_export import export_onnx

    meta = data.meta.model_meta()
    raw = data.train.x[data.train.originals[:calibration_images]]
    calibration = to_model_input(raw, meta)
    paths = {name: workdir / f"{name}.onnx" for name in ("fp32", "int8", "pruned", "pruned_deployable")}
    export_onnx(baseline, example, paths["fp32"], 20, {})
    export_onnx(pruned, example, paths["pruned"], 20, {})
    quantize_int8(paths["fp32"], paths["int8"], calibration, "cpu")
    quantize_int8(paths["pruned"], out.int8, calibration, "cpu")
    deployable = Deployable(pruned, meta["mean"], meta["std"])
    metadata = onnx_metadata(model_meta, data.meta.resize)
    pixels = torch.from_numpy(np.array(data.test.x[:2]))  # a copy: the memory map is read-only
    export_onnx(deployable, pixels, paths["pruned_deployable"], 20, metadata)
    quantize_int8(paths["pruned_deployable"], out.int8_tensorrt, raw, "tensorrt")
    return paths


def _target_met(steps: list[dict[str, float]], target: float) -> bool:
    met = bool(steps) and steps[-1]["macs_ratio"] <= target
    if not met:
        reached = steps[-1]["macs_ratio"] if steps else 1.0
        print(f"compress: warning: MACs ratio {reached:.3f} > target {target} (raise compress.pruning_ratio)")
    return met
