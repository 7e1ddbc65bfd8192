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


def main(args) -> None:
    import mlflow

    from visionops.augment.prepared import load_prepared, to_model_input
    from visionops.config import dump, flatten, load_params
    from visionops.io import read_json, write_json
    from visionops.tracking import registry
    from visionops.tracking.runs import log_params, open_run, project_root

    params = load_params(args.params, "register")
    cfg = params["register"]
    record = read_json(RUN)
    metrics, export, validation = (
        read_json(EVAL),
        read_json(EXPORT),
        read_json(VALIDATION / "summary.json"),
    )
    data = load_prepared(PREPARED)
    example = to_model_input(data.test["x"][:4], data.meta)
    with open_run(record, project_root(), "register"):
        log_params(record["run_id"], flatten(dump(params)))
        mlflow.log_metrics(
            {
                "validation_rows": validation["rows"],
                "validation_critical_failed": validation["failed"]["critical"],
            }
        )
        mlflow.set_tag("validation.success", str(validation["success"]).lower())
        mlflow.log_artifact(str(VALIDATION / "summary.json"), "validation")
        mlflow.log_artifacts(str(VALIDATION / "data_docs"), "validation/data_docs")
        mlflow.log_artifact(str(PREVIEW), "augment")
        for name in ("dvc.yaml", "params.yaml", "dvc.lock"):  # how to reproduce this run
            if Path(name).is_file():
                mlflow.log_artifact(name, "pipeline")
        logged = registry.log_onnx_model(ONNX, example)

    decision = registry.decide(
        cfg.gate_metric,
        float(metrics[cfg.gate_metric]),
        cfg.min_delta,
        registry.current_champion(cfg.model_name, cfg.gate_metric),
        validation_ok=bool(validation["success"]),
        parity_ok=bool(export["parity"]["passed"]),
    )
    tags = {
        "run_id": record["run_id"],
        "validation.success": str(validation["success"]).lower(),
        "export.parity": str(export["parity"]["passed"]).lower(),
        **{f"metric.{k}": str(v) for k, v in metrics.items()},
    }
    description = (
        f"{data.meta['source']} classifier, {cfg.gate_metric}={decision.value:.4f}; "
        f"run {record['run_id']}; gate: {'; '.join(decision.reasons)}"
    )
    version = registry.register_version(logged.model_uri, cfg.model_name, tags, description)
    registry.apply_aliases(cfg.model_name, version.version, decision)
    aliases = [registry.CANDIDATE] + ([registry.CHAMPION] if decision.promote else [])
    write_json(
        REPORT,
        {
            "model_name": cfg.model_name,
            "version": int(version.version),
            "model_uri": logged.model_uri,
            "aliases": aliases,
            "promoted": decision.promote,
            "decision": registry.decision_record(decision),
        },
    )
    verdict = "promoted to champion" if decision.promote else "not promoted"
    reasons = "; ".join(decision.reasons)
    print(f"register: {cfg.model_name} v{version.version} -> {', '.join(aliases)}; {verdict}: {reasons}")


if __name__ == "__main__":
    run_stage("register", __doc__, main)
