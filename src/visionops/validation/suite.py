"""The Great Expectations 1.x suites over the manifest, run through a checkpoint with Data Docs.

Each expectation carries meta {check, severity, fix}; the stage fails only on `critical`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from visionops.config import ValidateParams

MANIFEST_SUITE = "manifest_suite"
COUNTS_SUITE = "class_counts_suite"
EXAMPLES = 5


@dataclass
class CheckResult:
    """One expectation's outcome, in the words the stage prints."""

    check: str
    severity: str
    success: bool
    expectation: str
    unexpected_count: int
    examples: list[str] = field(default_factory=list)
    fix: str = ""
    observed: Any = None  # GX's observed value for table-level checks (e.g. the class count)


def manifest_expectations(cfg: ValidateParams, classes: list[str]) -> list[Any]:
    """Expectations over one-row-per-image."""
    import great_expectations.expectations as gxe

    def meta(check: str, severity: str, fix: str) -> dict[str, str]:
        return {"check": check, "severity": severity, "fix": fix}

    return [
        *(
            gxe.ExpectColumnValuesToNotBeNull(
                column=col,
                meta=meta(f"{col} present", "critical", "rebuild the manifest (re-run download)"),
            )
            for col in ("path", "split", "label")
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="decode_ok",
            value_set=[True],
            description="Every file decodes as an image.",
            meta=meta(
                "every file decodes",
                "critical",
                "delete or replace the listed files in data/raw (or re-run `dvc repro -f download`)",
            ),
        ),
        gxe.ExpectColumnUniqueValueCountToBeBetween(
            column="label",
            min_value=2,
            description="At least two classes: a classifier with one class learns nothing.",
            meta=meta(
                "at least two classes",
                "critical",
                "add a folder per class (data/raw/<split>/<class>/), or point data.path at the "
                "folder that holds the class folders",
            ),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="label",
            value_set=classes,
            description="Every label is one of the dataset's classes.",
            meta=meta("labels in class set", "critical", "move the images into a known class folder"),
        ),
        gxe.ExpectColumnDistinctValuesToEqualSet(
            column="split",
            value_set=["train", "test"],
            description="Exactly the splits train and test are present.",
            meta=meta("both splits present", "critical", "data/raw must hold train/ and test/"),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="leaked",
            value_set=[False],
            description="No image (same decoded pixels) is in more than one split.",
            meta=meta(
                "no train/test leakage",
                cfg.leakage_severity,
                "delete one copy of each listed image (it leaks the test set into training), "
                "or set validate.on_bad_image: quarantine",
            ),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="near_leaked",
            value_set=[False],
            description=(
                f"No image is within {cfg.near_duplicate_distance} bits of perceptual hash "
                "of an image in another split (near-duplicate leakage)."
            ),
            meta=meta(
                "no near-duplicates across splits",
                cfg.near_duplicate_severity,
                "look at the listed pairs: drop one of each if it is the same picture re-encoded, "
                "resized or lightly edited; or lower validate.near_duplicate_distance",
            ),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="dup_in_split",
            value_set=[False],
            description="No image appears twice within its split.",
            meta=meta("no duplicates within a split", cfg.duplicate_severity, "delete the extra copies"),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="label_conflict",
            value_set=[False],
            description=(
                "No picture is filed under two labels, in any split (identical pixels, or a "
                f"perceptual hash within {cfg.near_duplicate_distance} bits)."
            ),
            meta=meta(
                "label conflict",
                cfg.label_conflict_severity,
                "decide which label is right for each listed pair and delete the other copy, or set "
                "validate.on_bad_image: quarantine (every conflicting copy is then excluded)",
            ),
        ),
        *(
            gxe.ExpectColumnValuesToBeInSet(
                column=column,
                value_set=[False],
                description=f"{rule}, and within {cfg.quality_outlier_z} robust standard deviations "
                "of this dataset's median (measured on a 128 px grey thumbnail).",
                meta=meta(check, cfg.quality_severity, fix),
            )
            for column, check, rule, fix in (
                (
                    "too_dark_or_bright",
                    "not too dark or bright",
                    f"Mean grey level within [{cfg.min_brightness}, {cfg.max_brightness}]",
                    "look at the listed images; or raise validate.quality_outlier_z, or widen "
                    "validate.min_brightness/max_brightness",
                ),
                (
                    "nearly_blank",
                    "not nearly blank",
                    f"Grey standard deviation at least {cfg.min_contrast}",
                    "remove blank images; or raise validate.quality_outlier_z or lower validate.min_contrast",
                ),
                (
                    "very_blurry",
                    "not very blurry",
                    "Variance of the Laplacian (sharpness) not far below the dataset's own",
                    "remove or replace the blurry images; or raise validate.quality_outlier_z",
                ),
            )
        ),
        gxe.ExpectColumnUniqueValueCountToBeBetween(
            column="mode",
            min_value=1,
            max_value=1,
            description="All images share one channel mode (the augment stage converts them anyway).",
            meta=meta("one channel mode", cfg.mode_severity, "informational: mixed modes are converted"),
        ),
        *(
            gxe.ExpectColumnValuesToBeBetween(
                column=col,
                min_value=low,
                max_value=high,
                description=f"Image {col} within [{low}, {high}] px.",
                meta=meta(
                    f"{col} in bounds",
                    cfg.size_severity,
                    f"resize or drop the images, or widen validate.min_{col}/max_{col}",
                ),
            )
            for col, low, high in (
                ("width", cfg.min_width, cfg.max_width),
                ("height", cfg.min_height, cfg.max_height),
            )
        ),
    ]


def counts_expectations(cfg: ValidateParams) -> list[Any]:
    """Expectations over one-row-per-(split, class) counts."""
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToBeBetween(
            column="count",
            min_value=cfg.min_images_per_class,
            description=f"Every class has at least {cfg.min_images_per_class} images per split.",
            meta={
                "check": "min images per class",
                "severity": "critical",
                "fix": "add images to the listed split/class folders, or lower validate.min_images_per_class",
            },
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="imbalance",
            max_value=cfg.max_imbalance,
            description=f"No class more than {cfg.max_imbalance}x the smallest class of its split.",
            meta={
                "check": "class balance",
                "severity": cfg.imbalance_severity,
                "fix": "add images to small classes (or weight the loss), or raise validate.max_imbalance",
            },
        ),
    ]


def run_suites(
    manifest: pd.DataFrame,
    counts: pd.DataFrame,
    cfg: ValidateParams,
    classes: list[str],
    workdir: Path,
) -> tuple[list[CheckResult], dict[str, Any]]:
    """Run both suites, each through its own checkpoint, in a GX file context under `workdir`.

    Returns (check results, GX's full JSON results per asset); validation/data_docs.py renders
    the page from them (GX's own site is not built: see that module).
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="file", project_root_dir=str(workdir))
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = _get_or_add(ctx.data_sources, "pandas", lambda: ctx.data_sources.add_pandas("pandas"))
    plan = [
        ("manifest", MANIFEST_SUITE, manifest_expectations(cfg, classes), manifest),
        ("class_counts", COUNTS_SUITE, counts_expectations(cfg), counts),
    ]
    results: list[CheckResult] = []
    full: dict[str, Any] = {}
    for asset_name, suite_name, expectations, frame in plan:
        checkpoint = _checkpoint(ctx, source, asset_name, suite_name, expectations)
        outcome = checkpoint.run(batch_parameters={"dataframe": frame})
        for run in outcome.run_results.values():
            results.extend(_check_result(r) for r in run.results)
            full[asset_name] = without_run_identity(run.to_json_dict())
    return results, full


VOLATILE_KEYS = {"id", "run_id", "validation_id", "checkpoint_id", "validation_time", "ge_load_time"}


def without_run_identity(value: Any) -> Any:
    """GX's results minus what differs on every run (run ids, random ids, times), so the same
    data and params give the same results.json bytes (a DVC output)."""
    if isinstance(value, dict):
        return {k: without_run_identity(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [without_run_identity(v) for v in value]
    return value


def _checkpoint(ctx, source, asset_name: str, suite_name: str, expectations: list[Any]):
    """Get or create asset, batch definition, suite, validation definition and checkpoint."""
    import great_expectations as gx

    try:
        asset = source.get_asset(asset_name)
    except LookupError:
        asset = source.add_dataframe_asset(name=asset_name)
    batch_name = f"{asset_name}_whole"
    batch = _get_or_add_batch(asset, batch_name)
    suite = _get_or_add(ctx.suites, suite_name, lambda: ctx.suites.add(gx.ExpectationSuite(name=suite_name)))
    for expectation in expectations:
        suite.add_expectation(expectation)
    vd_name = f"{asset_name}_vd"
    definition = _get_or_add(
        ctx.validation_definitions,
        vd_name,
        lambda: ctx.validation_definitions.add(
            gx.ValidationDefinition(name=vd_name, data=batch, suite=suite)
        ),
    )
    return _get_or_add(
        ctx.checkpoints,
        f"validate_{asset_name}",
        lambda: ctx.checkpoints.add(
            gx.Checkpoint(
                name=f"validate_{asset_name}",
                validation_definitions=[definition],
                result_format={
                    "result_format": "COMPLETE",
                    "unexpected_index_column_names": ["path"],
                },
            )
        ),
    )


def _get_or_add_batch(asset, name: str):
    try:
        return asset.get_batch_definition(name)
    except Exception:
        return asset.add_batch_definition_whole_dataframe(name=name)


def _get_or_add(collection, name: str, add):
    """GX 1.x `add_*` raises on re-runs and `add_or_update_*` drops assets: get, else add."""
    try:
        return collection.get(name)
    except Exception:
        return add()


def _check_result(result) -> CheckResult:
    config = result.expectation_config
    meta = config.meta or {}
    detail = result.result or {}
    index_list = detail.get("unexpected_index_list") or []
    examples = [str(row.get("path")) for row in index_list if isinstance(row, dict)]
    return CheckResult(
        check=meta.get("check", config.type),
        severity=meta.get("severity", "warning"),
        success=bool(result.success),
        expectation=config.type,
        unexpected_count=int(detail.get("unexpected_count") or 0),
        examples=sorted(dict.fromkeys(examples))[:EXAMPLES],
        fix=meta.get("fix", ""),
        observed=detail.get("observed_value"),
    )
