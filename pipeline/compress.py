"""compress: structured channel pruning + fine-tune (models/pruned.pt), and INT8 static
quantization of the pruned network: models/pruned_int8.onnx (U8S8, fast on x86 CPUs) and
models/pruned_int8_tensorrt.onnx (symmetric S8S8 Q/DQ, the form TensorRT consumes). Measures accuracy, size,
parameters, MACs and latency of every variant against fp32 PyTorch eager:
reports/compress.json, reports/compress.md and reports/metrics/compress.json (the metric:
INT8 and pruned+INT8 accuracy, speedup and size ratio, pruned MACs ratio). Reads params: compress, train.
"""

from pathlib import Path

from visionops.stage import run_stage

PREPARED = Path("data/prepared")
MODEL = Path("models/model.pt")
RUN = Path("models/run.json")
PRUNED = Path("models/pruned.pt")
INT8 = Path("models/pruned_int8.onnx")
INT8_TENSORRT = Path("models/pruned_int8_tensorrt.onnx")
REPORT = Path("reports/compress.json")
TABLE = Path("reports/compress.md")
METRICS = Path("reports/metrics/compress.json")


def main(args) -> None:
    import tempfile

    from visionops.compression.benchmark import compress_and_measure, flat_metrics
    from visionops.compression.report import markdown_table
    from visionops.config import dump, flatten, load_params
    from visionops.io import read_json, write_json, write_metrics, write_text
    from visionops.tracking.track import track

    params = load_params(args.params, "compress", "train", "tracking")
    run = read_json(RUN)  # before any work: a missing or damaged run.json fails fast
    with tempfile.TemporaryDirectory(prefix="visionops-compress-") as workdir:
        report = compress_and_measure(
            MODEL, PREPARED, PRUNED, INT8, INT8_TENSORRT, params["compress"], params["train"], Path(workdir)
        )
    write_json(REPORT, report)
    write_metrics(METRICS, report["summary"])
    write_text(TABLE, markdown_table(report["variants"]))
    values = {
        "params": flatten(dump({"compress": params["compress"]})),
        "metrics": flat_metrics(report),
        "artifact_dirs": {"table": "compression", "report": "compression"},
    }
    track("compress", run, {"table": TABLE, "report": REPORT}, values, params["tracking"])
    print(f"compress:\n{TABLE.read_text()}")


if __name__ == "__main__":
    run_stage("compress", __doc__, main)
