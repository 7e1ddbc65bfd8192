"""One row per image file: where it is, what it is, whether it decodes, and a pixel hash."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pandas as pd

from visionops.data.layout import iter_images

COLUMNS = [
    "path",
    "split",
    "label",
    "width",
    "height",
    "channels",
    "mode",
    "format",
    "file_bytes",
    "sha256",
    "decode_ok",
    "error",
]


def build_manifest(root: Path, progress: bool = True) -> pd.DataFrame:
    """Scan root/<split>/<class>/* and describe every file (paths relative to root)."""
    from tqdm import tqdm

    files = list(iter_images(root))
    rows = [
        {"path": path.relative_to(root).as_posix(), "split": split, "label": label} | describe_image(path)
        for split, label, path in tqdm(files, desc="manifest", unit="img", disable=None if progress else True)
    ]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.astype({"width": "Int64", "height": "Int64", "channels": "Int64"})


def describe_image(path: Path) -> dict[str, Any]:
    """Decode one file fully; report its size, mode and a hash of the decoded pixels.

    The hash covers mode, size and pixels, not the file bytes, so the same picture saved
    in two formats collides. A file that fails to decode gets decode_ok=False and the error.
    """
    from PIL import Image

    info: dict[str, Any] = {"file_bytes": path.stat().st_size, "decode_ok": False, "error": ""}
    try:
        with Image.open(path) as img:
            img.load()
            digest = hashlib.sha256(f"{img.mode}:{img.size}:".encode())
            digest.update(img.tobytes())
            info.update(
                width=img.width,
                height=img.height,
                channels=len(img.getbands()),
                mode=img.mode,
                format=img.format,
                sha256=digest.hexdigest(),
                decode_ok=True,
            )
    except Exception as exc:  # any decoder failure is data, reported by the suite
        info["error"] = f"{type(exc).__name__}: {exc}"
    return info


def class_counts(manifest: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Images per (split, class), including zero rows for empty classes."""
    decoded = manifest[manifest["decode_ok"]]
    splits = sorted(set(manifest["split"]) | {"train", "test"})
    index = pd.MultiIndex.from_product([splits, classes], names=["split", "label"])
    counts = decoded.groupby(["split", "label"]).size().reindex(index, fill_value=0)
    frame = counts.rename("count").reset_index()
    frame.insert(0, "path", frame["split"] + "/" + frame["label"])
    return frame
