"""register: log the exported ONNX model to the model's MLflow run, register a new version,
move alias `candidate` to it, and `champion` only when the gate passes: validation clean,
export parity passed, and on this run's test images the model beats the champion (scored here,
after checking it solves the same task) or, with no champion yet, the trivial baseline, by
register.min_delta with an exact McNemar p-value <= register.max_p_value. Also attaches the
data reports (validation summary, Data Docs and flagged-image gallery, augmentation preview)
to the run.
Writes reports/registry.json and reports/metrics/register.json (the metric: promoted 0/1,
the gate metric's difference and its p-value). Reads params: register, tracking.
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
PREDICTIONS = Path("reports/confusion.csv")  # evaluate's per-image (actual, predicted), test order
REPORT = Path("reports/registry.json")
METRICS = Path("reports/metrics/register.json")
PIPELINE_FILES = ("dvc.yaml", "params.yaml", "dvc.lock")


def main(args) -> None:
    from visionops.config import dump, flatten, load_params
    from visionops.data.prepared import open_prepared
    from visionops.evaluation.gate import decide, decision_record
    from visionops.export.custody import Report, verify_chain
    from visionops.export.packaging import pyfunc_spec
    from visionops.io import read_csv, read_json, write_json, write_metrics
    from visionops.tracking.track import track

    params = load_params(args.params, "register", "tracking")
    cfg = params["register"]
    run = read_json(RUN)  # every input before any work: a missing or damaged one fails fast
    export, validation, metrics = read_json(EXPORT), read_json(VALIDATION / "summary.json"), read_json(EVAL)
    # the model that was trained, evaluated and exported is one, and the ONNX loads: else nothing
    # reaches MLflow
    hashes = verify_chain(Report(RUN, run), Report(EVAL, metrics), Report(EXPORT, export), ONNX, PREDICTIONS)
    data = open_prepared(PREPARED)
    challenger = predicted_indices(read_csv(PREDICTIONS), data)
    comparison = paired_evidence(cfg, params["tracking"], data, challenger)
    validation_ok, parity_ok = bool(validation["success"]), bool(export["parity"]["passed"])
    decision = decide(comparison, cfg.min_delta, cfg.max_p_value, validation_ok, parity_ok)
    files = {
        "summary": VALIDATION / "summary.json",
        "data_docs": VALIDATION / "data_docs",
        "gallery": VALIDATION / "gallery.html",
        "preview": PREVIEW,
        **{name: Path(name) for name in PIPELINE_FILES if Path(name).is_file()},  # how to reproduce it
        "onnx": ONNX,
    }
    values = {
        "params": flatten(dump({"register": cfg})),
        "metrics": {
            "validation_rows": validation["rows"],
            "validation_critical_failed": validation["failed"]["critical"],
        },
        "tags": {"validation.success": str(validation["success"]).lower()} | hashes,
        "artifact_dirs": {
            "summary": "validation",
            "data_docs": "validation/data_docs",
            "gallery": "validation",
            "preview": "augment",
            **dict.fromkeys(PIPELINE_FILES, "pipeline"),
        },
        "register": dump({"register": cfg})["register"],
        "eval": {k: v for k, v in metrics.items() if not k.endswith("_sha256")},
        "hashes": hashes,
        "validation_ok": validation_ok,
        "parity_ok": parity_ok,
        "decision": decision_record(decision),
        "pyfunc": pyfunc_spec(data.test.x[0]),
        "source": data.meta["source"],
    }
    record = track("register", run, files, values, params["tracking"])
    evidence = comparison or {}
    write_metrics(
        METRICS,
        {
            "promoted": bool(record and record["promoted"]),
            "gate_delta": evidence["challenger"] - evidence["reference"] if evidence else None,
            "p_value": evidence.get("p_value"),
        },
    )
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


def predicted_indices(predictions, data):
    """Evaluate's predicted labels as class indices, checked against the test split."""
    from visionops.errors import VisionOpsError

    index = {name: i for i, name in enumerate(data.classes)}
    names = predictions["predicted"].astype(str)
    if len(names) != len(data.test) or not names.isin(list(index)).all():
        raise VisionOpsError(
            f"{PREDICTIONS} does not match data/prepared ({len(names)} rows for {len(data.test)} test "
            "images, or unknown class names): it is from another run",
            "re-run `dvc repro` so evaluate and register see the same data",
        )
    return names.map(index).to_numpy()


def paired_evidence(cfg, tracking, data, challenger):
    """The gate's evidence: this model vs the champion (scored here on the same test images) or,
    with no champion, vs always answering the most frequent training class. None when MLflow
    is unreachable (the registration is deferred; re-running register decides)."""
    import tempfile

    import numpy as np

    from visionops.evaluation.champion import check_same_task, predict_labels
    from visionops.evaluation.paired import majority_class, paired_comparison
    from visionops.export.classifier import OnnxClassifier
    from visionops.tracking.availability import apply_http_settings, is_unavailable
    from visionops.tracking.registry import download_champion
    from visionops.tracking.runs import configure, project_root
    from visionops.tracking.track import raise_store_problem

    uri = configure(project_root())
    apply_http_settings(tracking)
    with tempfile.TemporaryDirectory(prefix="visionops-champion-") as tmp:
        try:
            champion = download_champion(cfg.model_name, Path(tmp))
        except Exception as exc:
            if not is_unavailable(exc):
                raise_store_problem(exc, uri)
            print(f"register: MLflow at {uri} is unreachable: the champion cannot be compared now")
            return None
        if champion is None:
            version = None
            reference = np.full(len(data.test), majority_class(data.train.y[data.train.originals]))
        else:
            version, onnx_path = champion
            model = OnnxClassifier(onnx_path)
            check_same_task(model.task, data.meta, cfg.model_name, version)
            reference = predict_labels(model, data.test.x)
    comparison = paired_comparison(data.test.y, challenger, reference, cfg.gate_metric, len(data.classes))
    return comparison | {"champion_version": version}


if __name__ == "__main__":
    run_stage("register", __doc__, main)
