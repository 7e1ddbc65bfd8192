"""Validate data/raw end to end: manifest, duplicate flags, optional quarantine,
both GX suites. The validate stage and the tests both go through `validate_dataset`."""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from visionops.config import ValidateParams
from visionops.data.shards import RawImages
from visionops.validation.descriptions import Descriptions
from visionops.validation.manifest import (
    build_manifest,
    class_counts,
    confirmations,
    flag_duplicates,
    flag_label_conflicts,
    flagged_images,
    flags_hold,
)
from visionops.validation.quality import flag_quality
from visionops.validation.suite import EXAMPLES, CheckResult, run_suites
from visionops.validation.validated import COLUMNS


@dataclass
class Outcome:
    """Everything validation produced: the manifest (with `quarantined`), the quarantine
    list, per-check results, GX's full results (the Data Docs page is rendered from them), and
    the descriptions of these images by content (see validation/descriptions.py)."""

    manifest: pd.DataFrame
    quarantine: pd.DataFrame
    results: list[CheckResult]
    gx_results: dict[str, Any]
    descriptions: Descriptions
    confirmed: set[str]  # manifest.confirmations of the flagged images: described from their bytes


def validate_dataset(
    raw: RawImages,
    cfg: ValidateParams,
    classes: list[str],
    workdir: Path,
    progress: bool = True,
    known: Descriptions | None = None,
    keys: list[str] | None = None,
    confirmed: AbstractSet[str] = frozenset(),
) -> Outcome:
    """Describe every image of `raw`, known by `keys` (its file sha256: `manifest.file_keys`;
    default the index's); those in `known` are not decoded again, but a sample of them and every
    flagged one are (unless `confirmed` before: manifest.flags_hold), to check the cache.
    Quarantine bad ones if configured, and run the suites."""
    described, descriptions = build_manifest(raw, progress, known, keys=keys)
    manifest = flag_all(described, cfg)
    held = flags_hold(manifest, raw, descriptions, confirmed=confirmed) if known else None
    if known and held is None:  # the cache decided no flag alone
        described, descriptions = build_manifest(raw, progress, keys=keys)
        manifest = flag_all(described, cfg)
    held = held if held is not None else set(confirmations(flagged_images(manifest), descriptions).values())
    quarantine = quarantine_rows(manifest) if cfg.on_bad_image == "quarantine" else _no_quarantine()
    manifest["quarantined"] = manifest["path"].isin(quarantine["path"])
    checked = manifest.drop(columns="quarantined")
    if len(quarantine):  # flags of what remains can change (a leak's other copy left): again
        checked = flag_all(manifest[~manifest["quarantined"]][list(COLUMNS)], cfg)
    results, gx_results = run_suites(checked, class_counts(checked, classes), cfg, classes, workdir)
    name_conflict_pairs(results, checked)
    return Outcome(manifest, quarantine, results, gx_results, descriptions, held)


def flag_all(manifest: pd.DataFrame, cfg: ValidateParams) -> pd.DataFrame:
    """Every per-image flag the suites check: duplicates and leakage, label conflicts, and
    quality outliers judged against these very images."""
    near = cfg.near_duplicate_distance
    flagged = flag_label_conflicts(flag_duplicates(manifest, near), near, cfg.min_contrast)
    return flag_quality(flagged, cfg)


def name_conflict_pairs(results: list[CheckResult], manifest: pd.DataFrame) -> None:
    """A label conflict is a pair: list it as "path (label) ~ other path (other label)"."""
    conflicts = manifest[manifest["label_conflict"]]
    pairs = sorted(f"{row.path} ({row.label}) ~ {row.conflicts_with}" for row in conflicts.itertuples())
    for result in results:
        if result.check == "label conflict":
            result.examples = pairs[:EXAMPLES]


def quarantine_rows(manifest: pd.DataFrame) -> pd.DataFrame:
    """Files to exclude, with the reason: undecodable ones, every copy of a picture filed under
    two labels (which label is right is for a person to say), and the test-split copy of any
    image that is also in train (the train copy is kept). Nothing is deleted."""
    undecodable = manifest[~manifest["decode_ok"].astype(bool)].assign(
        reason=lambda f: "undecodable: " + f["error"]
    )
    leaked = manifest[manifest["leaked"] & (manifest["split"] == "test")].assign(
        reason="also in train (same decoded pixels)"
    )
    conflicts = manifest[manifest["label_conflict"]].assign(
        reason=lambda f: "label conflict: the same picture as " + f["conflicts_with"]
    )
    listed = pd.concat([undecodable, conflicts, leaked]).drop_duplicates("path")
    return listed[["path", "split", "label", "reason"]].reset_index(drop=True)


def _no_quarantine() -> pd.DataFrame:
    return pd.DataFrame(columns=["path", "split", "label", "reason"])
