"""Look, don't read: one HTML page of thumbnails for every flagged image, grouped by check
(label conflicts and duplicates as groups side by side, quality outliers one by one), so a
person can judge a warning in seconds. Self-contained (thumbnails inline), beside Data Docs."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import pandas as pd

from visionops.data.shards import RawImages
from visionops.io import write_text

THUMB = 96  # px, the longer side of each thumbnail
PER_SECTION = 60  # images shown per check; the rest are counted


def thumbnail(raw: RawImages, path: str) -> str:
    """A PNG data URI of the image at THUMB px (a grey box when it cannot be read)."""
    from PIL import Image

    try:
        with Image.open(raw.member(path).open()) as img:
            img = img.convert("RGB")
            img.thumbnail((THUMB, THUMB))
    except Exception:
        img = Image.new("RGB", (THUMB, THUMB), (200, 200, 200))
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def groups(manifest: pd.DataFrame) -> dict[str, list[list[str]]]:
    """Check title -> groups of manifest paths to show together (`manifest` as flagged by
    validation.run.flag_all)."""
    conflicts = manifest[manifest["label_conflict"]]
    sections = {
        "label conflict: the same picture under two labels": [
            [row.path, row.conflicts_with.rsplit(" (", 1)[0]] for row in conflicts.itertuples()
        ]
    }
    for column, title in (("leaked", "train/test leakage"), ("dup_in_split", "duplicates within a split")):
        sections[title] = [list(group["path"]) for _, group in manifest[manifest[column]].groupby("sha256")]
    for column, title in (
        ("near_leaked", "near-duplicates across splits"),
        ("too_dark_or_bright", "too dark or bright"),
        ("nearly_blank", "nearly blank"),
        ("very_blurry", "very blurry"),
    ):
        sections[title] = [[path] for path in manifest.loc[manifest[column], "path"]]
    return {title: found for title, found in sections.items() if found}


def write_gallery(manifest: pd.DataFrame, raw: RawImages, destination: Path) -> int:
    """Write the page; returns how many groups it shows in all."""
    labels = dict(zip(manifest["path"].tolist(), manifest["label"].astype(str).tolist(), strict=True))
    parts = [
        "<!doctype html><meta charset='utf-8'><title>visionops: flagged images</title>",
        "<style>body{font:14px sans-serif;margin:1em}.g{display:inline-flex;gap:4px;margin:6px;"
        "padding:4px;border:1px solid #ccc}figure{margin:0;width:110px}figcaption{font-size:10px;"
        "word-break:break-all}img{width:96px;height:96px;object-fit:contain;image-rendering:pixelated;"
        "background:#eee}</style>",
        "<h1>Flagged images</h1>",
    ]
    shown = 0
    found = groups(manifest)
    if not found:
        parts.append("<p>No image was flagged by any check.</p>")
    for title, section in found.items():
        parts.append(f"<h2>{html.escape(title)} ({len(section)})</h2>")
        for group in section[:PER_SECTION]:
            figures = "".join(
                f"<figure><img src='{thumbnail(raw, path)}'><figcaption>{html.escape(path)} "
                f"({html.escape(labels.get(path, '?'))})</figcaption></figure>"
                for path in group
            )
            parts.append(f"<div class='g'>{figures}</div>")
            shown += 1
        if len(section) > PER_SECTION:
            parts.append(f"<p>… and {len(section) - PER_SECTION} more (see results.json)</p>")
    write_text(destination, "\n".join(parts) + "\n")
    return shown
