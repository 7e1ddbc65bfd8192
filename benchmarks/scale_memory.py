"""Peak memory of the data path as the dataset grows: download (packing a folder), validate,
augment, one train epoch and evaluate, each run as the real stage script in its own process,
with the peak RSS of its whole process tree (the pools' workers included), the prepared
bytes and images/s.

Also two ratios against a baseline run in the same invocation, on the same 32 px data (each side
the best of 3 alternated runs):
  train:   the streamed reader (pread batch by batch, prefetched) vs an in-memory copy
  augment: the chunked packer (threads when images are costly) vs the previous augment stage's
           way (every image decoded in full, resized by albumentations, serially, np.stack)
Usage:
    python benchmarks/scale_memory.py --cifar ../shared/datasets/cifar10_jpg.tar.gz
    python benchmarks/scale_memory.py --cifar ... --sizes 32 128 --counts 10000 60000 --width 8
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 3  # each side of a ratio is the best of this many alternated runs
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def peak_rss_of(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    """Run `cmd`; return (peak RSS of its process tree in bytes, seconds, output)."""
    import psutil

    start = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}  # its own store
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    peak, done = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{output[-4000:]}")
    return peak, time.perf_counter() - start, output


def extract(archive: Path, into: Path) -> Path:
    print(f"extracting {archive} ...", flush=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def project(base: Path, images: Path, count: int) -> tuple[Path, dict]:
    """A project copy whose data/raw is the download stage's pack of a folder of hard links to
    the first `count` CIFAR images (5/6 train, 1/6 test, as CIFAR itself), validated once;
    with the peak RSS (GB) of those two stages."""
    repo = base / f"n{count}"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in files.stdout.split():  # the stages import visionops from this environment
        if name.startswith("pipeline/"):
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    tree = base / f"tree{count}"
    take = {"train": count * 5 // 6 // 10, "test": count // 6 // 10}
    for split, per_class in take.items():
        for label in CLASSES:
            (tree / split / label).mkdir(parents=True)
            for path in sorted((images / split / label).iterdir())[:per_class]:
                os.link(path, tree / split / label / path.name)
    peaks = {}
    for stage, changes in (("download", {"data": {"source": "folder", "path": str(tree)}}), ("validate", {})):
        peaks[f"{stage}_peak_gb"] = run_stage(repo, stage, changes)[0] / 2**30
    shutil.rmtree(tree)
    return repo, peaks


def run_stage(repo: Path, stage: str, changes: dict) -> tuple[float, float, str]:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in changes.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    return peak_rss_of([sys.executable, f"pipeline/{stage}.py"], repo)


def measure(repo: Path, size: int, args) -> dict:
    changes = {
        "augment": {"image_size": size, "channels": 3, "copies": 0},
        "model": {"arch": "simple_cnn", "width": args.width},
        "train": {"epochs": args.epochs, "batch_size": 128, "crop_padding": 0},
    }
    row = {"size": size}
    for stage in ("augment", "train", "evaluate"):
        peak, seconds, output = run_stage(repo, stage, changes)
        row[f"{stage}_peak_gb"] = peak / 2**30
        row[f"{stage}_s"] = seconds
        if stage == "augment":
            row["prepared_gb"] = sum(p.stat().st_size for p in (repo / "data/prepared").glob("*.npy")) / 2**30
        if stage == "train":
            report = json.loads((repo / "reports/train.json").read_text())
            row["train_img_s"] = report["images_per_s"]
            row["data_path"] = next(
                (line.split("data: ", 1)[1] for line in output.splitlines() if "data: " in line), ""
            )
    counts = json.loads((repo / "data/prepared/meta.json").read_text())["counts"]
    row["images"] = counts["train"] + counts["test"]
    row["augment_img_s"] = row["images"] / row["augment_s"]
    return row


def data_path_ratios(repo: Path) -> dict:
    """In this process, on repo's 32 px prepared data: the streamed reader vs an in-memory copy
    (train img/s, one epoch each), and the parallel packer vs a serial np.stack (augment img/s)."""
    import albumentations as A
    import numpy as np
    import torch

    from visionops.augment.pack import PackSpec, chunk_images, in_chunks, pack_chunk
    from visionops.config import TrainParams
    from visionops.data.decode import load_image
    from visionops.data.loader import ImageBatches
    from visionops.data.prepared import open_prepared
    from visionops.data.shards import RawImages
    from visionops.device import resolve_device
    from visionops.models.zoo import create_model
    from visionops.training.loop import fit

    data = open_prepared(repo / "data/prepared")
    setup = resolve_device("cpu")
    sources = {"in-memory": (np.array(data.train.x), True), "streamed": (data.train.x, False)}
    speed = {name: 0.0 for name in sources}
    for _ in range(ROUNDS):  # alternated, best of each: 2 shared cores make single runs noisy
        for name, (images, resident) in sources.items():
            batches = ImageBatches(
                images, data.train.y, data.meta.mean, data.meta.std, setup.device, resident=resident
            )
            torch.manual_seed(0)
            model = create_model({"arch": "simple_cnn", "in_channels": 3, "num_classes": 10, "width": 16})
            cfg = TrainParams(epochs=1, crop_padding=2, hflip=True)
            history = fit(model, batches, None, cfg, setup, progress=False)
            speed[name] = max(speed[name], history[0]["images_per_s"])
    del sources

    raw = RawImages(repo / "data/raw")
    members = [entry.member for entry in raw]
    resize = A.Compose([A.Resize(height=32, width=32)])  # the old augment: serial, full decode
    spec = PackSpec(32, 3)
    decode = partial(pack_chunk, spec)
    serial = chunked = 0.0
    for _ in range(ROUNDS):
        start = time.perf_counter()
        stacked = np.stack([resize(image=load_image(m.open(), 3))["image"] for m in members])
        serial = max(serial, len(members) / (time.perf_counter() - start))
        del stacked
        start = time.perf_counter()
        in_chunks(members, decode, lambda *_: None, chunk_images(spec, 32), progress=False)
        chunked = max(chunked, len(members) / (time.perf_counter() - start))
    return {
        "train_streamed_img_s": speed["streamed"],
        "train_in_memory_img_s": speed["in-memory"],
        "augment_chunked_img_s": chunked,
        "augment_serial_stack_img_s": serial,
    }


def describe(row: dict) -> str:
    return (
        f"{row['count']:>6} images @{row['size']:>3}px: prepared {row['prepared_gb']:.2f} GB | peak RSS "
        f"augment {row['augment_peak_gb']:.2f} GB, train {row['train_peak_gb']:.2f} GB, evaluate "
        f"{row['evaluate_peak_gb']:.2f} GB | augment {row['augment_img_s']:.0f} img/s, train "
        f"{row['train_img_s']:.0f} img/s ({row['data_path']})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--cifar", type=Path, required=True, help="CIFAR-10 JPEG archive (train/<class>/, test/<class>/)"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--counts", type=int, nargs="+", default=[10_000, 30_000, 60_000])
    parser.add_argument(
        "--width", type=int, default=8, help="simple_cnn width (the data path is what is measured)"
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="visionops-scale-") as tmp:
        images = extract(args.cifar, Path(tmp) / "cifar")
        for count in args.counts:
            repo, data_peaks = project(Path(tmp), images, count)
            print(
                f"{count:>6} images: peak RSS "
                + ", ".join(f"{k[:-8]} {v:.2f} GB" for k, v in data_peaks.items())
            )
            for size in args.sizes:
                row = measure(repo, size, args) | {"count": count} | data_peaks
                rows.append(row)
                print(describe(row), flush=True)
            if count == args.counts[0]:
                if args.sizes[-1] != 32:  # the ratios are taken on 32 px prepared data
                    run_stage(repo, "augment", {"augment": {"image_size": 32, "channels": 3, "copies": 0}})
                ratios = data_path_ratios(repo)
            shutil.rmtree(repo)
    print("\npeak RSS flatness (largest / smallest count, per size and stage):")
    for size in args.sizes:
        for stage in ("download", "validate", "augment", "train", "evaluate"):
            peaks = [r[f"{stage}_peak_gb"] for r in rows if r["size"] == size]
            print(f"  {size:>3}px {stage:8s} {max(peaks) / min(peaks):.2f}x  (max {max(peaks):.2f} GB)")
    streamed, in_memory = ratios["train_streamed_img_s"], ratios["train_in_memory_img_s"]
    print(f"\ntrain at 32 px, streamed / in-memory: {streamed / in_memory:.2f}x ", end="")
    print(f"({streamed:.0f} vs {in_memory:.0f} img/s; target >= 0.9x)")
    chunked, serial = ratios["augment_chunked_img_s"], ratios["augment_serial_stack_img_s"]
    print(f"augment at 32 px, chunked parallel / serial np.stack: {chunked / serial:.2f}x ", end="")
    print(f"({chunked:.0f} vs {serial:.0f} img/s; target >= 1x)")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
