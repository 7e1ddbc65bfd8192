"""validate: manifest of every image in data/raw (its shards) + Great Expectations suites over it.

Writes data/validated/ (descriptions/: what was learnt about each image, by content, so that the
next run decodes only new or changed images, a part per version, never rewritten; flags.csv: the
flagged images; meta.json; see validation/validated.py),
reports/validation/ (summary.json,
results.json, quarantine.csv, data_docs/index.html: every expectation's outcome on one
self-contained page, and gallery.html: thumbnails of every flagged
image) and reports/metrics/validate.json (the metric: failed check counts), and fails on any
critical check, after writing everything. With validate.on_bad_image: quarantine,
undecodable files, every copy of a picture filed under two labels and test copies of train
images are excluded (listed, never deleted).
Reads params: validate.
"""

import os
from pathlib import Path

from visionops.cli.stage import run_stage
from visionops.paths import (
    RAW,
    VALIDATE_CONFIRMED,
    VALIDATE_METRICS,
    VALIDATE_STAMPS,
    VALIDATED,
    VALIDATION_DOCS,
    VALIDATION_GALLERY,
    VALIDATION_QUARANTINE,
    VALIDATION_RESULTS,
    VALIDATION_SUMMARY,
)


def main(args) -> None:
    import tempfile

    from visionops.config import dump, load_params
    from visionops.data.shards import COMPACT_ENV, RawImages
    from visionops.errors import VisionOpsError
    from visionops.io import (
        file_sha256,
        publish_dir,
        read_json,
        staging_dir_for,
        write_csv,
        write_json,
        write_metrics,
    )
    from visionops.validation import data_docs, descriptions, validated
    from visionops.validation.gallery import write_gallery
    from visionops.validation.manifest import file_keys
    from visionops.validation.report import check_details, failure_message, summarize
    from visionops.validation.run import validate_dataset

    params = load_params(args.params, "validate")
    source = read_json(RAW / "source.json")
    classes = source["classes"]
    raw = RawImages(RAW)
    cache = descriptions.load(VALIDATED)
    checked = read_json(VALIDATE_STAMPS) if VALIDATE_STAMPS.is_file() else {}
    keys, stamps = file_keys(raw, checked)  # a shard checked before is trusted; others are read
    write_json(VALIDATE_STAMPS, stamps)
    confirmed = set(read_json(VALIDATE_CONFIRMED)) if VALIDATE_CONFIRMED.is_file() else set()
    with tempfile.TemporaryDirectory(prefix="visionops-gx-") as workdir:
        outcome = validate_dataset(
            raw, params["validate"], classes, Path(workdir), known=cache.rows, keys=keys, confirmed=confirmed
        )
    write_json(VALIDATE_CONFIRMED, sorted(outcome.confirmed))
    docs = data_docs.write(outcome.gx_results, outcome.results, VALIDATION_DOCS)
    results, manifest = outcome.results, outcome.manifest
    summary = summarize(results, manifest) | {"quarantined": len(outcome.quarantine)}
    staging = staging_dir_for(VALIDATED)
    write_csv(staging / validated.FLAGS_FILE, validated.flagged(manifest))  # the flagged rows only
    max_dead = source["params"]["data"].get("max_dead_fraction", 1.0)
    max_dead = -1.0 if os.environ.get(COMPACT_ENV) == "1" else max_dead  # `visionops compact`: now
    parts = descriptions.save(staging, outcome.descriptions, cache, max_dead)  # unchanged parts carried
    write_json(
        staging / "meta.json",
        {
            "classes": classes,
            "source": source,
            "params": source["params"] | dump(params),
            "index_sha256": validated.index_sha256(raw),  # augment checks both
            "flags_sha256": file_sha256(staging / validated.FLAGS_FILE),
            descriptions.META_KEY: parts,  # the next validate checks each
        },
    )
    publish_dir(staging, VALIDATED)
    write_csv(VALIDATION_QUARANTINE, outcome.quarantine)
    write_json(
        VALIDATION_RESULTS, {"checks": check_details(results), "great_expectations": outcome.gx_results}
    )
    write_json(VALIDATION_SUMMARY, summary)
    write_gallery(outcome.manifest, raw, VALIDATION_GALLERY)
    failed = summary["failed"]
    write_metrics(VALIDATE_METRICS, {"data_critical": failed["critical"], "data_warnings": failed["warning"]})
    print(
        f"validate: {summary['rows']} images, {summary['checks']} checks, failed {failed}; "
        f"Data Docs: {docs}; flagged images: {VALIDATION_GALLERY}"
    )
    if len(outcome.quarantine):
        print(f"validate: quarantined {len(outcome.quarantine)} file(s), listed in {VALIDATION_QUARANTINE}")
    for severity in ("warning", "info"):
        if message := failure_message(results, severity):
            print(f"validate: {severity}s:\n{message}")
    if not summary["success"]:
        raise VisionOpsError(
            f"{failed['critical']} critical data check(s) failed:\n{failure_message(results)}",
            f"fix the data as listed above; full results in {VALIDATION_RESULTS} and {docs}",
        )


if __name__ == "__main__":
    run_stage("validate", __doc__, main)
