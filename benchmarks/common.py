"""Benchmark data: a CIFAR-10 JPEG subset (from the shared archive) or the embedded digits,
written as class folders, and packed into uint8 arrays the way the augment stage does."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np


def write_images(root: Path, cifar: Path | None, per_class: int) -> dict:
    """Class folders under root/{train,test}; returns facts the benchmarks need."""
    if cifar:
        with tarfile.open(cifar) as tar:
            taken: dict[tuple[str, str], int] = {}
            members = []
            for member in tar:
                parts = member.name.split("/")
                if member.isfile() and len(parts) == 3 and parts[0] in ("train", "test"):
                    key = (parts[0], parts[1])
                    limit = per_class if parts[0] == "train" else max(1, per_class // 5)
                    if taken.get(key, 0) < limit:
                        taken[key] = taken.get(key, 0) + 1
                        members.append(member)
            tar.extractall(root, members=members, filter="data")
        return {
            "name": "cifar10 (JPEG)",
            "size": 32,
            "channels": 3,
            "padding": 4,
            "hflip": True,
            "resize": False,
        }
    from visionops.config import DataParams
    from visionops.data.sources import materialize

    materialize(DataParams(), root)
    return {
        "name": "digits (PNG, 8 px -> 32 px)",
        "size": 32,
        "channels": 1,
        "padding": 2,
        "hflip": False,
        "resize": True,
    }


def pack_folders(root: Path, size: int, channels: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Decode every image once, resized to size x size: {split: (uint8 NHWC, labels)}."""
    from visionops.augment.pack import pack
    from visionops.augment.policy import build_eval_transform
    from visionops.data.layout import iter_images

    resize = build_eval_transform(size)
    files = list(iter_images(root))
    classes = sorted({label for _, label, _ in files})
    arrays = {}
    for split in ("train", "test"):
        rows = [(path, classes.index(label)) for s, label, path in files if s == split]
        images, _ = pack([p for p, _ in rows], channels, resize, 0, resize, progress=False)
        arrays[split] = (images, np.array([y for _, y in rows]))
    return arrays
