"""validate: manifest of every image in data/raw + Great Expectations suites over it.

Writes data/validated/ (manifest.csv, meta.json), reports/validation/ (summary.json metric,
results.json, Data Docs HTML) and fails on any critical check, after writing everything.
Reads params: validate.
"""

from pathlib import Path

from visionops.stage import run_stage

RAW = Path("data/raw")
VALIDATED = Path("data/validated")
REPORTS = Path("reports/validation")


def main(args) -> None:
    import tempfile

    from visionops.config import dump, load_params
    from visionops.errors import VisionOpsError
    from visionops.io import read_json, write_json
    from visionops.validation.manifest import build_manifest, class_counts
    from visionops.validation.report import check_details, failure_message, summarize
    from visionops.validation.suite import copy_data_docs, run_suites

    params = load_params(args.params, "validate")
    source = read_json(RAW / "source.json")
    classes = source["classes"]
    manifest = build_manifest(RAW)
    with tempfile.TemporaryDirectory(prefix="visionops-gx-") as workdir:
        results, full, site = run_suites(
            manifest, class_counts(manifest, classes), params["validate"], classes, Path(workdir)
        )
        docs = copy_data_docs(site, REPORTS / "data_docs")
    summary = summarize(results, manifest)
    VALIDATED.mkdir(parents=True, exist_ok=True)
    manifest.to_csv(VALIDATED / "manifest.csv", index=False)
    write_json(
        VALIDATED / "meta.json",
        {"classes": classes, "source": source, "params": source["params"] | dump(params)},
    )
    write_json(REPORTS / "results.json", {"checks": check_details(results), "great_expectations": full})
    write_json(REPORTS / "summary.json", summary)
    failed = summary["failed"]
    print(
        f"validate: {summary['rows']} images, {summary['checks']} checks, failed {failed}; Data Docs: {docs}"
    )
    warnings = failure_message(results, "warning")
    if warnings:
        print(f"validate: warnings:\n{warnings}")
    if not summary["success"]:
        raise VisionOpsError(
            f"{failed['critical']} critical data check(s) failed:\n{failure_message(results)}",
            f"fix the data as listed above; full results in {REPORTS}/results.json and {docs}",
        )


if __name__ == "__main__":
    run_stage("validate", __doc__, main)
