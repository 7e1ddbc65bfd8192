"""Training throughput: visionops' loop vs the textbook PyTorch loop, same model/data/epochs.

textbook:  torchvision ImageFolder over image files, per-sample PIL transforms
           (RandomCrop with padding, [flip], ToTensor, Normalize), DataLoader(2 workers).
visionops: images decoded once into memory-mapped uint8 arrays (the augment stage's code),
           batches gathered from them (on a GPU: kept on the device when they fit), batched
           translate/flip + normalisation as tensor ops (training.loop.fit).

Each variant runs in its own subprocess so peak memory (max RSS) is its own. Prints the
ratio; nothing is asserted. Usage:
    python benchmarks/train_throughput.py                       # embedded digits, upscaled to 32 px
    python benchmarks/train_throughput.py --cifar ../shared/datasets/cifar10_jpg.tar.gz --per-class 1000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import prepare_folders, write_images

import visionops  # noqa: F401  (process hygiene)

BATCH = 64
LR = 3e-3


def prepare(args, root: Path) -> dict:
    """Write the image files the textbook loop reads; return facts about them."""
    return write_images(root, args.cifar, args.per_class)


def spec_for(info: dict) -> dict:
    return {
        "arch": "simple_cnn",
        "in_channels": info["channels"],
        "num_classes": 10,
        "width": info["width"],
        "dropout": 0.0,
    }


def textbook(root: str, info: dict, epochs: int) -> dict:
    """The tutorial loop: per-sample transforms on PIL images in DataLoader workers."""
    import torch
    from torchvision import datasets, transforms

    from visionops.models.zoo import create_model

    mode = "L" if info["channels"] == 1 else "RGB"
    steps = [transforms.Lambda(lambda im: im.convert(mode))]
    if info["resize"]:
        steps.append(transforms.Resize(info["size"]))
    train_tf = transforms.Compose(
        [
            *steps,
            transforms.RandomCrop(info["size"], padding=info["padding"]),
            *([transforms.RandomHorizontalFlip()] if info["hflip"] else []),
            transforms.ToTensor(),
            transforms.Normalize([0.5] * info["channels"], [0.25] * info["channels"]),
        ]
    )
    train = datasets.ImageFolder(f"{root}/train", transform=train_tf)
    loader = torch.utils.data.DataLoader(train, batch_size=BATCH, shuffle=True, num_workers=2)
    torch.manual_seed(0)
    model = create_model(spec_for(info))
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    criterion = torch.nn.CrossEntropyLoss()
    start, seen = time.perf_counter(), 0
    for _ in range(epochs):
        model.train()
        for images, labels in loader:
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
            seen += len(labels)
    seconds = time.perf_counter() - start
    test_tf = transforms.Compose(
        [
            *steps,
            transforms.ToTensor(),
            transforms.Normalize([0.5] * info["channels"], [0.25] * info["channels"]),
        ]
    )
    test = torch.utils.data.DataLoader(
        datasets.ImageFolder(f"{root}/test", transform=test_tf), batch_size=256
    )
    return _result(seen / seconds, _accuracy(model, test), seconds, 0.0)


def ours(root: str, info: dict, epochs: int) -> dict:
    """visionops: decode once (timed separately), then fit() on the prepared uint8 data."""
    import torch

    from visionops.config import TrainParams
    from visionops.data.loader import ImageBatches, choose_resident
    from visionops.device import resolve_device
    from visionops.inference import predict_logits
    from visionops.models.zoo import create_model
    from visionops.training.loop import fit

    decode_start = time.perf_counter()
    data = prepare_folders(Path(root), Path(root) / "prepared", info["size"], info["channels"])
    decode = time.perf_counter() - decode_start
    mean, std = data.meta.mean, data.meta.std
    setup = resolve_device("auto")
    resident = choose_resident(data.train.x.nbytes, setup.device, 2048)  # what the train stage picks
    train = ImageBatches(data.train.x, data.train.y, mean, std, setup.device, resident=resident)
    test = ImageBatches(data.test.x, data.test.y, mean, std, setup.device)
    torch.manual_seed(0)
    model = create_model(spec_for(info))
    cfg = TrainParams(
        epochs=epochs, lr=LR, batch_size=BATCH, crop_padding=info["padding"], hflip=info["hflip"]
    )
    start = time.perf_counter()
    fit(model, train, None, cfg, setup, progress=False)
    seconds = time.perf_counter() - start
    accuracy = (predict_logits(model, test, 256, setup).argmax(1) == test.labels).float().mean().item()
    return _result(len(train) * epochs / seconds, accuracy, seconds, decode)


def _accuracy(model, loader) -> float:
    import torch

    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            correct += (model(images).argmax(1) == labels).sum().item()
            total += len(labels)
    return correct / total


def _result(images_per_s: float, accuracy: float, seconds: float, decode: float) -> dict:
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "images_per_s": images_per_s,
        "accuracy": accuracy,
        "seconds": seconds,
        "decode_s": decode,
        "peak_rss_mb": peak_mb,
    }


def in_child(variant: str, root: str, info: dict, epochs: int) -> dict:
    """Run one variant in a fresh interpreter; its JSON result is the last stdout line."""
    cmd = [
        sys.executable,
        __file__,
        "--variant",
        variant,
        "--root",
        root,
        "--info",
        json.dumps(info),
        "--epochs",
        str(epochs),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cifar", type=Path, help="CIFAR-10 JPEG archive (train/<class>/, test/<class>/)")
    parser.add_argument(
        "--per-class", type=int, default=500, help="CIFAR train images per class (default 500)"
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--width", type=int, default=32, help="simple_cnn width: smaller = less compute per image"
    )
    parser.add_argument("--variant", choices=["textbook", "ours"], help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--info", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:  # child process: one variant, JSON out
        run = textbook if args.variant == "textbook" else ours
        print(json.dumps(run(args.root, json.loads(args.info), args.epochs)))
        return
    with tempfile.TemporaryDirectory(prefix="visionops-bench-") as tmp:
        info = prepare(args, Path(tmp)) | {"width": args.width}
        print(f"data: {info['name']}; simple_cnn width {args.width}; {args.epochs} epochs, batch {BATCH}")
        base = in_child("textbook", tmp, info, args.epochs)
        fast = in_child("ours", tmp, info, args.epochs)
    for name, r in (("textbook loop", base), ("visionops loop", fast)):
        print(
            f"{name:15s} {r['images_per_s']:8.0f} img/s {r['seconds']:6.1f} s  test acc {r['accuracy']:.3f}  "
            f"peak RSS {r['peak_rss_mb']:.0f} MB"
            + (f"  (one-time decode {r['decode_s']:.1f} s)" if r["decode_s"] else "")
        )
    ratio = fast["images_per_s"] / base["images_per_s"]
    print(f"throughput ratio visionops / textbook: {ratio:.2f}x (target >= 3x)")
    print(f"peak memory ratio visionops / textbook: {fast['peak_rss_mb'] / base['peak_rss_mb']:.2f}x")


if __name__ == "__main__":
    main()
