"""The packed-data format between augment and the model stages: train.npz, test.npz, meta.json.

train.npz holds x (uint8 [N, H, W, C]), y, source (index of the original image) and copy
(0 = the resized original, k > 0 = the k-th augmented copy).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from visionops.data.split import stratified_split
from visionops.errors import VisionOpsError
from visionops.io import read_json, write_json


@dataclass
class Prepared:
    """Arrays and metadata written by the augment stage."""

    train: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    meta: dict[str, Any]

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])


def save_prepared(root: Path, prepared: Prepared) -> None:
    """Write the two .npz files and meta.json under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "train.npz", **prepared.train)
    np.savez(root / "test.npz", **prepared.test)
    write_json(root / "meta.json", prepared.meta)


def load_prepared(root: Path) -> Prepared:
    """Read what `save_prepared` wrote, with a clear error when the augment stage has not run."""
    root = Path(root)
    if not (root / "meta.json").is_file():
        raise VisionOpsError(f"no prepared data in {root}", "run `dvc repro augment` first")
    with np.load(root / "train.npz") as train, np.load(root / "test.npz") as test:
        return Prepared(dict(train), dict(test), read_json(root / "meta.json"))


def train_val_split(
    train: dict[str, np.ndarray], val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row masks (train, val) split by original image, stratified by label.

    All copies of one original land on the same side (no augmented twin leaks into val),
    and val keeps only the un-augmented originals.
    """
    originals = train["copy"] == 0
    if val_fraction == 0:
        return np.ones(len(train["y"]), bool), np.zeros(len(train["y"]), bool)
    sources, labels = train["source"][originals], train["y"][originals]
    _, val_idx = stratified_split(labels, val_fraction, seed)
    in_val = np.isin(train["source"], sources[val_idx])
    return ~in_val, in_val & originals


def to_model_input(images: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """uint8 [N, H, W, C] -> normalised float32 [N, C, H, W], as the model and ONNX expect."""
    mean = np.asarray(meta["mean"], np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(meta["std"], np.float32).reshape(1, -1, 1, 1)
    scaled = images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    return np.ascontiguousarray((scaled - mean) / std, dtype=np.float32)


def fingerprint(root: Path) -> str:
    """sha256 over the packed arrays: identifies the exact data a model was trained on."""
    import hashlib

    digest = hashlib.sha256()
    for name in ("train.npz", "test.npz"):
        with open(Path(root) / name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
