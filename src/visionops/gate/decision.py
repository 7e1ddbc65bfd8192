"""The promotion gate: pure logic over the paired evidence (gate/paired.py).

The register stage decides here and hands tracking the decision as a plain record, so the
gate can change without touching what other stages depend on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class GateDecision:
    """Whether the new version becomes champion, and every reason that decided it.
    `comparison` is the paired evidence (see gate/paired.py), None when it is missing."""

    promote: bool
    metric: str
    value: float | None
    champion_version: str | None
    champion_value: float | None
    reasons: list[str] = field(default_factory=list)
    comparison: dict[str, Any] | None = None


def decide(
    comparison: dict[str, Any] | None,
    min_delta: float,
    max_p_value: float,
    validation_ok: bool,
    parity_ok: bool,
) -> GateDecision:
    """Pure gate logic: validation and export parity passed, and on the same test images the
    challenger beats the reference (the champion, or with none the trivial baseline) by at least
    min_delta with a paired test p-value at most max_p_value."""
    if comparison is None:
        decision = GateDecision(False, "", None, None, None)
        decision.reasons.append(
            "no paired comparison (MLflow was unreachable when register ran): re-run "
            "`dvc repro --single-item --force register` to decide"
        )
        return decision
    version = comparison.get("champion_version")
    metric, value, reference = comparison["metric"], comparison["challenger"], comparison["reference"]
    decision = GateDecision(False, metric, value, version, reference if version else None, [], comparison)
    if not validation_ok:
        decision.reasons.append("data validation had critical failures")
    if not parity_ok:
        decision.reasons.append("ONNX export parity check failed")
    against = f"champion v{version}" if version else "the trivial baseline (always the most frequent class)"
    delta, p_value = value - reference, comparison["p_value"]
    better = delta > 0 and delta >= min_delta
    significant = p_value <= max_p_value
    verdict = "beats" if better and significant else "does not beat"
    decision.reasons.append(
        f"{metric} {value:.4f} {verdict} {against} {reference:.4f} on the same {comparison['n']} test "
        f"images ({delta:+.4f}, need >= {min_delta} and > 0); right only here {comparison['challenger_only']}"
        f", only there {comparison['reference_only']}: McNemar p = {p_value:.3g} (need <= {max_p_value})"
    )
    decision.promote = better and significant and validation_ok and parity_ok
    return decision


def decision_record(decision: GateDecision) -> dict[str, Any]:
    """JSON-able form of the decision: what the registry and reports/register.json keep."""
    return asdict(decision)
