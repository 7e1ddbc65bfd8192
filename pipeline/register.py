"""register: log the exported ONNX model to the model's MLflow run, register a new version,
move alias `candidate` to it, and `champion` only when the gate passes: validation clean,
export parity passed, and on this run's test images the model beats the champion (scored here,
after checking it solves the same task) or, with no champion yet, the trivial baseline, by
register.min_delta with an exact McNemar p-value <= register.max_p_value. Also attaches the
data reports (validation summary, Data Docs and flagged-image gallery, augmentation preview)
to the run; the version carries the ONNX model, its monitoring reference (models/reference) and
the reports the gate decided on (evaluation, export, validation summary), all sealed by its file
manifest.
Writes reports/register.json and reports/metrics/register.json (the metric: promoted 0/1,
the gate metric's difference and its p-value). Reads params: register, tracking.
"""

from visionops.cli.stage import run_stage
from visionops.paths import (
    AUGMENT_PREVIEW,
    EVALUATE_REPORT,
    EXPORT_REPORT,
    ONNX,
    PIPELINE_FILES,
    PREDICTIONS,
    PREPARED,
    REFERENCE,
    REGISTER_METRICS,
    REGISTER_REPORT,
    RUN,
    VALIDATION_DOCS,
    VALIDATION_GALLERY,
    VALIDATION_SUMMARY,
)


def main(args) -> None:
    import tempfile
    from pathlib import Path

    from visionops.config import dump, flatten, load_params
    from visionops.data.prepared import open_prepared
    from visionops.gate.champion import gate_evidence, predicted_indices
    from visionops.gate.custody import Report, verify_chain
    from visionops.gate.decision import decide, decision_record
    from visionops.io import read_csv, read_json, write_json, write_metrics
    from visionops.serving.packaging import pyfunc_spec
    from visionops.tracking.record import Registration, StageLog
    from visionops.tracking.registry import find_champion
    from visionops.tracking.track import track

    params = load_params(args.params, "register", "tracking")
    cfg = params["register"]
    run = read_json(RUN)  # every input before any work: a missing or damaged one fails fast
    export, validation, metrics = (
        read_json(EXPORT_REPORT),
        read_json(VALIDATION_SUMMARY),
        read_json(EVALUATE_REPORT),
    )
    # the model that was trained, evaluated and exported is one, and the ONNX loads: else nothing
    # reaches MLflow
    hashes = verify_chain(
        Report(RUN, run), Report(EVALUATE_REPORT, metrics), Report(EXPORT_REPORT, export), ONNX, PREDICTIONS
    )
    data = open_prepared(PREPARED)
    challenger = predicted_indices(read_csv(PREDICTIONS), data, PREDICTIONS)
    with tempfile.TemporaryDirectory(prefix="visionops-champion-") as tmp:
        reachable, champion = find_champion(cfg.model_name, Path(tmp), params["tracking"])
        # unreachable: no evidence, the registration is deferred and re-running register decides
        comparison = (
            gate_evidence(data, challenger, champion, cfg.model_name, cfg.gate_metric) if reachable else None
        )
    validation_ok, parity_ok = bool(validation["success"]), bool(export["parity"]["passed"])
    decision = decide(comparison, cfg.min_delta, cfg.max_p_value, validation_ok, parity_ok)
    files = {
        "summary": VALIDATION_SUMMARY,
        "data_docs": VALIDATION_DOCS,
        "gallery": VALIDATION_GALLERY,
        "preview": AUGMENT_PREVIEW,
        **{path.name: path for path in PIPELINE_FILES if path.is_file()},  # how to reproduce it
        "onnx": ONNX,
        "reference": REFERENCE,  # inside the model version: what `visionops monitor` compares against
        "evaluation": EVALUATE_REPORT,  # the evidence, sealed inside the version with the summary
        "export_report": EXPORT_REPORT,
    }
    values = StageLog(
        params=flatten(dump({"register": cfg})),
        metrics={
            "validation_rows": validation["rows"],
            "validation_critical_failed": validation["failed"]["critical"],
        },
        tags={"validation.success": str(validation["success"]).lower()} | hashes,
        artifact_dirs={
            "summary": "validation",
            "data_docs": "validation/data_docs",
            "gallery": "validation",
            "preview": "augment",
            **dict.fromkeys((path.name for path in PIPELINE_FILES), "pipeline"),
        },
        registration=Registration(
            settings=dump({"register": cfg})["register"],
            evaluation={k: v for k, v in metrics.items() if not k.endswith("_sha256")},
            hashes=hashes,
            validation_ok=validation_ok,
            parity_ok=parity_ok,
            decision=decision_record(decision),
            pyfunc=pyfunc_spec(data.test.x[0]),
            source=data.meta.source,
        ),
    )
    record = track("register", run, files, values, params["tracking"])
    evidence = comparison or {}
    write_metrics(
        REGISTER_METRICS,
        {
            "promoted": bool(record and record["promoted"]),
            "gate_delta": evidence["challenger"] - evidence["reference"] if evidence else None,
            "p_value": evidence.get("p_value"),
        },
    )
    if record is None:  # MLflow unreachable, deferred: the gate runs when the journal is replayed
        ids = {"run_id": run.get("run_id"), "pending_id": run.get("pending_id")}
        record = {"model_name": cfg.model_name, "deferred": True, "promoted": False, **ids}
        write_json(REGISTER_REPORT, record)  # `visionops sync` replaces it with the decision
        print("register: deferred until `python -m visionops sync` (MLflow unreachable)")
        return
    write_json(REGISTER_REPORT, record)
    decision = record["decision"]
    verdict = "promoted to champion" if record["promoted"] else "not promoted"
    print(
        f"register: {cfg.model_name} v{record['version']} -> {', '.join(record['aliases'])}; "
        f"{verdict}: {'; '.join(decision.get('reasons', []))}"
    )


if __name__ == "__main__":
    run_stage("register", __doc__, main)
