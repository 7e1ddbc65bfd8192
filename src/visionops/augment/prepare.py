"""Write a whole prepared dataset (see data/prepared.py) from the validated image files,
split by split, chunk by chunk, with the exact normalisation statistics of train."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from visionops.augment.pack import PackSpec, PixelSums, pack_images
from visionops.augment.reuse import KeptRow
from visionops.data.prepared import FORMAT, ArrayWriter, array_path
from visionops.data.shards import Member, RawImages
from visionops.errors import VisionOpsError
from visionops.io import REPRODUCE, file_sha256, write_csv

MANIFEST_COLUMNS = {
    "path": object,
    "split": object,
    "label": object,
    "file_sha256": object,
    "decode_ok": bool,
    "quarantined": bool,
}


def check_manifest(path: Path, recorded: str | None) -> Path:
    """`path`, refused when it is not the manifest validate wrote (sha256 in its meta.json):
    a manifest cut at a line boundary still parses, and would silently drop images."""
    if recorded is not None and file_sha256(path) != recorded:
        raise VisionOpsError(f"{path} changed after validate wrote it (truncated or edited)", REPRODUCE)
    return path


def usable_files(manifest: pd.DataFrame, classes: list[str], source: Path) -> pd.DataFrame:
    """The validated manifest's decodable, not quarantined rows (split, path, label index, file
    sha256). A
    manifest missing a column, or with a torn row (a flag that is not true/false), is named."""
    for column, kind in MANIFEST_COLUMNS.items():
        if column not in manifest.columns or (kind is bool and manifest[column].dtype != bool):
            raise VisionOpsError(
                f"{source} is damaged or truncated (column '{column}' is missing or not all true/false)",
                REPRODUCE,
            )
    usable = manifest[manifest["decode_ok"] & ~manifest["quarantined"]]
    labels = usable["label"].astype(str).map({name: i for i, name in enumerate(classes)})
    if labels.isna().any():
        unknown = sorted(set(usable["label"].astype(str)[labels.isna()]))[:5]
        raise VisionOpsError(f"{source} has labels that are not among the classes: {unknown}", REPRODUCE)
    return usable.assign(label=labels.astype(np.int64))[["split", "path", "label", "file_sha256"]]


def write_prepared(
    root: Path,
    files: pd.DataFrame,
    raw: RawImages,
    spec: PackSpec,
    chunk_mb: float,
    workers: int = 0,
    progress: bool = True,
    kept: dict[str, KeptRow] | None = None,
) -> dict[str, Any]:
    """Pack `files` (columns split, path in `raw`, label index, optionally file_sha256) into
    root: train with `spec.copies` augmented copies of each image, test resized only. An image
    whose file_sha256 is in `kept` is copied from there instead of decoded. Returns the meta
    fields the data produced: format, counts, per-channel mean and std of train's originals."""
    root.mkdir(parents=True, exist_ok=True)
    counts, sums = {}, PixelSums()
    listed = []
    for split, copies in (("train", spec.copies), ("test", 0)):
        rows = files[files["split"] == split].reset_index(drop=True)
        split_spec = PackSpec(spec.image_size, spec.channels, copies, spec.seed, spec.steps)
        per_image = 1 + copies
        shape = (len(rows) * per_image, spec.image_size, spec.image_size, spec.channels)
        members = _members(rows, raw, kept or {})
        with ArrayWriter(array_path(root, split, "x"), shape, np.uint8) as writer:
            split_sums = pack_images(members, split_spec, writer.append, chunk_mb, workers, progress, split)
        labels = rows["label"].to_numpy(np.int64)
        np.save(array_path(root, split, "y"), np.repeat(labels, per_image))
        if split == "train":
            np.save(array_path(root, split, "source"), np.repeat(np.arange(len(rows)), per_image))
            np.save(array_path(root, split, "copy"), np.tile(np.arange(per_image, dtype=np.int16), len(rows)))
            sums = split_sums
        counts[split] = shape[0]
        numbered = rows.assign(index=np.arange(len(rows)))
        listed.append(
            numbered[[c for c in ("split", "index", "path", "label", "file_sha256") if c in numbered]]
        )
    write_csv(root / "files.csv", pd.concat(listed, ignore_index=True))
    mean, std = sums.mean_std()
    return {"format": FORMAT, "counts": counts, "mean": mean, "std": std}


def _members(rows: pd.DataFrame, raw: RawImages, kept: dict[str, KeptRow]) -> list[Member | KeptRow]:
    """Each row's resized original where `kept` has it, else its file in `raw`."""
    members = [raw.member(path) for path in rows["path"]]
    if "file_sha256" not in rows or not kept:
        return members
    return [
        kept[key].for_image(member, key) if key in kept else member
        for member, key in zip(members, rows["file_sha256"], strict=True)
    ]
