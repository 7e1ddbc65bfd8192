"""Monitoring's evidence on CIFAR-10: how often `visionops monitor`'s check raises a false alarm,
how often it catches a real shift, and how far its label-free accuracy estimate is off.

CIFAR-10's 10,000 test images are split in two that never share an image: even rows build the
reference (as the `reference` stage does), odd rows are production traffic. Traffic is shifted
with albumentations at three severities (Gaussian noise, brightness, contrast, blur, JPEG
quality, rotation) and by label proportions (two classes five times as frequent). Windows of
100 / 500 / 1,000 images are drawn from each and judged by the same `monitoring.check` the CLI
runs (alpha 0.05): an alarm is any verdict other than `ok`.

Out of domain (--ood): four sets the model never learned (the hymenoptera photos, close-up
crops of them, the digits upscaled, uniform noise). Per set: the per-image AUROC of three
out-of-domain scores against the clean traffic (the top softmax probability, the energy of the
logits, the Mahalanobis distance of the raw embedding, and monitoring's own score: the
direction's Mahalanobis distance, how unusual the embedding's length is and the softmax's
entropy), the verdicts and the
accuracy estimate on windows of 500 (300 for a set with fewer images), and windows of 70 %
clean and 30 % hymenoptera images: the out-of-domain share and the in-domain estimate against
the truth. With --speed, `visionops monitor` and `visionops predict` are also
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
FAMILIES = ("softmax", "domain", "embedding", "predicted_classes", "image")  # monitoring/shift.py's families
OOD_WINDOW = 500  # images per out-of-domain window (fewer where a set is smaller)
MIXED = 0.3  # the out-of-domain share of the mixed windows


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


def as_pool(seen: tuple, labels: np.ndarray | None) -> dict:
    """observed()'s (probabilities, stats, embeddings) and the true labels (None: none apply)."""
    probabilities, stats, embeddings = seen
    return {"probabilities": probabilities, "stats": stats, "embeddings": embeddings, "labels": labels}


def alarm_rates(reference, pool: dict, windows: int, rng, weights=None, sizes=SIZES) -> dict:
    """Per window size: the share of windows whose verdict is not `ok` (and of each verdict),
    and (where the pool has labels) the accuracy estimate's mean absolute error in points
    against the true accuracy of the window's in-domain images."""
    from visionops.config import MonitorParams
    from visionops.monitoring.check import check
    from visionops.monitoring.window import Window

    policy = MonitorParams(min_window=10)
    inside = in_domain(reference, pool, policy)
    out = {}
    for size in sizes:
        alarms, errors, families, verdicts, by_model = 0, [], dict.fromkeys(FAMILIES, 0), {}, 0
        estimates = []
        for _ in range(windows):
            rows = rng.choice(len(pool["probabilities"]), size, replace=False, p=weights)
            embedded = pool["embeddings"][rows] if pool["embeddings"] is not None else None
            window = Window([], pool["probabilities"][rows], pool["stats"][rows], embeddings=embedded)
            result = check(reference, window, policy)
            alarms += result["verdict"] != "ok"
            verdicts[result["verdict"]] = verdicts.get(result["verdict"], 0) + 1
            fired = {t["family"] for t in result["tests"] if t["p_adjusted"] <= policy.alpha}
            for family in fired:
                families[family] += 1
            by_model += bool(fired - {"image"})  # the model's outputs and embedding, not the pixels
            estimated = result["accuracy"]["estimated"]
            estimates.append(estimated["value"] if estimated["estimable"] else None)
            if pool["labels"] is not None and estimated["estimable"]:
                kept = rows[inside[rows]]
                truth = float((pool["probabilities"][kept].argmax(1) == pool["labels"][kept]).mean())
                errors.append(abs(estimated["value"] - truth))
        out[size] = {"alarm_rate": alarms / windows} | {f"{f}_rate": n / windows for f, n in families.items()}
        out[size]["model_rate"] = by_model / windows
        out[size]["verdicts"] = {verdict: n / windows for verdict, n in sorted(verdicts.items())}
        given = [e for e in estimates if e is not None]
        out[size]["not_estimable_rate"] = 1 - len(given) / windows
        out[size]["highest_estimate"] = max(given) if given else None
        if errors:
            out[size]["atc_error_points"] = 100 * float(np.mean(errors))
    return out


def in_domain(reference, pool: dict, policy) -> np.ndarray:
    """Per pool image: under the out-of-domain threshold (all True without a domain fit)."""
    if reference.domain is None or pool["embeddings"] is None:
        return np.ones(len(pool["probabilities"]), dtype=bool)
    scores = reference.domain.scores(pool["embeddings"], pool["probabilities"])
    return scores <= reference.domain.threshold(policy.ood_fpr)


def out_of_domain_sets(ood: Path, size: int, channels: int, rng) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (uint8 images at the model's size, file sizes): four kinds of images no CIFAR
    class describes, from ../shared and made here."""
    from PIL import Image

    from visionops.data.digits import load_digits_images
    from visionops.data.folders import image_files

    files = sorted(image_files([ood]))
    photos = decode_all(files, size, channels)
    mode = "RGB" if channels == 3 else "L"
    crops = []
    for path in files:  # a close-up: a random square a quarter of the shorter side, from each photo
        with Image.open(path) as image:
            image = image.convert(mode)
            side = max(8, min(image.size) // 4)
            x, y = (int(rng.integers(0, image.size[i] - side + 1)) for i in (0, 1))
            crop = image.crop((x, y, x + side, y + side)).resize((size, size), Image.BILINEAR)
            crops.append(np.asarray(crop).reshape(size, size, channels))
    mode = "RGB" if channels == 3 else "L"
    digits = [
        np.asarray(Image.fromarray(d).resize((size, size), Image.NEAREST).convert(mode))
        for d in load_digits_images()[0][:1000]
    ]
    noise = rng.integers(0, 256, (1000, size, size, channels), dtype=np.uint8)
    square = lambda n: np.full((n, 2), float(size))  # noqa: E731 (made at the model's size)
    return {
        f"hymenoptera photos ({len(files)})": photos,
        f"hymenoptera close-ups ({len(files)})": (np.stack(crops), square(len(crops))),
        "digits, upscaled (1000)": (np.stack(digits).reshape(-1, size, size, channels), square(len(digits))),
        "uniform noise (1000)": (noise, square(len(noise))),
    }


def ood_scores(model, reference, images: np.ndarray, raw) -> dict[str, np.ndarray]:
    """Four out-of-domain scores per image, higher = further out: 1 - the top softmax
    probability (Hendrycks & Gimpel 2017), the negative log-sum-exp of the logits (the energy,
    Liu et al. 2020), the squared Mahalanobis distance of the raw embedding to the nearest
    class (Lee et al. 2018; `raw`: means and precision) and monitoring's own score."""
    from scipy.special import logsumexp

    logits = model.logits(images).astype(np.float64)
    probabilities, embeddings = model.outputs(images)
    means, precision = raw
    centred = embeddings[:, None, :].astype(np.float64) - means[None]
    return {
        "top softmax": 1.0 - probabilities.max(1),
        "energy": -logsumexp(logits, axis=1),
        "mahalanobis": np.einsum("nkd,de,nke->nk", centred, precision, centred).min(1),
        "visionops": reference.domain.scores(embeddings, probabilities),
    }


def raw_mahalanobis(embeddings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class means and the pseudo-inverse of the shared within-class covariance (Lee et al.)."""
    from scipy.linalg import pinvh

    z = embeddings.astype(np.float64)
    means = np.stack([z[labels == k].mean(0) for k in np.unique(labels)])
    centred = z - means[np.searchsorted(np.unique(labels), labels)]
    return means, pinvh(centred.T @ centred / len(z))


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """P(an out-of-domain image scores higher than an in-domain one): Mann-Whitney's U, scaled."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(outside, inside).statistic / (len(inside) * len(outside)))


def out_of_domain(
    model, reference, clean: dict, clean_images: np.ndarray, sets: dict, windows: int, rng, raw: tuple
) -> dict:
    """Per set: each score's AUROC against the clean traffic, and the check's verdicts and
    estimate on windows of the set alone; then the mixed windows (70 % clean, 30 % photos)."""
    inside = ood_scores(model, reference, clean_images, raw)
    found = {}
    for name, (images, sizes) in sets.items():
        scores = ood_scores(model, reference, images, raw)
        pool = as_pool(observed(model, images, sizes), None)
        size = min(OOD_WINDOW, len(images) * 3 // 4)
        found[name] = {
            "auroc": {score: auroc(inside[score], scores[score]) for score in scores},
            "window": size,
            **alarm_rates(reference, pool, windows, rng, sizes=(size,))[size],
        }
        print(name, found[name], flush=True)
    photos, sizes = next(iter(sets.values()))
    found["mixed"] = mixed_windows(reference, clean, observed(model, photos, sizes), windows, rng)
    print("mixed:", found["mixed"], flush=True)
    return found


def mixed_windows(reference, clean: dict, ood: tuple, windows: int, rng) -> dict:
    """Windows of OOD_WINDOW images, MIXED of them out of domain: the reported share's and the
    in-domain estimate's mean absolute error (points) against the truth (the share mixed in;
    the accuracy of the clean images)."""
    from visionops.config import MonitorParams
    from visionops.monitoring.check import check
    from visionops.monitoring.window import Window

    policy = MonitorParams(min_window=10)
    n_out = round(OOD_WINDOW * MIXED)
    share_errors, estimate_errors, verdicts = [], [], {}
    for _ in range(windows):
        rows = rng.choice(len(clean["probabilities"]), OOD_WINDOW - n_out, replace=False)
        out_rows = rng.choice(len(ood[0]), n_out, replace=False)
        window = Window(
            [],
            np.concatenate([clean["probabilities"][rows], ood[0][out_rows]]),
            np.concatenate([clean["stats"][rows], ood[1][out_rows]]),
            embeddings=np.concatenate([clean["embeddings"][rows], ood[2][out_rows]]),
        )
        result = check(reference, window, policy)
        verdicts[result["verdict"]] = verdicts.get(result["verdict"], 0) + 1
        share_errors.append(abs(result["out_of_domain"]["value"] - MIXED))
        truth = float((clean["probabilities"][rows].argmax(1) == clean["labels"][rows]).mean())
        estimated = result["accuracy"]["estimated"]
        estimate_errors.append(abs(estimated["value"] - truth) if estimated["estimable"] else np.nan)
    return {
        "share_error_points": 100 * float(np.mean(share_errors)),
        "estimate_error_points": 100 * float(np.mean(estimate_errors)),
        "verdicts": {verdict: n / windows for verdict, n in sorted(verdicts.items())},
    }


def halvings(
    everything: tuple, labels: np.ndarray, classes: list[str], count: int, windows: int, rng
) -> dict:
    """False-alarm rates averaged over `count` random halvings of the test images into a
    reference and a traffic pool (which never share an image): one fixed reference's luck
    shows in every window drawn against it, so one halving alone cannot say the rate."""
    from visionops.monitoring.accuracy import atc_threshold
    from visionops.monitoring.domain import DomainAccumulator
    from visionops.monitoring.mmd import MAX_ROWS, evenly_spaced
    from visionops.monitoring.reference import Reference

    probabilities, stats, embeddings = everything
    rates = []
    for _ in range(count):
        order = rng.permutation(len(labels))
        ref, traffic = np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2 :])
        embedded = None if embeddings is None else embeddings[ref][evenly_spaced(len(ref), MAX_ROWS)]
        p = probabilities[ref].astype(np.float32)
        domain = None
        if embeddings is not None:
            accumulator = DomainAccumulator(len(ref), len(classes))
            accumulator.add(0, embeddings[ref], probabilities[ref], labels[ref])
            domain = accumulator.fit()
        reference = Reference(
            classes, p, labels[ref], stats[ref], "", atc_threshold(p, labels[ref]), embedded, domain
        )
        pool = {
            "probabilities": probabilities[traffic],
            "stats": stats[traffic],
            "embeddings": None if embeddings is None else embeddings[traffic],
            "labels": labels[traffic],
        }
        rates.append(alarm_rates(reference, pool, windows, rng))
    return {
        size: {
            key: float(np.mean([r[size][key] for r in rates]))
            for key, value in rates[0][size].items()
            if isinstance(value, float)
        }
        for size in SIZES
    }


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode not in (0, 3, 4, 5):
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
    parser.add_argument("--ood-only", action="store_true", help="of the shifts, only the out-of-domain sets")
    parser.add_argument("--speed", action="store_true", help="also time monitor vs predict on 10,000 files")
    parser.add_argument("--out", type=Path, default=Path("drift_power.json"))
    parser.add_argument("--save-model", type=Path, help="keep the model trained here at this .onnx path")
    parser.add_argument(
        "--save-embeddings",
        type=Path,
        help="write the reference's and the clean and mildly corrupted traffic's embeddings here "
        "(.npz) for benchmarks/mmd_vs_alibi.py",
    )
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

        clean = as_pool(observed(model, images[prod], sizes[prod]), labels[prod])
        saved = {"reference": reference.embeddings, "none": clean["embeddings"]}
        results["shifts"]["none (false alarms)"] = alarm_rates(reference, clean, args.clean_windows, rng)
        print("none:", results["shifts"]["none (false alarms)"], flush=True)
        if args.halvings:
            everything = observed(model, images, sizes)
            key = f"none, {args.halvings} random halvings"
            results["shifts"][key] = halvings(
                everything, labels, model.classes, args.halvings, args.clean_windows, rng
            )
            print(f"{key}:", results["shifts"][key], flush=True)
        for name, transforms in ({} if args.false_alarms_only or args.ood_only else corruptions()).items():
            for severity, transform in zip(SEVERITIES, transforms, strict=True):
                shifted = as_pool(observed(model, images[prod], sizes[prod], transform), labels[prod])
                key = f"{name} ({severity})"
                if severity == "mild":
                    saved[key] = shifted["embeddings"]
                accuracy = float((shifted["probabilities"].argmax(1) == shifted["labels"]).mean())
                results["shifts"][key] = alarm_rates(reference, shifted, args.windows, rng) | {
                    "accuracy": accuracy
                }
                print(key, results["shifts"][key], flush=True)
        if args.save_embeddings and saved["reference"] is not None:
            np.savez(args.save_embeddings, **saved)
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
            sets = out_of_domain_sets(args.ood, size, channels, rng)
            raw = raw_mahalanobis(model.outputs(images[ref])[1], labels[ref])
            results["out_of_domain"] = out_of_domain(
                model, reference, clean, images[prod], sets, args.windows, rng, raw
            )
        if args.speed:
            save_reference(reference, work / "reference")
            results["speed"] = speed(model_path, work / "reference", work / "images" / "test", work)
            print("speed:", results["speed"], flush=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(table(results))


def table(results: dict) -> str:
    """Markdown: alarm rates per window size, which test family fired at 500 (softmax KS,
    domain share, embedding MMD, class shares, image statistics), the accuracy estimate's
    error; then the out-of-domain sets."""
    lines = [
        "| shift | accuracy | alarms @100 | @500 | @1000 "
        "| @500 by the model's tests | @500 by softmax / domain / embedding / class shares / image stats "
        "| ATC error @500 (points) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, rates in results["shifts"].items():
        cells = [f"{rates[n]['alarm_rate']:.2f}" if n in rates else "" for n in SIZES]
        at500 = rates.get(500, {})
        families = " / ".join(f"{at500[f + '_rate']:.2f}" for f in FAMILIES) if at500 else ""
        err = f"{at500['atc_error_points']:.1f}" if "atc_error_points" in at500 else ""
        acc = f"{rates['accuracy']:.3f}" if "accuracy" in rates else ""
        model = f"{at500['model_rate']:.2f}" if at500 else ""
        lines.append(f"| {name} | {acc} | {' | '.join(cells)} | {model} | {families} | {err} |")
    found = results.get("out_of_domain")
    if found:
        lines += [
            "",
            "| out-of-domain set | AUROC top softmax / energy / Mahalanobis / visionops | window | verdicts "
            "| not estimable | highest estimate |",
            "|---|---|---|---|---|---|",
        ]
        for name, row in found.items():
            if name == "mixed":
                continue
            aurocs = " / ".join(f"{value:.3f}" for value in row["auroc"].values())
            verdicts = ", ".join(f"{k} {v:.2f}" for k, v in row["verdicts"].items())
            highest = "" if row["highest_estimate"] is None else f"{row['highest_estimate']:.3f}"
            lines.append(
                f"| {name} | {aurocs} | {row['window']} | {verdicts} | {row['not_estimable_rate']:.2f} "
                f"| {highest} |"
            )
        mixed = found["mixed"]
        verdicts = ", ".join(f"{k} {v:.2f}" for k, v in mixed["verdicts"].items())
        lines.append(
            f"\nMixed windows ({OOD_WINDOW} images, {MIXED:.0%} hymenoptera photos): share error "
            f"{mixed['share_error_points']:.1f} points, in-domain estimate error "
            f"{mixed['estimate_error_points']:.1f} points; verdicts {verdicts}."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
