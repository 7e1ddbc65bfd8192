"""register: log the exported ONNX model to the model's MLflow run, register a new version,
move alias `candidate` to it, and `champion` only when the gate passes (validation clean,
export parity passed, gate metric beats the champion by min_delta). Also attaches the data
reports (validation summary + Data Docs, augmentation preview) to the run.
Writes reports/registry.json. Reads params: register.
"""

from pathlib import Path

from visionops.stage import run_stage

PREPARED = Path("data/prepared")
RUN = Path("models/run.json")
ONNX = Path("models/model.onnx")
EVAL = Path("reports/eval.json")
EXPORT = Path("reports/export.json")
VALIDATION = Path("reports/validation")
PREVIEW = Path("reports/augment_preview.png")
REPORT = Path("reports/registry.json")
PIPELINE_FILES = ("dvc.yaml", "params.yaml", "dvc.lock")


def main(args) -> None:
    from visionops.config import dump, flatten, load_params
    from visionops.io import read_json, write_json
    from visionops.tracking.track import track

    params = load_params(args.params, "register", "tracking")
    cfg = params["register"]
    run = read_json(RUN)  # every input before any work: a missing or damaged one fails fast
    export, validation, metrics = read_json(EXPORT), read_json(VALIDATION / "summary.json"), read_json(EVAL)
    files = {
        "summary": VALIDATION / "summary.json",
        "data_docs": VALIDATION / "data_docs",
        "preview": PREVIEW,
        **{name: Path(name) for name in PIPELINE_FILES if Path(name).is_file()},  # how to reproduce it
        "onnx": ONNX,
        "prepared": PREPARED,
    }
    values = {
        "params": flatten(dump({"register": cfg})),
        "metrics": {
            "validation_rows": validation["rows"],
            "validation_critical_failed": validation["failed"]["critical"],
        },
        "tags": {"validation.success": str(validation["success"]).lower()},
        "artifact_dirs": {
            "summary": "validation",
            "data_docs": "validation/data_docs",
            "preview": "augment",
            **dict.fromkeys(PIPELINE_FILES, "pipeline"),
        },
        "register": dump({"register": cfg})["register"],
        "eval": metrics,
        "validation_ok": bool(validation["success"]),
        "parity_ok": bool(export["parity"]["passed"]),
    }
    record = track("register", run, files, values, params["tracking"])
    if record is None:  # MLflow unreachable, deferred: the gate runs when the journal is replayed
        ids = {"run_id": run.get("run_id"), "pending_id": run.get("pending_id")}
        record = {"model_name": cfg.model_name, "deferred": True, "promoted": False, **ids}
        write_json(REPORT, record)  # `visionops sync` replaces it with the decision
        print("register: deferred until `python -m visionops sync` (MLflow unreachable)")
        return
    write_json(REPORT, record)
    decision = record["decision"]
    verdict = "promoted to champion" if record["promoted"] else "not promoted"
    print(
        f"register: {cfg.model_name} v{record['version']} -> {', '.join(record['aliases'])}; "
        f"{verdict}: {'; '.join(decision.get('reasons', []))}"
    )


if __name__ == "__main__":
    run_stage("register", __doc__, main)
