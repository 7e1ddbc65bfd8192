"""Data that grows: CIFAR-10's JPEGs as a `folder` source in a fresh project copy (the CIFAR
preset, `data.path` = the folder), 1 % of the train images (`--held` per class) held back.
Times `dvc repro augment` (every data stage: what stands between new images and the train
stage) for the first run, then after each change to the folder:

* add: the held-back images put into their class folders;
* remove: the same images taken out again;
* relabel: as many images moved to the next class's folder (and back, which is timed too).

Each change is made and undone `--rounds` times; the best time of each counts. Per stage, the
stage's own seconds come from `visionops.timings` marks; DVC's share is the rest (hashing the
listing and the outputs, writing dvc.lock), and the peak RSS of the run's largest process. Prints
a table with each step's ratio to the first run and the no-op `dvc repro augment`.

With several `--per-class` sizes (one sitting), it also prints what grows with the dataset
(issue 48): fixed costs (imports, DVC's bookkeeping) cancel out between two sizes, so the growth
of the +1 % re-run between them, as a share of the first run's growth, says whether a re-run's
work follows the change (target: <= 0.10) or the dataset.

    python benchmarks/data_growth.py --cifar ../shared/datasets/cifar10_jpg.tar.gz --per-class 1250,5000
    python benchmarks/data_growth.py --cifar ... --per-class 500 --held 5 --rounds 1   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import committed_copy, write_images

from visionops.cli.preset import merged

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "params" / "cifar10-fast.yaml"
DATA_STAGES = ("scan", "download", "validate", "augment")


def project(dest: Path, images: Path) -> Path:
    """A committed project copy reading `images` as its folder source (quarantine on, so that
    CIFAR's own cross-split near-copies are listed rather than stopping the run)."""
    params = merged(PRESET, ROOT / "params.yaml")
    params["data"].update(source="folder", path=str(images))
    params["validate"].update(on_bad_image="quarantine")
    return committed_copy(dest, params)


# `dvc repro augment` in a child whose own rusage gives the peak RSS of the largest process of
# the run (DVC or a stage: RUSAGE_CHILDREN's maxrss is the largest descendant's)
PEAK = """
import json, resource, subprocess, sys
done = subprocess.run(["dvc", "repro", "augment"], capture_output=True, text=True)
print(json.dumps({"code": done.returncode, "out": done.stdout[-3000:] + done.stderr[-3000:],
                  "peak_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def repro(repo: Path) -> dict[str, float]:
    """`dvc repro augment`; seconds in all and per data stage that ran (its own work), and the
    peak RSS (GB) of the run's largest process."""
    marks = repo / "timings.jsonl"
    marks.unlink(missing_ok=True)
    env = os.environ | {"VISIONOPS_TIMINGS": str(marks), "DVC_NO_ANALYTICS": "1"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK], cwd=repo, env=env, capture_output=True, text=True)
    seconds = {"total": time.perf_counter() - start}
    result = (
        json.loads(done.stdout.strip().splitlines()[-1])
        if done.returncode == 0
        else {"code": -1, "out": done.stderr}
    )
    if result["code"] != 0:
        raise SystemExit(f"dvc repro failed:\n{result['out']}")
    seconds["peak_gb"] = result["peak_kb"] / 2**20
    events = {}
    for line in marks.read_text().splitlines() if marks.is_file() else []:
        mark = json.loads(line)
        events[(mark["stage"], mark["event"])] = mark["t"]
    for stage in DATA_STAGES:
        if (stage, "end") in events:
            seconds[stage] = events[(stage, "end")] - events[(stage, "start")]
    return seconds


def move(pairs: list[tuple[Path, Path]]) -> None:
    for source, dest in pairs:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, dest)


def changes(images: Path, held: Path, per_class: int) -> dict[str, tuple[list, list]]:
    """Each step's moves and the moves that undo it."""
    train = images / "train"
    classes = sorted(p.name for p in train.iterdir())
    back = [(p, train / p.relative_to(held)) for p in sorted(held.rglob("*.jpg"))]
    relabel = []
    for i, name in enumerate(classes):
        target = classes[(i + 1) % len(classes)]
        for path in sorted((train / name).glob("*.jpg"))[-per_class:]:
            relabel.append((path, train / target / f"relabelled-{name}-{path.name}"))
    return {
        "add": (back, [(dest, source) for source, dest in back]),
        "relabel": (relabel, [(dest, source) for source, dest in relabel]),
    }


def hold_back(images: Path, held: Path, per_class: int) -> None:
    """Move the last `per_class` train images of every class from images/ to held/."""
    for folder in sorted((images / "train").iterdir()):
        for path in sorted(folder.glob("*.jpg"))[-per_class:]:
            dest = held / folder.name / path.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, dest)


def best(a: dict | None, b: dict) -> dict:
    return b if a is None or b["total"] < a["total"] else a


def run(args, per_class: int, held_per_class: int) -> dict[str, dict]:
    with tempfile.TemporaryDirectory(prefix="visionops-growth-") as tmp:
        work = Path(tmp)
        images, held = work / "images", work / "held"
        write_images(images, args.cifar.resolve(), per_class)
        hold_back(images, held, held_per_class)
        count = sum(1 for _ in images.rglob("*.jpg"))
        print(f"{count} images in the folder, {held_per_class} per class held back", flush=True)
        repo = project(work / "project", images)
        results = {"first run": repro(repo)}
        print(f"first run: {results['first run']}", flush=True)
        steps = changes(images, held, held_per_class)
        for _ in range(args.rounds):
            for name, undo_name, (do, undo) in (
                ("add 1 %", "remove 1 %", steps["add"]),
                ("relabel 1 %", "relabel back", steps["relabel"]),
            ):
                for label, moves in ((name, do), (undo_name, undo)):
                    move(moves)
                    seconds = repro(repo)
                    print(f"{label}: {seconds}", flush=True)
                    results[label] = best(results.get(label), seconds)
        for _ in range(3):  # the scan stage runs (it finds nothing), the rest is skipped
            results["no-op"] = best(results.get("no-op"), repro(repo))
        results["images"] = {"total": float(count)}
    return results


def growth(small: dict[str, dict], large: dict[str, dict]) -> str:
    """What grows with the dataset between two sizes: each step's extra seconds as a share of
    the first run's extra seconds."""
    first = large["first run"]["total"] - small["first run"]["total"]
    lines = [
        "| step | small (s) | large (s) | growth (s) | share of the first run's growth |",
        "|---|---|---|---|---|",
    ]
    for step in ("first run", "add 1 %", "remove 1 %", "relabel 1 %", "relabel back", "no-op"):
        a, b = small[step]["total"], large[step]["total"]
        lines.append(f"| {step} | {a:.1f} | {b:.1f} | {b - a:+.1f} | {(b - a) / first:.2f} |")
    return "\n".join(lines)


def table(results: dict[str, dict]) -> str:
    first = results["first run"]["total"]
    lines = [
        "| step | scan (s) | download (s) | validate (s) | augment (s) | DVC, rest (s) | total (s) "
        "| vs first | peak |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for step, seconds in results.items():
        if step == "images":
            continue
        own = [seconds.get(stage) for stage in DATA_STAGES]
        rest = seconds["total"] - sum(s for s in own if s is not None)
        cells = [f"{s:.1f}" if s is not None else "-" for s in own]
        ratio = seconds["total"] / first
        peak = f"{seconds['peak_gb']:.2f} GB" if "peak_gb" in seconds else "-"
        cells += [f"{rest:.1f}", f"{seconds['total']:.1f}", f"{ratio:.2f}", peak]
        lines.append(f"| {step} | {' | '.join(cells)} |")
    return "\n".join(lines)


def growth_parser(doc: str) -> argparse.ArgumentParser:
    """The command line this and version_cost.py share: the CIFAR archive and --json."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cifar", type=Path, required=True, help="CIFAR-10 JPEG archive (class folders)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser


def main() -> None:
    parser = growth_parser(__doc__)
    parser.add_argument(
        "--per-class", default="5000", help="train images per class (test: 1/5); several sizes: 1250,5000"
    )
    parser.add_argument("--held", type=float, default=0.012, help="share of train images added/relabelled")
    parser.add_argument("--rounds", type=int, default=3, help="times each change is made; the best counts")
    args = parser.parse_args()
    sizes = [int(size) for size in args.per_class.split(",")]
    results = {size: run(args, size, max(1, round(args.held * size))) for size in sizes}
    for size, found in results.items():
        print(f"\n{int(found['images']['total'])} images ({size} train images per class):\n{table(found)}")
    if len(sizes) > 1:
        grown = growth(results[sizes[0]], results[sizes[-1]])
        print(f"\nwhat grows between {sizes[0]} and {sizes[-1]} per class:\n{grown}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
