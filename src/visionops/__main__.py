"""`python -m visionops` / `visionops`: small helpers around the pipeline's outputs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def registry_summary(path: Path) -> str:
    """Markdown lines saying which version was registered and whether champion moved, and why."""
    if not path.is_file():
        return f"No registry decision: {path} does not exist (the register stage did not run)."
    record = json.loads(path.read_text())
    decision = record["decision"]
    moved = "**moved to this version**" if record["promoted"] else "**not moved**"
    champion = decision.get("champion_version")
    previous = f"v{champion} ({decision['champion_value']:.4f})" if champion is not None else "none"
    return "\n".join(
        [
            f"- model: `{record['model_name']}` version **{record['version']}**, "
            f"aliases: {', '.join(record['aliases'])}",
            f"- gate metric `{decision['metric']}` = {decision['value']:.4f}; previous champion: {previous}",
            f"- champion {moved}: {'; '.join(decision['reasons'])}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="visionops", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    summary = commands.add_parser("registry-summary", help="print reports/registry.json as Markdown")
    summary.add_argument("path", type=Path, nargs="?", default=Path("reports/registry.json"))
    args = parser.parse_args(argv)
    if args.command == "registry-summary":
        print(registry_summary(args.path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
