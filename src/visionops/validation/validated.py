"""data/validated as a version costs what it adds (issue 48): what validate learnt about each
image lives in the descriptions' append-only parts (by content), its path, split and label in
data/raw's index, and what the dataset-wide checks flagged in a sparse table. So a version writes
the descriptions of its new images, the flags (a row per flagged image) and meta.json, not a
table of every image; `read_manifest` joins the three into the manifest the stage built, and
`read_selection` gives augment what it needs from the index and the flags alone.

    data/validated/
      descriptions/part-NNNN.json   validation/descriptions.py
      flags.csv                     path, every flag and decode_ok, for the images with a flag or
                                    that do not decode (quarantined too)
      meta.json                     classes, source record, params, the parts, and the sha256 of
                                    flags.csv and of the index rows that were validated
"""

from __future__ import annotations

import hashlib
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import Any

import pandas as pd

from visionops.data.shards import RawImages
from visionops.errors import VisionOpsError
from visionops.validation.descriptions import Cache, Descriptions

COLUMNS = [
    "path", "split", "label", "width", "height", "aspect", "channels", "mode", "format",
    "file_bytes", "file_sha256", "sha256", "phash", "brightness", "contrast", "blur", "decode_ok", "error",
]  # fmt: skip
FLAGS = ("leaked", "dup_in_split", "near_leaked", "label_conflict", "too_dark_or_bright", "nearly_blank",
         "very_blurry")  # fmt: skip
FLAGS_FILE = "flags.csv"
FLAG_COLUMNS = [*FLAGS, "conflicts_with", "quarantined"]
DESCRIBED = [c for c in COLUMNS if c not in ("path", "split", "label", "file_sha256")]
NAN = float("nan")
REVALIDATE = "re-run the data stages (`dvc repro`), or `dvc checkout` the recorded version"


def flagged(manifest: pd.DataFrame) -> pd.DataFrame:
    """The rows of `manifest` (with its flags and `quarantined`) that carry any flag, or failed to
    decode: what flags.csv keeps."""
    marks = manifest[[*FLAGS, "quarantined"]].astype(bool).any(axis=1) | ~manifest["decode_ok"].astype(bool)
    return manifest.loc[marks, ["path", *FLAG_COLUMNS, "decode_ok"]].reset_index(drop=True)


def index_sha256(raw: RawImages) -> str:
    """sha256 of the index rows validate checks: each image's path, split, label and content."""
    digest, rows = hashlib.sha256(), iter(raw.entries)
    while block := list(islice(rows, 8192)):  # an update per block: one per row cost 0.1 s at 60,000
        digest.update("".join(f"{e.member.path}\0{e.split}\0{e.label}\0{e.sha256}\n" for e in block).encode())
    return digest.hexdigest()


def read_manifest(raw: RawImages, folder: Path, meta: dict, cache: Cache) -> pd.DataFrame:
    """The manifest validate built for `raw`: its index rows, each image's description (by its
    content) and its flags. Refused when data/raw or flags.csv changed after validate."""
    marks = recorded_flags(raw, folder, meta)
    undescribed = {"decode_ok": False, "error": "not described (changed after validation)"}
    manifest = manifest_frame(raw, [e.sha256 for e in raw], cache.rows, undescribed)
    for column in FLAG_COLUMNS:
        default = "" if column == "conflicts_with" else False
        values = manifest["path"].map(marks[column]) if column in marks else None
        manifest[column] = default if values is None else values.fillna(default)
        if column != "conflicts_with":
            manifest[column] = manifest[column].astype(bool)
    return manifest


def read_selection(raw: RawImages, folder: Path, meta: dict) -> pd.DataFrame:
    """What augment takes of validate's work: each image's path, split, label and content key,
    whether it decodes and whether it was quarantined, from the index and flags.csv alone (the
    descriptions are not read: they cost 0.7 s a run at 60,000 images). Refused as read_manifest."""
    marks = recorded_flags(raw, folder, meta)
    if "decode_ok" not in marks:
        raise VisionOpsError(
            f"{Path(folder) / FLAGS_FILE} was written by an older visionops (no decode_ok column)", REVALIDATE
        )
    frame = pd.DataFrame(index_columns(raw, [entry.sha256 for entry in raw]))
    for column, default in (("decode_ok", True), ("quarantined", False)):  # unflagged: decodes, kept
        frame[column] = frame["path"].map(marks[column]).fillna(default).astype(bool)
    return frame


def recorded_flags(raw: RawImages, folder: Path, meta: dict) -> pd.DataFrame:
    """flags.csv (indexed by path), once data/raw and flags.csv are shown to be what validate
    checked and wrote (meta.json's sha256 of each)."""
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
    return pd.read_csv(flags_path, dtype={"path": str, "conflicts_with": str}).set_index("path")


def manifest_frame(
    raw: RawImages, keys: list[str], described: Descriptions, missing: dict[str, Any] | None = None
) -> pd.DataFrame:
    """The manifest's COLUMNS for `raw`'s images in index order: each one's path, split and label,
    its content key (`keys`) and its description by that key (`missing` where there is none).
    Built column by column: a frame of 60,000 row dicts cost half a second in each stage."""
    whole, fallback = itemgetter(*DESCRIBED), missing or {}

    def values(key: str) -> tuple:
        row = described.get(key, fallback)
        try:
            return whole(row)
        except KeyError:  # an undecodable image's: NaN where it lacks a column, as pandas puts it
            return tuple(row.get(column, NAN) for column in DESCRIBED)

    frame = pd.DataFrame([values(key) for key in keys], columns=DESCRIBED)
    frame = frame.assign(**index_columns(raw, keys))
    return frame[COLUMNS].astype({"width": "Int64", "height": "Int64", "channels": "Int64"})


def index_columns(raw: RawImages, keys: list[str]) -> dict[str, list]:
    """Each image's path, split and label from data/raw's index, and its content key."""
    return {
        "path": [entry.member.path for entry in raw],
        "split": [entry.split for entry in raw],
        "label": [entry.label for entry in raw],
        "file_sha256": list(keys),
    }
