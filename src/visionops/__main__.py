"""`python -m visionops` / `visionops`: small helpers around the pipeline's outputs."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from visionops.paths import REGISTER_REPORT


def registry_summary(path: Path) -> str:
    """Markdown: challenger vs champion on the same test images (a table), then whether the
    champion moved and why."""
    if not path.is_file():
        return f"No registry decision: {path} does not exist (the register stage did not run)."
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return _summary(record)
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as exc:
        cause = "not valid JSON" if isinstance(exc, ValueError | UnicodeDecodeError) else f"no {exc}"
        return (
            f"No registry decision: {path} is damaged ({cause}); re-run the register stage "
            "(`dvc repro register`) or restore it with `dvc checkout`."
        )


def _summary(record: dict) -> str:
    if record.get("deferred"):
        return (
            f"- model: `{record['model_name']}`: registration **deferred** (MLflow was unreachable); "
            "run `python -m visionops sync` to register it, then "
            "`dvc repro --single-item --force register` to decide the champion"
        )
    decision = record["decision"]
    lines = []
    evidence = decision.get("comparison")
    if evidence:
        version = evidence.get("champion_version")
        against = f"champion v{version}" if version else "trivial baseline (most frequent class)"
        lines += [
            f"| on the same {evidence['n']} test images | this model (v{record['version']}) | {against} |",
            "|---|---:|---:|",
            f"| `{evidence['metric']}` | **{evidence['challenger']:.4f}** | {evidence['reference']:.4f} |",
            f"| right where the other is wrong | {evidence['challenger_only']} "
            f"| {evidence['reference_only']} |",
            f"| exact McNemar p (one-sided) | {evidence['p_value']:.3g} | |",
            "",
        ]
    moved = "**promoted to champion**" if record["promoted"] else "**not promoted**"
    lines += [
        f"`{record['model_name']}` v{record['version']} ({', '.join(record['aliases'])}): {moved}: "
        + "; ".join(decision["reasons"])
    ]
    return "\n".join(lines)


# Subcommands whose module `visionops.cli.<name>` has add_arguments(parser) and run(args).
COMMANDS = {
    "predict": "classify image files with an exported or registered model, into a CSV",
    "monitor": "test recent images against the registered model's reference: ok, drift or degraded",
    "serve": "serve a registered model over HTTP (mlflow models serve), its files checked first",
    "preset": "put a preset's values (params/*.yaml) into params.yaml, comments kept",
    "tune": "search hyperparameters (Optuna) on the prepared data; trials in MLflow",
    "compact": "re-pack data/raw now, reclaiming the bytes removed images hold (then `dvc repro`)",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="visionops", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    summary = commands.add_parser("registry-summary", help="print reports/register.json as Markdown")
    summary.add_argument("path", type=Path, nargs="?", default=REGISTER_REPORT)
    commands.add_parser(
        "sync",
        help="replay what stages could not log while MLflow was unreachable (.visionops/tracking/pending)",
    )
    for name, summary_line in COMMANDS.items():
        module = importlib.import_module(f"visionops.cli.{name}")
        module.add_arguments(
            commands.add_parser(
                name,
                help=summary_line,
                description=module.__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
        )
    args = parser.parse_args(argv)
    if args.command == "registry-summary":
        print(registry_summary(args.path))
    elif args.command == "sync":
        return _sync()
    elif args.command in COMMANDS:
        return _command(args.command, args)
    return 0


def _command(name: str, args: argparse.Namespace) -> int:
    """Run `visionops.cli.<name>.run(args)`; a VisionOpsError is one line on stderr and exit 1."""
    from visionops.errors import VisionOpsError

    try:
        return importlib.import_module(f"visionops.cli.{name}").run(args)
    except VisionOpsError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 1


def _sync() -> int:
    """Replay the journal into the tracking store; print what was registered."""
    from visionops.config import load_params
    from visionops.errors import VisionOpsError, first_line
    from visionops.tracking.availability import apply_http_settings, is_unavailable, store_problem
    from visionops.tracking.runs import project_root, tracking_uri
    from visionops.tracking.track import sync

    try:
        if Path("params.yaml").is_file():  # the project's retry settings, not MLflow's minutes
            apply_http_settings(load_params(Path("params.yaml"), "tracking")["tracking"])
        replayed = sync()
    except VisionOpsError as exc:
        print(f"sync: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        problem = store_problem(exc, tracking_uri(project_root()))
        if problem is not None:
            print(f"sync: error: {problem}", file=sys.stderr)
            return 1
        if not is_unavailable(exc):
            raise
        reason = first_line(exc)
        print(f"sync: MLflow is still unreachable ({reason}); nothing was lost, try again", file=sys.stderr)
        return 1
    for stage, result in replayed:
        if stage == "register" and result:
            aliases = ", ".join(result["aliases"])
            print(f"sync: registered {result['model_name']} v{result['version']} -> {aliases}")
            if not result["decision"].get("comparison"):
                print(f"sync: champion not decided: {'; '.join(result['decision']['reasons'])}")
            _replace_deferred_report(REGISTER_REPORT, result)
    print(f"sync: {len(replayed)} deferred stage log(s) replayed")
    return 0


def _replace_deferred_report(report: Path, result: dict) -> None:
    """The register stage wrote `deferred` for this run: put the replayed decision there."""
    from visionops.io import read_json, write_json
    from visionops.tracking.journal import resolved_run_id
    from visionops.tracking.runs import project_root

    if not report.is_file():
        return
    current = read_json(report)
    if current.get("deferred") and resolved_run_id(project_root(), current) == result["run_id"]:
        write_json(report, result)
        print(f"sync: updated {report} with the decision (record it with `dvc commit register`)")


if __name__ == "__main__":
    sys.exit(main())
