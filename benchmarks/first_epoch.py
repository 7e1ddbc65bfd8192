"""Time to the first training step: `dvc repro` on a fresh project copy, from a CIFAR-10 JPEG
archive served over http on 127.0.0.1 (`data.source: url`) and from the same images already
unpacked in a folder (`data.source: folder`), stopped once train has taken its first step;
when `ultralytics` is importable (a benchmark-only extra), its classification trainer on the
same folder beside it.

Each stage's seconds are split into its own work (the stage script, from its first line to its
last: `visionops.timings` marks, on with VISIONOPS_TIMINGS) and DVC's (the gap before it:
checking and hashing deps, starting the script, and writing the lock of the stage before).
Then a second `dvc repro` of the data stages with nothing changed (DVC's no-op cost at this
size). Each scenario is the best of --rounds runs; a table per scenario, and a JSON summary.
With --push-pull, the team stack (scripts/team_stack.py: SeaweedFS S3 on 127.0.0.1) is started
and the raw data of the url scenario's best run is pushed (`dvc push download`) and pulled into
a fresh clone (`dvc pull download`), both timed, beside the same images as one file each.

    python benchmarks/first_epoch.py --archive ../shared/datasets/cifar10_jpg.tar.gz
    python benchmarks/first_epoch.py --archive ... --rounds 1 --scenarios url --push-pull
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from common import committed_copy

from visionops.cli.preset import merged
from visionops.stack.project import git_env

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "params" / "cifar10-fast.yaml"
DATA_STAGES = ("download", "validate", "augment")
STAGES = (*DATA_STAGES, "train")
TIMEOUT_S = 1800
# Ultralytics' classification trainer on the same folder, to its first training step: the
# tool users would otherwise pick (a benchmark-only extra: `pip install ultralytics`). Its
# settings live in a scratch YOLO_CONFIG_DIR, with its MLflow/TensorBoard loggers off.
ULTRALYTICS = """
import os, sys, time
start = time.perf_counter()
from ultralytics import YOLO, settings
settings.update(mlflow=False, tensorboard=False, wandb=False, sync=False)
model = YOLO("yolo11n-cls.yaml")  # built from its config: nothing to download
def first_step(trainer):
    print(f"FIRST_STEP {time.perf_counter() - start:.3f}", flush=True)
    os._exit(0)
model.add_callback("on_train_batch_start", first_step)
model.train(data=sys.argv[1], imgsz=32, epochs=1, batch=64, device="cpu", plots=False, amp=False,
            val=False, project=sys.argv[2], name="run", exist_ok=True)
"""


def project_copy(dest: Path, data: dict, cache_type: str | None = None) -> Path:
    """A project copy with the CIFAR preset as params.yaml, `data` replaced."""
    params = merged(PRESET, ROOT / "params.yaml")
    params["data"].update(data)
    params["train"].update(compile=False)  # the first step, not a compiled graph's warm-up
    return committed_copy(dest, params, cache_type)


def run_to_first_step(repo: Path) -> dict[str, float]:
    """`dvc repro` until train's first step, then stopped; returns each mark's seconds since
    the command started."""
    marks = repo / "timings.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env |= {"VISIONOPS_TIMINGS": str(marks), "DVC_NO_ANALYTICS": "1"}
    log = (repo / "repro.log").open("w")
    start = time.time()
    proc = subprocess.Popen(
        ["dvc", "repro"], cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        while proc.poll() is None and time.time() - start < TIMEOUT_S:
            if marks.is_file() and '"first_step"' in marks.read_text():
                break
            time.sleep(0.1)
        else:
            tail = (repo / "repro.log").read_text()[-3000:]
            raise SystemExit(f"dvc repro ended before the first training step:\n{tail}")
    finally:
        if proc.poll() is None:
            # SIGTERM: DVC runs stage commands with SIGINT ignored; train defers it to the end
            # of the step and ends its MLflow run KILLED
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=120)
        log.close()
    found = {}
    for line in marks.read_text().splitlines():
        mark = json.loads(line)
        found[f"{mark['stage']}.{mark['event']}"] = mark["t"] - start
    return found


AS_FILES = "raw-as-files"  # data/raw's images unpacked, for the push/pull comparison


def breakdown(marks: dict[str, float]) -> list[dict]:
    """Per stage: DVC's seconds before it, the stage's own, and the time it ended at."""
    rows, previous = [], 0.0
    for stage in STAGES:
        begin = marks[f"{stage}.start"]
        end = marks["train.first_step"] if stage == "train" else marks[f"{stage}.end"]
        rows.append({"stage": stage, "dvc_s": begin - previous, "own_s": end - begin, "at_s": end})
        previous = end
    return rows


def noop_repro(repo: Path) -> float:
    """Seconds of `dvc repro augment` with nothing changed (DVC checks every data file)."""
    env = os.environ | {"DVC_NO_ANALYTICS": "1"}
    start = time.perf_counter()
    done = subprocess.run(["dvc", "repro", "augment"], cwd=repo, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0 or "didn't change" not in done.stdout + done.stderr:
        raise SystemExit(f"the no-op repro did work or failed:\n{done.stdout}\n{done.stderr}")
    return seconds


def push_and_pull(repo: Path, work: Path) -> dict[str, dict]:
    """Seconds of `dvc push` to the team stack's S3 and of `dvc pull` into a fresh clone of
    `repo`, for data/raw as the pipeline stores it (`download`: a few tar shards) and, beside it
    in the same run, for the same images one file each (`as_files`: the shards unpacked and
    `dvc add`-ed, the layout data/raw had before issue 25)."""
    from visionops.data.shards import unpack
    from visionops.stack.team import dvc_remote_commands, free_stack_ports, port_flags

    stack, ports, state = (
        [sys.executable, str(ROOT / "scripts" / "team_stack.py")],
        free_stack_ports(),
        work / "stack",
    )
    flags = port_flags(ports)
    env = os.environ | {"DVC_NO_ANALYTICS": "1"}

    def timed(cmd: list[str], cwd: Path) -> float:
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=cwd, env=git_env() | env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{cmd} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        return time.perf_counter() - start

    timed([*stack, "start", "--dir", str(state), *flags], ROOT)
    try:
        key = state / "keys/dvc.credentials"  # the team's DVC key, as `start` prints it
        for line in dvc_remote_commands(ports, key):
            timed(line.split(), repo)
        unpack(repo / "data" / "raw", repo / AS_FILES)
        timed(["dvc", "add", AS_FILES], repo)
        timed(["git", "add", "-A"], repo)
        timed(["git", "commit", "-qm", "data"], repo)
        targets = {"download": "download", "as_files": f"{AS_FILES}.dvc"}
        pushed = {name: timed(["dvc", "push", target], repo) for name, target in targets.items()}
        teammate = work / "teammate"
        timed(["git", "clone", "-q", str(repo), str(teammate)], work)
        for line in dvc_remote_commands(ports, key)[2:]:
            timed(line.split(), teammate)
        pulled = {name: timed(["dvc", "pull", target], teammate) for name, target in targets.items()}
    finally:
        timed([*stack, "stop", "--purge", "--dir", str(state)], ROOT)
    folders = {"download": teammate / "data" / "raw", "as_files": teammate / AS_FILES}
    return {
        name: {"push_s": pushed[name], "pull_s": pulled[name], "files": count_files(folder)}
        for name, folder in folders.items()
    }


def count_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file())


def scenario(name: str, data: dict, work: Path, args) -> dict:
    """The best of `rounds` fresh runs (each with its own empty download cache)."""
    best = None
    for attempt in range(args.rounds):
        repo = project_copy(
            work / f"{name}-{attempt}", data | {"cache_dir": str(work / f"cache-{name}-{attempt}")}
        )
        marks = run_to_first_step(repo)
        rows = breakdown(marks)
        total = rows[-1]["at_s"]
        print(f"{name} round {attempt + 1}: first training step after {total:.1f} s", flush=True)
        if best is None or total < best["first_step_s"]:
            best = {"first_step_s": total, "stages": rows, "repo": repo}
    repo = best.pop("repo")
    best["noop_repro_s"] = noop_repro(repo)
    if args.push_pull and name == "url":
        best["remote"] = push_and_pull(repo, work)
    return best


def ultralytics_first_step(images: Path, work: Path, rounds: int) -> dict | None:
    """Seconds from start to Ultralytics' first training step on `images` (its first run
    scans the folder and writes its cache beside it; the best of `rounds` is what a user
    meets again); None when ultralytics is not installed."""
    import importlib.util

    if importlib.util.find_spec("ultralytics") is None:
        return None
    env = os.environ | {"YOLO_CONFIG_DIR": str(work / "ultralytics-config"), "YOLO_OFFLINE": "1"}
    seconds = []
    for _ in range(rounds):
        cmd = [sys.executable, "-c", ULTRALYTICS, str(images), str(work / "ultralytics-runs")]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        found = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("FIRST_STEP ")]
        if not found:
            raise SystemExit(
                f"ultralytics did not reach its first step:\n{(done.stdout + done.stderr)[-3000:]}"
            )
        seconds.append(float(found[0]))
    return {"first_run_s": seconds[0], "first_step_s": min(seconds)}


def table(name: str, result: dict) -> str:
    lines = [
        f"\n{name}: first training step after {result['first_step_s']:.1f} s (best run); "
        f"`dvc repro augment` with nothing changed: {result['noop_repro_s']:.1f} s",
        "| stage | DVC before it (s) | its own work (s) | done at (s) |",
        "|---|---|---|---|",
    ]
    for row in result["stages"]:
        own = f"{row['own_s']:.1f}" + (" (to the first step)" if row["stage"] == "train" else "")
        lines.append(f"| {row['stage']} | {row['dvc_s']:.1f} | {own} | {row['at_s']:.1f} |")
    for name, remote in result.get("remote", {}).items():
        what = "data/raw (`download`)" if name == "download" else "the same images one file each"
        lines.append(
            f"{what}, {remote['files']} files, to the team's S3: `dvc push` {remote['push_s']:.1f} s, "
            f"`dvc pull` into a fresh clone {remote['pull_s']:.1f} s"
        )
    if ultra := result.get("ultralytics"):
        lines.append(
            f"Ultralytics on the same folder: first training step after {ultra['first_step_s']:.1f} s "
            f"(its first run, scanning the folder: {ultra['first_run_s']:.1f} s); visionops / Ultralytics = "
            f"{result['first_step_s'] / ultra['first_step_s']:.1f}x"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--archive", type=Path, required=True, help="CIFAR-10 JPEG .tar.gz (class folders)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs per scenario; the best counts (default 3)"
    )
    parser.add_argument("--scenarios", nargs="+", default=["url", "folder"], choices=["url", "folder"])
    parser.add_argument("--cache-type", help="set DVC's cache.type in the copies (e.g. hardlink)")
    parser.add_argument("--push-pull", action="store_true", help="also time dvc push/pull of the raw data")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    archive = args.archive.resolve()
    results = {}
    with tempfile.TemporaryDirectory(prefix="visionops-first-epoch-") as tmp:
        work = Path(tmp)
        if "url" in args.scenarios:
            from download_speed import serve  # benchmarks/ is this script's folder

            server, port = serve(archive.parent)
            try:
                url = {
                    "source": "url",
                    "url": f"http://127.0.0.1:{port}/{archive.name}",
                    "sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
                    "allow_http": True,
                }
                results["url"] = scenario("url", url, work, args)
            finally:
                server.terminate()
        if "folder" in args.scenarios:
            images = work / "photos"
            with tarfile.open(archive) as tar:
                tar.extractall(images, filter="data")
            root = next(p for p in [images, *images.iterdir()] if (p / "train").is_dir())
            results["folder"] = scenario("folder", {"source": "folder", "path": str(root)}, work, args)
            if ultra := ultralytics_first_step(root, work, args.rounds):
                results["folder"]["ultralytics"] = ultra
    for name, result in results.items():
        print(table(name, result))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
