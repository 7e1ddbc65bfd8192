"""The validation's Data Docs: one self-contained HTML page of every expectation Great
Expectations ran, rendered here from its results instead of by GX's own site builder.

GX's pages put file names into the HTML unescaped (a file named `<img src=x onerror=...>.png`
ran script in the team's MLflow UI, where the page is logged), embed a timestamp and a random
context id (so the same data never gave the same bytes, and DVC saw a change every run), and
load scripts, styles and a logo from servers outside the machine. This page escapes every
value, holds nothing that varies between runs, and loads nothing from anywhere.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from visionops.validation.suite import CheckResult

PAGE = "index.html"
SHOWN = 20  # unexpected values and paths listed per expectation; the count says the rest
STYLE = (
    "body{font:14px sans-serif;margin:1em;max-width:1200px}table{border-collapse:collapse;width:100%}"
    "th,td{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3}.ok{color:#176b2c}.failed{color:#b00020;font-weight:bold}"
    "code{font-size:12px;word-break:break-all}.sev-critical{background:#fde7ea}"
)


def render(gx_results: dict[str, Any], checks: list[CheckResult]) -> str:
    """The page for GX's results per asset (`run_suites`' second value) and our checks."""
    failed = [c for c in checks if not c.success]
    counts = ", ".join(f"{sum(c.severity == s for c in failed)} {s}" for s in ("critical", "warning", "info"))
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta http-equiv='Content-Security-Policy' "
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>visionops: data validation</title><style>{STYLE}</style></head><body>",
        "<h1>Data validation</h1>",
        f"<p>{len(checks)} checks, {len(failed)} failed ({counts}). Rendered from Great Expectations' "
        "results; every check's full record is in results.json.</p>",
    ]
    for asset, result in sorted(gx_results.items()):
        parts += _suite(asset, result)
    return "\n".join(parts) + "\n</body></html>\n"


def write(gx_results: dict[str, Any], checks: list[CheckResult], folder: Path) -> Path:
    """Write the page as `folder`/index.html, the folder swapped in whole; its path."""
    from visionops.io import publish_dir, staging_dir_for, write_text

    staging = staging_dir_for(folder)
    write_text(staging / PAGE, render(gx_results, checks))
    publish_dir(staging, folder)
    return folder / PAGE


def _suite(asset: str, result: dict[str, Any]) -> list[str]:
    stats = result.get("statistics", {})
    rows = [
        f"<h2>{_e(result.get('suite_name', asset))} <small>(on {_e(asset)})</small></h2>",
        f"<p>{_e(stats.get('successful_expectations', '?'))} of "
        f"{_e(stats.get('evaluated_expectations', '?'))} expectations met</p>",
        "<table><tr><th>check</th><th>severity</th><th>outcome</th><th>expectation</th>"
        "<th>observed</th><th>unexpected</th></tr>",
    ]
    for item in result.get("results", []):
        rows.append(_row(item))
    return [*rows, "</table>"]


def _row(item: dict[str, Any]) -> str:
    config, found = item.get("expectation_config", {}), item.get("result") or {}
    meta = config.get("meta") or {}
    severity = str(meta.get("severity", "warning"))
    outcome = "<span class='ok'>met</span>" if item.get("success") else "<span class='failed'>failed</span>"
    kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k not in ("batch_id",)}
    arguments = json.dumps(kwargs, sort_keys=True, default=str)
    expectation = f"{_e(config.get('type', '?'))}<br><code>{_e(arguments)}</code>"
    observed = found.get("observed_value")
    return (
        f"<tr class='sev-{_e(severity)}'><td>{_e(meta.get('check', config.get('type', '?')))}"
        f"{_fix(meta)}</td><td>{_e(severity)}</td><td>{outcome}</td><td>{expectation}</td>"
        f"<td>{'' if observed is None else _e(_short(observed))}</td><td>{_unexpected(found)}</td></tr>"
    )


def _unexpected(found: dict[str, Any]) -> str:
    count = found.get("unexpected_count")
    if not count:
        return ""
    percent = found.get("unexpected_percent")
    head = f"{_e(count)} row(s)" + (f" ({float(percent):.2f} %)" if percent is not None else "")
    paths = [row.get("path") for row in found.get("unexpected_index_list") or [] if isinstance(row, dict)]
    values = paths or found.get("partial_unexpected_list") or []
    shown = "".join(f"<li><code>{_e(_short(v))}</code></li>" for v in values[:SHOWN])
    more = f"<li>… {len(values) - SHOWN} more</li>" if len(values) > SHOWN else ""
    return f"{head}<ul>{shown}{more}</ul>"


def _fix(meta: dict[str, Any]) -> str:
    return f"<br><small>fix: {_e(meta['fix'])}</small>" if meta.get("fix") else ""


def _short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit] + " …"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
