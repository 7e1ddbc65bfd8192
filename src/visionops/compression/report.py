"""The compression table as Markdown (job output, MLflow artifact)."""

from __future__ import annotations

from typing import Any


def markdown_table(variants: list[dict[str, Any]]) -> str:
    """One row per variant; ratios are against the first row (fp32 eager)."""
    columns = list(variants[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row[c]) for c in columns) + " |" for row in variants]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and value >= 10_000:
        return f"{value:,}"
    return str(value)
