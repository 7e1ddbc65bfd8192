"""export: models/model.pt -> models/model.onnx, the deployable graph: uint8 NHWC images in
(dynamic batch), normalisation inside, class names/size/channels/resize in its metadata,
checked by onnx.checker; and models/model_fp16.onnx (same I/O, fp16 compute, for GPU runtimes),
numeric parity vs PyTorch on real test images (a mismatch fails the stage), latency, and a
TensorRT engine where TensorRT and CUDA exist (models/model.engine + .json recording the
TensorRT version and GPU; int8 from compress's Q/DQ ONNX; otherwise an explicit `skipped`
record).
Writes reports/export.json (parity and latency: MLflow compares them; they are not DVC metrics,
which hold what an experiment changes). Reads params: export.
"""

from visionops.cli.stage import run_stage
from visionops.paths import (
    ENGINE,
    EXPORT_REPORT,
    MODEL,
    ONNX,
    ONNX_FP16,
    PREPARED,
    PRUNED_INT8_TENSORRT,
    RUN,
)


def main(args) -> None:

    import numpy as np

    from visionops.config import dump, flatten, load_params
    from visionops.data.prepared import open_prepared, read_rows
    from visionops.errors import VisionOpsError
    from visionops.export.checks import export_and_check
    from visionops.io import file_sha256, read_json, write_json
    from visionops.models.serialize import load_model
    from visionops.models.tta import with_tta
    from visionops.tracking.record import StageLog
    from visionops.tracking.track import track

    params = load_params(args.params, "export", "tracking")
    cfg = params["export"]
    run = read_json(RUN)  # before any work: a missing or damaged run.json fails fast
    model, payload = load_model(MODEL)
    model = with_tta(model, payload["spec"])  # model.tta's views go inside the graph
    data = open_prepared(PREPARED)
    images = read_rows(data.test.x, np.arange(min(cfg.parity_images, len(data.test))))
    report = export_and_check(
        model,
        payload["meta"],
        images,
        ONNX,
        ONNX_FP16,
        ENGINE,
        cfg,
        data.meta.resize,
        PRUNED_INT8_TENSORRT,
    )
    report |= {"model_sha256": file_sha256(MODEL), "onnx_sha256": file_sha256(ONNX)}  # what register checks
    write_json(EXPORT_REPORT, report)
    par, trt = report["parity"], report["tensorrt"]
    values = StageLog(
        params=flatten(dump({"export": cfg})),
        metrics={
            "onnx_max_abs_diff": par["max_abs_diff"],
            "onnx_top1_agreement": par["top1_agreement"],
            "onnx_latency_b1_ms": report["latency_b1_ms"]["onnxruntime"],
        },
        tags={"export.parity": str(par["passed"]).lower(), "export.tensorrt": trt["status"]},
        artifact_dirs={"report": "export"},
    )
    track("export", run, {"report": EXPORT_REPORT}, values, params["tracking"])
    print(
        f"export: {ONNX} parity max|diff| {par['max_abs_diff']:.2e} (atol {par['atol']}), "
        f"top-1 agreement {par['top1_agreement']:.4f}; TensorRT: {trt['status']}"
        + (f" ({trt['reason']})" if "reason" in trt else "")
    )
    fp16 = report["fp16"]["parity"]
    print(f"export: {ONNX_FP16} max|diff| {fp16['max_abs_diff']:.2e} (atol {fp16['atol']})")
    if not fp16["passed"]:
        raise VisionOpsError(
            f"FP16 ONNX differs from PyTorch by {fp16['max_abs_diff']:.3g} > atol {fp16['atol']}",
            "the model may overflow in fp16; raise export.fp16_parity_atol only if justified",
        )
    if not par["passed"]:
        raise VisionOpsError(
            f"ONNX Runtime output differs from PyTorch: max |diff| {par['max_abs_diff']:.3g} > "
            f"atol {par['atol']} or top-1 agreement {par['top1_agreement']:.4f} < 1",
            "check the exported graph (unsupported op?) or raise export.parity_atol if justified",
        )
    if trt["status"] != "built" and cfg.require_tensorrt:
        raise VisionOpsError(
            f"TensorRT engine {trt['status']}: {trt['reason']}",
            "run on a machine with CUDA and TensorRT, or set export.require_tensorrt: false",
        )


if __name__ == "__main__":
    run_stage("export", __doc__, main)
