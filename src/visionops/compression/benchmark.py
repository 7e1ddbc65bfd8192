"""Build every deployable variant and measure it the same way against fp32 PyTorch eager.

Variants: fp32 eager, fp32 ONNX Runtime, INT8 ONNX Runtime, pruned eager, pruned INT8 (CPU
form). The pruned INT8 in TensorRT form (symmetric S8S8, the deployable uint8 NHWC graph,
source of `export.tensorrt_precision: int8` engines) is written too; only its accuracy is
reported, since its CPU latency says nothing about TensorRT.
Latency is the median of repeated timed runs after warm-up, all on CPU with one thread
count shared by PyTorch and ONNX Runtime.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from visionops.compression.prune import count_macs_params, prune_iteratively
from visionops.compression.quantize import quantize_int8
from visionops.config import CompressParams, TrainParams
from visionops.data.loader import ImageBatches, choose_resident
from visionops.data.prepared import Split, open_prepared, read_rows, to_model_input, train_val_split
from visionops.device import resolve_device
from visionops.export.deployable import Deployable, onnx_metadata
from visionops.export.onnx_export import export_onnx
from visionops.export.runtime import cpu_session, median_latency_ms, run_session
from visionops.models.serialize import load_model, save_model
from visionops.training.loop import fit

Predict = Callable[[np.ndarray], np.ndarray]


def compress_and_measure(
    model_path: Path,
    prepared_dir: Path,
    pruned_path: Path,
    int8_path: Path,
    int8_trt_path: Path,
    cfg: CompressParams,
    train_cfg: TrainParams,
    workdir: Path,
) -> dict[str, Any]:
    """Prune + fine-tune, quantize (CPU and TensorRT forms), and measure every variant."""
    data = open_prepared(prepared_dir)
    meta = data.meta
    baseline, payload = load_model(model_path)
    example = torch.from_numpy(to_model_input(data.test.x[:2], meta))

    def accuracy(predict: Predict) -> float:
        return _accuracy(predict, data.test, meta)

    pruned = copy.deepcopy(baseline)
    before: list[float] = []

    def finetune(model: torch.nn.Module) -> None:
        before.append(accuracy(_eager(model)))
        _finetune(model, data, meta, cfg, train_cfg, teacher=baseline if cfg.distill else None)

    steps = prune_iteratively(
        pruned,
        example,
        cfg.pruning_ratio,
        steps=cfg.pruning_steps,
        target_macs_ratio=cfg.target_macs_ratio,
        global_pruning=cfg.global_pruning,
        round_to=cfg.round_to,
        after_step=finetune,
    )
    pruned_acc_before = before[0] if before else accuracy(_eager(pruned))
    save_model(pruned_path, pruned, payload["spec"], payload["meta"] | {"pruning_steps": steps})

    raw_calibration = data.train.x[data.train.originals[: cfg.calibration_images]]
    calibration = to_model_input(raw_calibration, meta)
    fp32_onnx, int8_onnx, pruned_onnx, pruned_deployable = (
        workdir / "fp32.onnx",
        workdir / "int8.onnx",
        workdir / "pruned.onnx",
        workdir / "pruned_deployable.onnx",
    )
    export_onnx(baseline, example, fp32_onnx, 20, {})
    export_onnx(pruned, example, pruned_onnx, 20, {})
    quantize_int8(fp32_onnx, int8_onnx, calibration, "cpu")
    quantize_int8(pruned_onnx, int8_path, calibration, "cpu")
    # TensorRT form: the deployable graph (uint8 NHWC in, normalisation inside, task metadata),
    # so an engine built from it takes what `visionops predict` feeds any exported model.
    export_onnx(
        Deployable(pruned, meta["mean"], meta["std"]),
        torch.from_numpy(data.test.x[:2]),
        pruned_deployable,
        20,
        onnx_metadata(payload["meta"], meta["resize"]),
    )
    quantize_int8(pruned_deployable, int8_trt_path, raw_calibration, "tensorrt")

    threads = torch.get_num_threads()
    base_cost, pruned_cost = (
        count_macs_params(baseline, example),
        count_macs_params(pruned, example),
    )
    candidates = [
        ("fp32_eager", _eager(baseline), model_path, base_cost),
        ("fp32_onnxruntime", _ort(fp32_onnx, threads), fp32_onnx, base_cost),
        ("int8_onnxruntime", _ort(int8_onnx, threads), int8_onnx, base_cost),
        ("pruned_eager", _eager(pruned), pruned_path, pruned_cost),
        ("pruned_int8_onnxruntime", _ort(int8_path, threads), int8_path, pruned_cost),
    ]
    batch = to_model_input(data.test.x[: cfg.latency_batch_size], meta)
    variants = [
        {
            "variant": name,
            "accuracy": accuracy(predict),
            "parameters": cost[1],
            "macs": cost[0],
            "file_bytes": Path(path).stat().st_size,
            "latency_b1_ms": median_latency_ms(lambda p=predict: p(batch[:1]), cfg.latency_repeats),
            f"latency_b{len(batch)}_ms": median_latency_ms(lambda p=predict: p(batch), cfg.latency_repeats),
        }
        for name, predict, path, cost in candidates
    ]
    _add_ratios(variants, len(batch))
    return {
        "threads": threads,
        "latency_batch": len(batch),
        "pruning_ratio": cfg.pruning_ratio,
        "pruning_steps": steps,
        "target_macs_ratio": cfg.target_macs_ratio,
        "target_met": None if cfg.target_macs_ratio is None else _target_met(steps, cfg.target_macs_ratio),
        "distilled": cfg.distill,
        "pruned_accuracy_before_finetune": pruned_acc_before,
        "pruned_int8_tensorrt_form_accuracy": _accuracy(_ort(int8_trt_path, threads), data.test),
        "summary": _headline(variants, len(batch)),
        "variants": variants,
    }


def _target_met(steps: list[dict[str, float]], target: float) -> bool:
    met = bool(steps) and steps[-1]["macs_ratio"] <= target
    if not met:
        reached = steps[-1]["macs_ratio"] if steps else 1.0
        print(f"compress: warning: MACs ratio {reached:.3f} > target {target} (raise compress.pruning_ratio)")
    return met


def _finetune(model, data, meta, cfg: CompressParams, train_cfg: TrainParams, teacher=None) -> None:
    """Recover accuracy after pruning with the same loop the train stage uses (optionally
    distilling from the unpruned `teacher`)."""
    from visionops.training.distill import Distillation

    if cfg.finetune_epochs == 0:
        return
    setup = resolve_device(train_cfg.device, train_cfg.amp, train_cfg.channels_last)
    rows, _ = train_val_split(data.train, train_cfg.val_fraction, train_cfg.seed)
    resident = choose_resident(data.train.x.nbytes, setup.device, train_cfg.device_memory_budget_mb)
    train_set = ImageBatches(
        data.train.x, data.train.y, meta["mean"], meta["std"], setup.device, rows, resident
    )
    tune = train_cfg.model_copy(update={"epochs": cfg.finetune_epochs, "lr": cfg.finetune_lr})
    distill = None
    if teacher is not None:
        distill = Distillation(copy.deepcopy(teacher), cfg.distill_temperature, cfg.distill_alpha)
    fit(model, train_set, None, tune, setup, distill=distill)
    model.cpu().eval()


def _eager(model: torch.nn.Module) -> Predict:
    model = model.cpu().eval()

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return predict


def _ort(path: Path, threads: int) -> Predict:
    session = cpu_session(path, threads)
    return lambda x: run_session(session, x)


def _accuracy(predict: Predict, split: Split, meta: dict[str, Any] | None = None, batch: int = 256) -> float:
    """Top-1 accuracy over a split, one batch at a time: converted to model input with
    `meta`'s normalisation, or as uint8 NHWC images (deployable graphs) when `meta` is None."""
    correct = 0
    for start in range(0, len(split), batch):
        images = read_rows(split.x, np.arange(start, min(start + batch, len(split))))
        logits = predict(images if meta is None else to_model_input(images, meta))
        correct += int((logits.argmax(1) == split.y[start : start + batch]).sum())
    return correct / len(split)


def _add_ratios(variants: list[dict[str, Any]], batch: int) -> None:
    base = variants[0]
    for row in variants:
        row["speedup_b1"] = base["latency_b1_ms"] / row["latency_b1_ms"]
        row[f"speedup_b{batch}"] = base[f"latency_b{batch}_ms"] / row[f"latency_b{batch}_ms"]
        row["size_ratio"] = base["file_bytes"] / row["file_bytes"]
        row["macs_ratio"] = base["macs"] / row["macs"]
        row["accuracy_drop_pt"] = 100.0 * (base["accuracy"] - row["accuracy"])


def _headline(variants: list[dict[str, Any]], batch: int) -> dict[str, float]:
    """The few numbers `dvc metrics diff` compares: accuracy and gains (× faster at batch
    `batch`, × smaller file, × fewer MACs) of the INT8 and pruned+INT8 variants."""
    rows = {row["variant"]: row for row in variants}
    headline = {"pruned_macs_fewer": float(rows["pruned_eager"]["macs_ratio"])}
    for prefix, name in (("int8", "int8_onnxruntime"), ("pruned_int8", "pruned_int8_onnxruntime")):
        row = rows[name]
        headline |= {
            f"{prefix}_acc": float(row["accuracy"]),
            f"{prefix}_speedup": float(row[f"speedup_b{batch}"]),
            f"{prefix}_smaller": float(row["size_ratio"]),
        }
    return headline


def flat_metrics(report: dict[str, Any]) -> dict[str, float]:
    """Every variant's accuracy, latency and ratios as flat MLflow metric names."""
    batch = report["latency_batch"]
    variants = report["variants"]
    keys = (
        "accuracy",
        "latency_b1_ms",
        f"latency_b{batch}_ms",
        "speedup_b1",
        f"speedup_b{batch}",
        "size_ratio",
    )
    return {f"{row['variant']}_{key}": float(row[key]) for row in variants for key in keys}
