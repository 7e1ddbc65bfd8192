"""`visionops tune` on CIFAR-10 (10,000 training JPEGs at 32 px, from the shared archive), in one
invocation, on a fresh project copy:

1. `dvc repro evaluate` with the copy's params (the project's defaults, pointed at the images,
   32 px RGB, no offline copies, on-device crop + flip): the default's val and test accuracy.
2. The same search with each of --pruners and without pruning: wall time and best validation
   accuracy of each (trial n draws the same point in all until pruning changes the history).
3. Trials per hour with `--workers 2` over `--workers 1`, over lr/weight decay/label smoothing
   at a fixed width (every trial costs about the same), without pruning.
4. `dvc exp run evaluate -S <the first pruner's winner>`: the winner's val and test accuracy.

    python benchmarks/tune_speed.py --archive ../shared/datasets/cifar10_jpg.tar.gz
    python benchmarks/tune_speed.py --archive ... --pruners median hyperband --parts pruning
    python benchmarks/tune_speed.py --archive ... --trials 4 --worker-trials 2 --epochs 2  # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from common import ROOT, committed_copy, write_images

SPACE = {
    "train.lr": {"log_uniform": [1.0e-4, 3.0e-2]},
    "train.weight_decay": {"log_uniform": [1.0e-5, 1.0e-2]},
    "train.label_smoothing": {"uniform": [0.0, 0.2]},
    "model.width": {"choice": [8, 16, 32]},
}
FIXED_WIDTH = 16  # the workers comparison: every trial the same network


def project_copy(dest: Path, images: Path, epochs: int, seed: int) -> Path:
    """A project copy with the project's params pointed at the images (32 px RGB, no offline
    copies, on-device crop + flip) and the benchmark's search space."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(source="folder", path=str(images))
    params["augment"].update(image_size=32, channels=3, copies=0, policy=[])
    params["train"].update(epochs=epochs, hflip=True, crop_padding=4)
    params["tracking"].update(experiment="tune-speed")
    params["tune"] |= {"space": SPACE, "sampler_seed": seed}
    return committed_copy(dest, params)


def env_for(repo: Path) -> dict[str, str]:
    return os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}", "DVC_NO_ANALYTICS": "1"}


def run(cmd: list[str], repo: Path) -> float:
    """Run a command in the copy; its wall seconds (its output kept in the copy's bench.log)."""
    start = time.perf_counter()
    with (repo / "bench.log").open("a") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        done = subprocess.run(cmd, cwd=repo, env=env_for(repo), stdout=log, stderr=subprocess.STDOUT)
    if done.returncode:
        tail = (repo / "bench.log").read_text()[-4000:]
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}:\n{tail}")
    return time.perf_counter() - start


def accuracies(repo: Path) -> dict[str, float]:
    """The trained model's validation accuracy (train) and test accuracy (evaluate)."""
    train = json.loads((repo / "reports/metrics/train.json").read_text())
    evaluate = json.loads((repo / "reports/metrics/evaluate.json").read_text())
    return {"val_accuracy": train["best_val_acc"], "test_accuracy": evaluate["accuracy"]}


def tune(repo: Path, params: Path, study: str, trials: int, workers: int = 1) -> dict:
    """One `visionops tune` study; wall seconds, counted trials, pruned trials, best value."""
    import optuna

    storage = f"sqlite:///{repo / 'bench-optuna.db'}"
    cmd = [sys.executable, "-m", "visionops", "tune", "--params", str(params), "--storage", storage,
           "--study", study, "--trials", str(trials), "--workers", str(workers), "--no-progress"]  # fmt: skip
    seconds = run(cmd, repo)
    found = optuna.load_study(study_name=study, storage=storage)
    states = [t.state.name for t in found.get_trials(deepcopy=False)]
    counted = states.count("COMPLETE") + states.count("PRUNED")
    return {
        "seconds": round(seconds, 1),
        "trials": counted,
        "pruned": states.count("PRUNED"),
        "best_val_accuracy": found.best_value,
        "best_params": found.best_params,
        "trials_per_hour": round(counted / seconds * 3600, 1),
    }


def study_params(repo: Path, name: str, **tune_updates) -> Path:
    """A params file beside params.yaml with the tune section changed (the stages never read it)."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["tune"].update(tune_updates)
    path = repo / f"{name}.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


PARTS = ("pruning", "workers", "winner")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--archive", type=Path, required=True, help="CIFAR-10 JPEG .tar.gz (class folders)")
    parser.add_argument("--per-class", type=int, default=1000, help="training images per class")
    parser.add_argument("--epochs", type=int, default=6, help="train.epochs: each trial's budget (default 6)")
    parser.add_argument("--trials", type=int, default=16, help="trials per pruner study (default 16)")
    parser.add_argument("--worker-trials", type=int, default=8, help="trials per workers study (default 8)")
    parser.add_argument(
        "--pruners", nargs="+", default=["median"], choices=["median", "hyperband"],
        help="pruners to compare with no pruning; the first one's winner is trained (default median)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="tune.sampler_seed (default 0)")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS, help="what to measure")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tune-speed-") as tmp:
        work = Path(tmp)
        write_images(work / "images", args.archive, args.per_class)
        repo = project_copy(work / "repo", work / "images", args.epochs, args.seed)
        result = {"images": {"train": args.per_class * 10, "size": 32}}
        result |= {"epochs": args.epochs, "seed": args.seed}
        result["pipeline_s"] = round(run(["dvc", "repro", "evaluate"], repo), 1)
        result["default"] = accuracies(repo)
        result["studies"] = {}
        if "pruning" in args.parts or "winner" in args.parts:
            for pruner in args.pruners:
                params = study_params(repo, pruner, pruner=pruner)
                result["studies"][pruner] = tune(repo, params, pruner, args.trials)
        if "pruning" in args.parts:
            unpruned = study_params(repo, "unpruned", pruner="none")
            result["studies"]["none"] = tune(repo, unpruned, "unpruned", args.trials)
        if "workers" in args.parts:
            flat = flat_params(repo)
            result["workers_1"] = tune(repo, flat, "workers-1", args.worker_trials, workers=1)
            result["workers_2"] = tune(repo, flat, "workers-2", args.worker_trials, workers=2)
        if "winner" in args.parts:
            winner = result["studies"][args.pruners[0]]["best_params"]
            sets = [arg for key, value in winner.items() for arg in ("-S", f"{key}={value!r}")]
            result["winner_run_s"] = round(run(["dvc", "exp", "run", "evaluate", *sets], repo), 1)
            result["winner"] = accuracies(repo) | {"pruner": args.pruners[0], "params": winner}
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


def flat_params(repo: Path) -> Path:
    """The workers comparison: lr, weight decay and label smoothing at a fixed width, no pruning,
    so that every trial costs about the same."""
    fixed = {k: v for k, v in SPACE.items() if k != "model.width"}
    path = study_params(repo, "flat", pruner="none", space=fixed)
    params = yaml.safe_load(path.read_text())
    params["model"]["width"] = FIXED_WIDTH
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def report(r: dict) -> str:
    lines = [
        f"CIFAR-10, {r['images']['train']} training images at 32 px, {r['epochs']} epochs per trial, "
        f"sampler seed {r['seed']}",
        f"pipeline to evaluate (defaults): {r['pipeline_s']} s",
    ]
    studies = r["studies"]
    if studies:
        lines += ["", "| pruner | trials (pruned) | wall s | best val acc |", "|---|---|---|---|"]
        for name, study in studies.items():
            lines.append(
                f"| {name} | {study['trials']} ({study['pruned']}) | {study['seconds']} | "
                f"{study['best_val_accuracy']:.4f} |"
            )
    if "none" in studies:
        base = studies["none"]
        for name, study in studies.items():
            if name != "none":
                gap = (base["best_val_accuracy"] - study["best_val_accuracy"]) * 100
                lines.append(
                    f"{name} / no pruner wall: {study['seconds'] / base['seconds']:.2f}x (goal <= 0.6x); "
                    f"best val acc {gap:+.2f} pt below (goal within 0.5 pt)"
                )
    if "workers_2" in r:
        w1, w2 = r["workers_1"]["trials_per_hour"], r["workers_2"]["trials_per_hour"]
        lines.append(f"workers 2 / 1 trials per hour: {w2} / {w1} = {w2 / w1:.2f}x (goal >= 1.3x)")
    lines += ["", "| params | val acc | test acc |", "|---|---|---|"]
    lines.append(f"| defaults | {r['default']['val_accuracy']:.4f} | {r['default']['test_accuracy']:.4f} |")
    if "winner" in r:
        w = r["winner"]
        name = f"{w['pruner']} study's winner {w['params']}"
        lines.append(f"| {name} | {w['val_accuracy']:.4f} | {w['test_accuracy']:.4f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
