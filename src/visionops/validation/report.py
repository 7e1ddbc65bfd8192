"""Summarise check results: the summary JSON and the message a person reads."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pandas as pd

from visionops.validation.suite import CheckResult


def summarize(results: list[CheckResult], manifest: pd.DataFrame) -> dict[str, Any]:
    """reports/validation/summary.json: row counts, failures per severity, every check's outcome."""
    failed = [r for r in results if not r.success]
    return {
        "rows": len(manifest),
        "rows_per_split": {str(k): int(v) for k, v in manifest["split"].value_counts().sort_index().items()},
        "undecodable": int((~manifest["decode_ok"].astype(bool)).sum()),
        "leaked": int(manifest["leaked"].sum()),
        "duplicates_in_split": int(manifest["dup_in_split"].sum()),
        "near_duplicates_across_splits": int(manifest["near_leaked"].sum()),
        "label_conflicts": int(manifest["label_conflict"].sum()),
        "checks": len(results),
        "failed": {sev: sum(r.severity == sev for r in failed) for sev in ("critical", "warning", "info")},
        "success": not any(r.severity == "critical" for r in failed),
        "passed": {f"{r.check} [{r.severity}]": r.success for r in results},
    }


def check_details(results: list[CheckResult]) -> list[dict[str, Any]]:
    """Every check with its severity, outcome, count and example paths (for results.json)."""
    return [asdict(r) for r in results]


def failure_message(results: list[CheckResult], severity: str = "critical") -> str:
    """Lines naming each failed check of `severity`, how many rows, examples, and the fix."""
    lines = []
    for r in results:
        if r.success or r.severity != severity:
            continue
        found = f"{r.unexpected_count} row(s)" if r.observed is None else f"observed {r.observed}"
        lines.append(f"- {r.check} [{r.severity}, {r.expectation}]: {found}")
        if r.examples:
            lines.append(f"    e.g. {', '.join(r.examples)}")
        if r.fix:
            lines.append(f"    fix: {r.fix}")
    return "\n".join(lines)
