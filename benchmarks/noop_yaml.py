"""The no-op `dvc repro` with DVC's YAML reads in pure Python and with ruamel.yaml's C parser
(issue 48, item 5: <= 1.5 s on the default project).

Nothing changed, a `dvc repro` still reads dvc.yaml and dvc.lock, params.yaml once per stage,
runs the scan stage (always_changed) and rewrites dvc.lock: under the profiler 60 % of it was
ruamel.yaml's pure-Python parser. DVC reads with `YAML(typ="safe")`, which takes the C parser
when `ruamel.yaml.clib` is installed (no requirement of ruamel.yaml 0.19; pyproject.toml
declares it). Both ways run in the same sitting, alternating; the pure one hides the C module.

    make run && python benchmarks/noop_yaml.py            # the project itself, after a repro
    python benchmarks/noop_yaml.py --repo PATH --rounds 7 augment   # a project run to augment
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DVC = "import sys; from dvc.cli import main; sys.exit(main(['repro', *sys.argv[1:]]))"
HIDE_C = "import sys; sys.modules['_ruamel_yaml'] = None; sys.modules['ruamel.yaml.clib'] = None; "


def noop(repo: Path, pure: bool, targets: list[str]) -> float:
    """Seconds of one `dvc repro` in `repo`; an error when it ran any stage but scan."""
    start = time.perf_counter()
    command = [sys.executable, "-c", (HIDE_C if pure else "") + DVC, *targets]
    done = subprocess.run(command, cwd=repo, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0 or "Running stage" in done.stdout.replace("Running stage 'scan'", ""):
        raise SystemExit(f"not a no-op in {repo}: run `dvc repro` there first\n{done.stdout}{done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repo", type=Path, default=ROOT, help="a project whose pipeline has run")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each; the best counts")
    parser.add_argument("targets", nargs="*", help="stages to repro (default: all), e.g. augment")
    args = parser.parse_args()
    try:
        import _ruamel_yaml  # noqa: F401
    except ImportError:
        raise SystemExit("ruamel.yaml.clib is not installed here: `make install` installs it") from None
    noop(args.repo, False, args.targets)  # warm the file cache and DVC's state database
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.rounds):
        for pure in (True, False):
            times[pure].append(noop(args.repo, pure, args.targets))
    pure, c = min(times[True]), min(times[False])
    print(f"| DVC's YAML parser | no-op dvc repro, best of {args.rounds} (s) | all (s) |")
    print("|---|---:|---|")
    for name, key in (("pure Python", True), ("C (ruamel.yaml.clib)", False)):
        print(f"| {name} | {min(times[key]):.2f} | {', '.join(f'{t:.2f}' for t in times[key])} |")
    print(f"ratio C / pure: {c / pure:.2f}")


if __name__ == "__main__":
    main()
