"""compress: structured channel pruning + fine-tune (models/pruned.pt), and INT8 static
quantization of the pruned network: models/pruned_int8.onnx (U8S8, fast on x86 CPUs) and
models/pruned_int8_tensorrt.onnx (symmetric S8S8 Q/DQ of the deployable uint8 graph, the form
TensorRT consumes). Measures accuracy, size, parameters, MACs and latency of every variant
against fp32 PyTorch eager: reports/compress.json, reports/compress.md and
reports/metrics/compress.json (the metric: INT8 and pruned+INT8 accuracy, pruned MACs ratio).
Reads params: compress, train.
"""

from pathlib import Path

from visionops.cli.stage import run_stage
from visionops.compression.build import Outputs, build_and_measure
from visionops.paths import (
    COMPRESS_METRICS,
    COMPRESS_REPORT,
    COMPRESS_TABLE,
    MODEL,
    PREPARED,
    PRUNED,
    PRUNED_INT8,
    PRUNED_INT8_TENSORRT,
    RUN,
)

OUTPUTS = Outputs(PRUNED, PRUNED_INT8, PRUNED_INT8_TENSORRT)
# what `dvc exp show` compares: accuracy and MACs move with an experiment; speedups and sizes
# are timings or barely move, and stay in reports/compress.json and MLflow
COMPARED = ("int8_acc", "pruned_int8_acc", "pruned_macs_fewer")


def main(args) -> None:
    import tempfile

    from visionops.compression.report import markdown_table
    from visionops.compression.variants import flat_metrics
    from visionops.config import dump, flatten, load_params
    from visionops.io import read_json, write_json, write_metrics, write_text
    from visionops.tracking.record import StageLog
    from visionops.tracking.track import track

    params = load_params(args.params, "compress", "train", "tracking")
    run = read_json(RUN)  # before any work: a missing or damaged run.json fails fast
    with tempfile.TemporaryDirectory(prefix="visionops-compress-") as workdir:
        report = build_and_measure(
            MODEL, PREPARED, OUTPUTS, params["compress"], params["train"], Path(workdir)
        )
    write_json(COMPRESS_REPORT, report)
    write_metrics(COMPRESS_METRICS, {k: report["summary"][k] for k in COMPARED})
    write_text(COMPRESS_TABLE, markdown_table(report["variants"]))
    values = StageLog(
        params=flatten(dump({"compress": params["compress"]})),
        metrics=flat_metrics(report["variants"], report["latency_batch"]),
        artifact_dirs={"table": "compression", "report": "compression"},
    )
    track("compress", run, {"table": COMPRESS_TABLE, "report": COMPRESS_REPORT}, values, params["tracking"])
    print(f"compress:\n{COMPRESS_TABLE.read_text()}")


if __name__ == "__main__":
    run_stage("compress", __doc__, main)
