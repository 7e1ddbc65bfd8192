"""Monitoring's evidence on CIFAR-10: how often `visionops monitor`'s check raises a false alarm,
how often it catches a real shift, and how far its label-free accuracy estimate is off.

CIFAR-10's 10,000 test images are split in two that never share an image: even rows build the
reference (as the `reference` stage does), odd rows are production traffic. Traffic is shifted
with albumentations at three severities (Gaussian noise, brightness, contrast, blur, JPEG
quality, rotation), by label proportions (two classes five times as frequent) and by an
out-of-domain set (the hymenoptera photos). Windows of 100 / 500 / 1,000 images are drawn
from each and judged by the same `monitoring.check` the CLI runs (alpha 0.05): an alarm is any
verdict other than `ok`. With --speed, `visionops monitor` and `visionops predict` are also
timed on the 10,000 test JPEGs.

The model: --model (an exported .onnx, e.g. a CIFAR-preset champion), else one trained here by
the pipeline in a project copy (the CIFAR preset, narrower and shorter to suit a CPU: its
accuracy is printed).

    python benchmarks/drift_power.py --cifar ../shared/datasets/cifar10_jpg.tar.gz \\
        --ood ../shared/datasets/hymenoptera --speed
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import committed_copy, write_images

from visionops.cli.preset import merged

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "params" / "cifar10-fast.yaml"
SIZES = (100, 500, 1000)
SEVERITIES = ("mild", "medium", "strong")
LIFTED = ("airplane", "automobile")  # the label shift: these two five times as frequent
FAMILIES = ("softmax", "embedding", "predicted_classes", "image")  # monitoring/shift.py's test families


def corruptions() -> dict[str, list]:
    """name -> one albumentations transform per severity (mild, medium, strong)."""
    import albumentations as A
    import cv2

    return {
        "gaussian noise": [A.GaussNoise(std_range=(s, s), p=1) for s in (0.03, 0.06, 0.12)],
        "brightness": [
            A.RandomBrightnessContrast(brightness_limit=(-b, -b), contrast_limit=(0, 0), p=1)
            for b in (0.1, 0.2, 0.4)
        ],
        "contrast": [
            A.RandomBrightnessContrast(brightness_limit=(0, 0), contrast_limit=(-c, -c), p=1)
            for c in (0.2, 0.4, 0.6)
        ],
        "blur": [A.GaussianBlur(blur_limit=0, sigma_limit=(s, s), p=1) for s in (0.5, 0.8, 1.2)],
        "jpeg quality": [A.ImageCompression(quality_range=(q, q), p=1) for q in (50, 25, 10)],
        "rotation": [A.Rotate(limit=(a, a), border_mode=cv2.BORDER_REFLECT_101, p=1) for a in (5, 10, 20)],
    }


def train_model(images: Path, work: Path, width: int, epochs: int) -> Path:
    """models/model.onnx of the pipeline run on the CIFAR folder (preset, narrowed for a CPU)."""
    params = merged(PRESET, ROOT / "params.yaml")
    params["data"].update(source="folder", path=str(images))
    params["validate"].update(on_bad_image="quarantine")
    params["model"].update(width=width)
    params["train"].update(epochs=epochs, compile=False)
    repo = committed_copy(work / "project", params)
    start = time.perf_counter()
    done = subprocess.run(["dvc", "repro", "export"], cwd=repo, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"dvc repro export failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    print(
        f"trained resnet9 width {width}, {epochs} epochs, in {time.perf_counter() - start:.0f} s", flush=True
    )
    return repo / "models" / "model.onnx"


def decode_all(files: list[Path], size: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images at the model's size, their files' (width, height))."""
    from visionops.data.decode import decode_file

    pairs = [decode_file(path, channels, size) for path in files]
    return np.stack([p for p, _ in pairs]), np.asarray([s for _, s in pairs], dtype=np.float64)


def observed(model, images: np.ndarray, sizes: np.ndarray, transform=None) -> tuple:
    """(probabilities, stats, embeddings) of `images`, each first put through `transform` (seeded)."""
    import random

    from visionops.monitoring.stats import image_stats

    if transform is not None:
        random.seed(0)
        np.random.seed(0)
        transform.set_random_seed(0)
        images = np.stack([transform(image=image)["image"] for image in images])
    probabilities, embeddings = model.outputs(images)
    return probabilities, image_stats(images, sizes), embeddings


def alarm_rates(reference, pool: dict, windows: int, rng, weights=None, sizes=SIZES) -> dict:
    """Per window size: the share of windows whose verdict is not `ok`, and (where the pool has
    labels) the accuracy estimate's mean absolute error in points against the true accuracy."""
    from visionops.config import MonitorParams
    from visionops.monitoring.check import check
    from visionops.monitoring.window import Window

    policy = MonitorParams(min_window=10)
    out = {}
    for size in sizes:
        alarms, errors, families = 0, [], dict.fromkeys(FAMILIES, 0)
        for _ in range(windows):
            rows = rng.choice(len(pool["probabilities"]), size, replace=False, p=weights)
            embedded = pool["embeddings"][rows] if pool["embeddings"] is not None else None
            window = Window([], pool["probabilities"][rows], pool["stats"][rows], embeddings=embedded)
            result = check(reference, window, policy)
            alarms += result["verdict"] != "ok"
            for family in {t["family"] for t in result["tests"] if t["p_adjusted"] <= policy.alpha}:
                families[family] += 1
            if pool["labels"] is not None:
                truth = float((pool["probabilities"][rows].argmax(1) == pool["labels"][rows]).mean())
                errors.append(abs(result["accuracy"]["estimated"]["value"] - truth))
        out[size] = {"alarm_rate": alarms / windows} | {f"{f}_rate": n / windows for f, n in families.items()}
        if errors:
            out[size]["atc_error_points"] = 100 * float(np.mean(errors))
    return out


def halvings(
    everything: tuple, labels: np.ndarray, classes: list[str], count: int, windows: int, rng
) -> dict:
    """False-alarm rates averaged over `count` random halvings of the test images into a
    reference and a traffic pool (which never share an image): one fixed reference's luck
    shows in every window drawn against it, so one halving alone cannot say the rate."""
    from visionops.monitoring.accuracy import atc_threshold
    from visionops.monitoring.mmd import MAX_ROWS, evenly_spaced
    from visionops.monitoring.reference import Reference

    probabilities, stats, embeddings = everything
    rates = []
    for _ in range(count):
        order = rng.permutation(len(labels))
        ref, traffic = np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2 :])
        embedded = None if embeddings is None else embeddings[ref][evenly_spaced(len(ref), MAX_ROWS)]
        p = probabilities[ref].astype(np.float32)
        reference = Reference(
            classes, p, labels[ref], stats[ref], "", atc_threshold(p, labels[ref]), embedded
        )
        pool = {
            "probabilities": probabilities[traffic],
            "stats": stats[traffic],
            "embeddings": None if embeddings is None else embeddings[traffic],
            "labels": labels[traffic],
        }
        rates.append(alarm_rates(reference, pool, windows, rng))
    return {
        size: {key: float(np.mean([r[size][key] for r in rates])) for key in rates[0][size]} for size in SIZES
    }


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode not in (0, 3, 4):
        raise SystemExit(f"{command[:4]} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def speed(model_path: Path, reference_dir: Path, test: Path, work: Path) -> dict:
    """Seconds of `visionops predict` and `visionops monitor` on the same 10,000 files, best of 2."""
    params = work / "monitor-params.yaml"
    params.write_text("monitor:\n  window: 100000\n")
    cli = [sys.executable, "-m", "visionops"]
    predict = [*cli, "predict", "--model", str(model_path), str(test), "--out", "p.csv", "--no-progress"]
    monitor = [*cli, "monitor", str(test), "--model", str(model_path), "--reference", str(reference_dir)]
    monitor += ["--params", str(params), "--no-track", "--no-progress", "--out", "m.json"]
    seconds = {
        "predict": min(timed(predict, work) for _ in range(2)),
        "monitor": min(timed(monitor, work) for _ in range(2)),
    }
    return seconds | {"ratio": seconds["monitor"] / seconds["predict"]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cifar", type=Path, required=True, help="cifar10_jpg.tar.gz")
    parser.add_argument("--ood", type=Path, help="a folder of out-of-domain photos (hymenoptera)")
    parser.add_argument(
        "--model", type=Path, help="an exported .onnx trained on CIFAR-10 (else one is trained)"
    )
    parser.add_argument("--width", type=int, default=16, help="resnet9 width when training here")
    parser.add_argument("--epochs", type=int, default=6, help="epochs when training here")
    parser.add_argument("--windows", type=int, default=50, help="windows per shift and size")
    parser.add_argument("--clean-windows", type=int, default=100, help="unshifted windows per size")
    parser.add_argument(
        "--halvings",
        type=int,
        default=0,
        help="also measure false alarms over this many random reference/traffic halvings of the "
        "test split (--clean-windows each): the rate whichever images a reference happened to get",
    )
    parser.add_argument("--false-alarms-only", action="store_true", help="skip the shifted windows")
    parser.add_argument("--speed", action="store_true", help="also time monitor vs predict on 10,000 files")
    parser.add_argument("--out", type=Path, default=Path("drift_power.json"))
    parser.add_argument("--save-model", type=Path, help="keep the model trained here at this .onnx path")
    args = parser.parse_args()

    from visionops.export.classifier import OnnxClassifier
    from visionops.io import file_sha256
    from visionops.monitoring.reference import build_reference, save_reference

    with tempfile.TemporaryDirectory(prefix="visionops-drift-") as tmp:
        work = Path(tmp)
        write_images(work / "images", args.cifar.resolve(), 5000)
        model_path = args.model or train_model(work / "images", work, args.width, args.epochs)
        if args.save_model and not args.model:
            args.save_model.write_bytes(model_path.read_bytes())
        model = OnnxClassifier(model_path)
        if not model.has_embedding:
            print("note: the model has no embedding output (exported before issue 35): no MMD test")
        size, channels = model.meta["image_size"], model.meta["channels"]
        files = sorted((work / "images" / "test").rglob("*.jpg"))
        labels = np.asarray([model.classes.index(path.parent.name) for path in files])
        images, sizes = decode_all(files, size, channels)
        ref, prod = np.arange(0, len(files), 2), np.arange(1, len(files), 2)  # never the same image
        reference = build_reference(
            model.outputs,
            [(images[ref], sizes[ref])],
            labels[ref],
            model.classes,
            file_sha256(model_path),
        )
        print(f"model accuracy on the reference half: {reference.accuracy:.4f}", flush=True)
        rng = np.random.default_rng(0)
        results: dict = {"reference_accuracy": reference.accuracy, "shifts": {}}

        def pool(probabilities, stats, embeddings, pool_labels):
            return {
                "probabilities": probabilities,
                "stats": stats,
                "embeddings": embeddings,
                "labels": pool_labels,
            }

        clean = pool(*observed(model, images[prod], sizes[prod]), labels[prod])
        results["shifts"]["none (false alarms)"] = alarm_rates(reference, clean, args.clean_windows, rng)
        print("none:", results["shifts"]["none (false alarms)"], flush=True)
        if args.halvings:
            everything = observed(model, images, sizes)
            key = f"none, {args.halvings} random halvings"
            results["shifts"][key] = halvings(
                everything, labels, model.classes, args.halvings, args.clean_windows, rng
            )
            print(f"{key}:", results["shifts"][key], flush=True)
        for name, transforms in ({} if args.false_alarms_only else corruptions()).items():
            for severity, transform in zip(SEVERITIES, transforms, strict=True):
                shifted = pool(*observed(model, images[prod], sizes[prod], transform), labels[prod])
                key = f"{name} ({severity})"
                accuracy = float((shifted["probabilities"].argmax(1) == shifted["labels"]).mean())
                results["shifts"][key] = alarm_rates(reference, shifted, args.windows, rng) | {
                    "accuracy": accuracy
                }
                print(key, results["shifts"][key], flush=True)
        if args.false_alarms_only:
            args.out.write_text(json.dumps(results, indent=1))
            print(table(results))
            return
        lifted = np.isin(labels[prod], [model.classes.index(c) for c in LIFTED])
        weights = np.where(lifted, 5.0, 1.0)
        results["shifts"]["label shift (2 classes x5)"] = alarm_rates(
            reference, clean, args.windows, rng, weights / weights.sum()
        )
        print("label shift:", results["shifts"]["label shift (2 classes x5)"], flush=True)
        if args.ood:
            from visionops.data.folders import image_files

            ood_files = sorted(image_files([args.ood]))
            ood_images, ood_sizes = decode_all(ood_files, size, channels)
            ood = pool(*observed(model, ood_images, ood_sizes), None)
            fits = tuple(n for n in SIZES if n <= len(ood_files))
            key = f"out of domain ({len(ood_files)} photos)"
            results["shifts"][key] = alarm_rates(reference, ood, args.windows, rng, sizes=fits)
            print("ood:", results["shifts"][key], flush=True)
        if args.speed:
            save_reference(reference, work / "reference")
            results["speed"] = speed(model_path, work / "reference", work / "images" / "test", work)
            print("speed:", results["speed"], flush=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(table(results))


def table(results: dict) -> str:
    """Markdown: alarm rates per window size, which test family fired at 500 (softmax KS,
    embedding MMD, class shares, image statistics), the accuracy estimate's error."""
    lines = [
        "| shift | accuracy | alarms @100 | @500 | @1000 "
        "| @500 by softmax / embedding / class shares / image stats "
        "| ATC error @500 (points) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rates in results["shifts"].items():
        cells = [f"{rates[n]['alarm_rate']:.2f}" if n in rates else "" for n in SIZES]
        at500 = rates.get(500, {})
        families = " / ".join(f"{at500[f + '_rate']:.2f}" for f in FAMILIES) if at500 else ""
        err = f"{at500['atc_error_points']:.1f}" if "atc_error_points" in at500 else ""
        acc = f"{rates['accuracy']:.3f}" if "accuracy" in rates else ""
        lines.append(f"| {name} | {acc} | {' | '.join(cells)} | {families} | {err} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
