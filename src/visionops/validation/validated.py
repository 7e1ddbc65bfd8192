"""data/validated as a version costs what it adds (issue 48): what validate learnt about each
image lives in the descriptions' append-only parts (by content), its path, split and label in
data/raw's index, and what the dataset-wide checks flagged in a sparse table. So a version writes
the descriptions of its new images, the flags (a row per flagged image) and meta.json, not a
table of every image; `read_manifest` joins the three into the manifest the stage built.

    data/validated/
      descriptions/part-NNNN.json   validation/descriptions.py
      flags.csv                     path, and every flag, for the images with one (quarantined too)
      meta.json                     classes, source record, params, the parts, and the sha256 of
                                    flags.csv and of the index rows that were validated
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from visionops.data.shards import RawImages
from visionops.errors import VisionOpsError
from visionops.validation.descriptions import Cache

COLUMNS = [
    "path", "split", "label", "width", "height", "aspect", "channels", "mode", "format",
    "file_bytes", "file_sha256", "sha256", "phash", "brightness", "contrast", "blur", "decode_ok", "error",
]  # fmt: skip
FLAGS = ("leaked", "dup_in_split", "near_leaked", "label_conflict", "too_dark_or_bright", "nearly_blank",
         "very_blurry")  # fmt: skip
FLAGS_FILE = "flags.csv"
FLAG_COLUMNS = [*FLAGS, "conflicts_with", "quarantined"]
DESCRIBED = [c for c in COLUMNS if c not in ("path", "split", "label", "file_sha256")]
REVALIDATE = "re-run the data stages (`dvc repro`), or `dvc checkout` the recorded version"


def flagged(manifest: pd.DataFrame) -> pd.DataFrame:
    """The rows of `manifest` (with its flags and `quarantined`) that carry any flag, or failed to
    decode: what flags.csv keeps."""
    marks = manifest[[*FLAGS, "quarantined"]].astype(bool).any(axis=1) | ~manifest["decode_ok"].astype(bool)
    return manifest.loc[marks, ["path", *FLAG_COLUMNS]].reset_index(drop=True)


def index_sha256(raw: RawImages) -> str:
    """sha256 of the index rows validate checks: each image's path, split, label and content."""
    digest = hashlib.sha256()
    for entry in raw:
        digest.update(f"{entry.path}\0{entry.split}\0{entry.label}\0{entry.sha256}\n".encode())
    return digest.hexdigest()


def read_manifest(raw: RawImages, folder: Path, meta: dict, cache: Cache) -> pd.DataFrame:
    """The manifest validate built for `raw`: its index rows, each image's description (by its
    content) and its flags. Refused when data/raw or flags.csv changed after validate."""
    folder = Path(folder)
    if meta.get("index_sha256") != index_sha256(raw):
        raise VisionOpsError(
            f"data/raw changed after validate checked it ({folder / 'meta.json'} says otherwise)", REVALIDATE
        )
    flags_path = folder / FLAGS_FILE
    if not flags_path.is_file() or hashlib.sha256(flags_path.read_bytes()).hexdigest() != meta.get(
        "flags_sha256"
    ):
        raise VisionOpsError(
            f"{flags_path} changed after validate wrote it (truncated or edited)", REVALIDATE
        )
    rows = [
        {"path": e.path, "split": e.split, "label": e.label, "file_sha256": e.sha256}
        | cache.rows.get(e.sha256, {"decode_ok": False, "error": "not described (changed after validation)"})
        for e in raw
    ]
    manifest = pd.DataFrame(rows, columns=COLUMNS)
    marks = pd.read_csv(flags_path, dtype={"path": str, "conflicts_with": str}).set_index("path")
    for column in FLAG_COLUMNS:
        default = "" if column == "conflicts_with" else False
        values = manifest["path"].map(marks[column]) if column in marks else None
        manifest[column] = default if values is None else values.fillna(default)
        if column != "conflicts_with":
            manifest[column] = manifest[column].astype(bool)
    return manifest.astype({"width": "Int64", "height": "Int64", "channels": "Int64"})
