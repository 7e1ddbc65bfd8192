"""Validate a class-folder dataset end to end: manifest, duplicate flags, optional quarantine,
both GX suites. The validate stage and the tests both go through `validate_dataset`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from visionops.config import ValidateParams
from visionops.validation.manifest import build_manifest, class_counts, flag_duplicates
from visionops.validation.suite import CheckResult, run_suites


@dataclass
class Outcome:
    """Everything validation produced: the manifest (with `quarantined`), the quarantine
    list, per-check results, GX's full results and the Data Docs site folder."""

    manifest: pd.DataFrame
    quarantine: pd.DataFrame
    results: list[CheckResult]
    gx_results: dict[str, Any]
    data_docs: Path


def validate_dataset(
    root: Path,
    cfg: ValidateParams,
    classes: list[str],
    workdir: Path,
    progress: bool = True,
    cache: Path | None = None,
) -> Outcome:
    """Describe every file under `root` (reusing `cache`), quarantine bad ones if configured,
    and run the suites."""
    near = cfg.near_duplicate_distance
    manifest = flag_duplicates(build_manifest(root, progress, cache), near)
    quarantine = quarantine_rows(manifest) if cfg.on_bad_image == "quarantine" else _no_quarantine()
    manifest["quarantined"] = manifest["path"].isin(quarantine["path"])
    kept = manifest[~manifest["quarantined"]].drop(columns=["leaked", "dup_in_split", "near_leaked"])
    checked = flag_duplicates(kept, near)
    results, gx_results, site = run_suites(checked, class_counts(checked, classes), cfg, classes, workdir)
    return Outcome(manifest, quarantine, results, gx_results, site)


def quarantine_rows(manifest: pd.DataFrame) -> pd.DataFrame:
    """Files to exclude, with the reason: undecodable ones, and the test-split copy of any
    image that is also in train (the train copy is kept). Nothing is deleted."""
    undecodable = manifest[~manifest["decode_ok"].astype(bool)].assign(
        reason=lambda f: "undecodable: " + f["error"]
    )
    leaked = manifest[manifest["leaked"] & (manifest["split"] == "test")].assign(
        reason="also in train (same decoded pixels)"
    )
    return pd.concat([undecodable, leaked])[["path", "split", "label", "reason"]].reset_index(drop=True)


def _no_quarantine() -> pd.DataFrame:
    return pd.DataFrame(columns=["path", "split", "label", "reason"])
