"""One row per image of data/raw: its path, what it is, whether it decodes, and a pixel hash."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Set as AbstractSet
from typing import Any

import numpy as np
import pandas as pd

from visionops.data.decode import open_image
from visionops.data.shards import Member, RawImages
from visionops.validation.descriptions import Descriptions, audit_sample, canonical
from visionops.validation.near import NONE, closest_in_other_group
from visionops.validation.quality import quality_stats
from visionops.validation.validated import FLAGS, manifest_frame

PARALLEL_FROM = 256  # below this many files a process pool costs more than it saves


def file_keys(raw: RawImages, checked: dict[str, list[int]]) -> tuple[list[str], dict[str, list[int]]]:
    """Each image's file sha256, and the stamps (size, mtime, inode) of the shards whose images
    all match the index now. The index's sha256 is trusted for a shard whose stamp is in
    `checked` (it was read and matched before, and is the same file: a new version carries it
    unchanged); any other shard's images are read and hashed (a new shard, or data/raw edited in
    place: a changed image then keys its real bytes)."""
    shards = {id(entry.member.shard): entry.member.shard for entry in raw}  # one Path per shard
    stamps = {shard.name: _stamp(shard) for shard in shards.values()}
    trusted = {at for at, shard in shards.items() if checked.get(shard.name) == stamps[shard.name]}
    if len(trusted) == len(shards):  # every shard as checked before: the index's keys
        return [entry.sha256 for entry in raw], stamps
    keys, differ = [], set()
    for entry in raw:
        if id(entry.member.shard) in trusted:
            keys.append(entry.sha256)
            continue
        key = hashlib.sha256(entry.member.read()).hexdigest()
        if key != entry.sha256:
            differ.add(entry.member.shard.name)  # never trusted: read again next time
        keys.append(key)
    return keys, {name: stamp for name, stamp in stamps.items() if name not in differ}


def _stamp(shard) -> list[int]:
    stat = shard.stat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def build_manifest(
    raw: RawImages,
    progress: bool = True,
    known: Descriptions | None = None,
    workers: int | None = None,
    keys: list[str] | None = None,
) -> tuple[pd.DataFrame, Descriptions]:
    """Describe every image of `raw` (in its index order; paths as split/class/name), and
    return the descriptions by file content (sha256 of the bytes: `keys`, default the index's)
    of exactly these images.

    Images are decoded in parallel across `workers` processes (default: all cores). Those whose
    content is in `known` (what an earlier run described) are not decoded again: a relabelled
    image keeps its description, and its label is checked again by the dataset-wide checks.
    """
    entries = list(raw)
    keys = keys if keys is not None else [entry.sha256 for entry in entries]  # see file_keys
    known = checked_cache(entries, keys, dict(known or {}), workers)
    todo = sorted({key: i for i, key in enumerate(keys) if key not in known}.values())
    if known and progress:
        print(f"manifest: {len(entries) - len(todo)} image(s) described before, {len(todo)} to describe")
    described = describe_many([entries[i].member for i in todo], workers, progress)
    for index, info in zip(todo, described, strict=True):
        known[keys[index]] = info
    return manifest_frame(raw, keys, known), {key: known[key] for key in keys}


def checked_cache(entries: list, keys: list[str], known: Descriptions, workers: int | None) -> Descriptions:
    """`known`, when a sample of the images it describes comes out the same described again
    (descriptions.audit_sample); {} with the reason on stderr when one differs."""
    import sys

    first = {key: i for i, key in reversed(list(enumerate(keys))) if key in known}
    audit = audit_sample(sorted(first))
    if not audit:
        return known
    again = describe_many([entries[first[key]].member for key in audit], workers, progress=False)
    differ = [key for key, info in zip(audit, again, strict=True) if canonical(info) != canonical(known[key])]
    if not differ:
        return known
    print(
        f"validate: not reusing the cached descriptions: {len(differ)} of the {len(audit)} checked again "
        f"differ from their images (e.g. {entries[first[differ[0]]].path}); every image is described again",
        file=sys.stderr,
    )
    return {}


def flags_hold(
    flagged: pd.DataFrame,
    raw: RawImages,
    descriptions: Descriptions,
    workers: int | None = None,
    confirmed: AbstractSet[str] = frozenset(),
) -> set[str] | None:
    """Do the images behind every flag (and every undecodable one) come out as described, when
    described again? A cached description never decides a warning or a refusal on its own. Those
    this machine confirmed before (`confirmed`: their `confirmations`, kept outside data/validated)
    are not decoded again: an edited description has another confirmation. Returns the
    confirmations of every flagged image; None, with the first that differs on stderr, when one
    does not hold."""
    import sys

    rows = flagged_images(flagged)
    marks = confirmations(rows, descriptions)
    rows = rows[~rows["file_sha256"].map(marks).isin(confirmed)]
    again = describe_many([raw.member(path) for path in rows["path"]], workers, progress=False)
    for path, key, info in zip(rows["path"], rows["file_sha256"], again, strict=True):
        if canonical(info) != canonical(descriptions[key]):
            print(
                f"validate: not reusing the cached descriptions: {path}, flagged by a check, is not what "
                "the cache says when described again; every image is described again",
                file=sys.stderr,
            )
            return None
    return set(marks.values())


def confirmations(images: pd.DataFrame, descriptions: Descriptions) -> dict[str, str]:
    """For each of `images` (flagged_images' rows), by content key: a digest of the key and its
    description, which flags_hold takes as confirmed without decoding the image again."""
    keys = images["file_sha256"]
    return {
        key: hashlib.sha256(f"{key}\n{canonical(descriptions[key])}".encode()).hexdigest() for key in keys
    }


def flagged_images(manifest: pd.DataFrame) -> pd.DataFrame:
    """One row per image content behind a flag, or that does not decode."""
    rows = manifest[manifest[list(FLAGS)].any(axis=1) | ~manifest["decode_ok"].astype(bool)]
    return rows.drop_duplicates("file_sha256")


def describe_many(
    members: list[Member], workers: int | None = None, progress: bool = True
) -> list[dict[str, Any]]:
    """describe_image over many images, in a process pool when it is worth it, with a progress bar."""
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    workers = workers or os.cpu_count() or 1
    bar = {"total": len(members), "desc": "manifest", "unit": "img", "disable": None if progress else True}
    if workers == 1 or len(members) < PARALLEL_FROM:
        return [describe_image(member) for member in tqdm(members, **bar)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        chunk = max(1, len(members) // (workers * 16))
        return list(tqdm(pool.map(describe_image, members, chunksize=chunk), **bar))


def describe_image(member: Member) -> dict[str, Any]:
    """Decode one file fully; report its size, mode, a hash of the decoded pixels and a
    perceptual hash.

    The sha256 covers mode, size and pixels, not the file bytes, so the same picture saved
    in two formats collides; the 64-bit DCT perceptual hash (imagehash.phash, hex) stays
    close under re-encoding, resizing and small edits. A file that fails to decode gets
    decode_ok=False and the error.
    """
    import imagehash

    info: dict[str, Any] = {"file_bytes": member.size, "decode_ok": False, "error": ""}
    try:
        with open_image(member.open(), member.path) as img:
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
                phash=str(imagehash.phash(img)),
                decode_ok=True,
                aspect=img.width / img.height,
                **quality_stats(img),
            )
    except Exception as exc:  # any decoder failure is data, reported by the suite
        info["error"] = f"{type(exc).__name__}: {exc}"
    return info


def flag_duplicates(manifest: pd.DataFrame, near_distance: int = 0) -> pd.DataFrame:
    """Add `leaked` (the same pixels in more than one split), `dup_in_split` (repeated within
    its split) and `near_leaked` (not leaked, but within `near_distance` bits of perceptual
    hash of an image in another split) so the suite can give each its own severity."""
    frame = manifest.copy()
    hashed = frame["sha256"].notna()
    splits_per_hash = frame[hashed].groupby("sha256")["split"].nunique()
    frame["leaked"] = frame["sha256"].map(splits_per_hash).fillna(1).gt(1)
    frame["dup_in_split"] = hashed & frame.duplicated(["split", "sha256"], keep=False)
    distance = nearest_other_split(frame, near_distance)
    frame["near_leaked"] = ~frame["leaked"] & (distance <= near_distance)
    return frame


def nearest_other_split(manifest: pd.DataFrame, within: int) -> pd.Series:
    """For every row, the perceptual-hash Hamming distance (bits) to the closest row of
    another split where it is at most `within`; 65 elsewhere (and for undecodable rows)."""
    nearest = pd.Series(NONE, index=manifest.index, dtype="int64")
    usable = manifest[manifest["phash"].notna()]
    _, distance = closest_in_other_group(_hashes(usable), usable["split"].astype(str).to_numpy(), within)
    nearest.loc[usable.index] = distance
    return nearest


def flag_label_conflicts(
    manifest: pd.DataFrame, near_distance: int = 0, min_contrast: float = 0.0
) -> pd.DataFrame:
    """Add `label_conflict` (the same picture under another label, in any split: identical
    decoded pixels, or a perceptual hash within `near_distance` bits) and `conflicts_with`
    (the closest such copy, as "path (label)"), so the suite names both sides. Featureless
    images (grey std below `min_contrast`) share one perceptual hash whatever their colour,
    so they only conflict when their pixels are identical (blankness is its own check)."""
    frame = manifest.copy()
    frame["label_conflict"] = False
    frame["conflicts_with"] = ""
    textured = frame[frame["phash"].notna() & (frame["contrast"] >= min_contrast)]
    labels = textured["label"].astype(str).to_numpy()
    nearest, distance = closest_in_other_group(_hashes(textured), labels, near_distance)
    hit = distance <= near_distance
    _mark(frame, textured.index[hit], textured.iloc[nearest[hit]])
    blank = frame[frame["sha256"].notna() & ~frame.index.isin(textured.index)]
    for _, copies in blank.groupby("sha256"):
        for label, rows in copies.groupby("label"):
            others = copies[copies["label"] != label]
            if len(others):
                _mark(frame, rows.index, others.iloc[[0] * len(rows)])
    return frame


def _hashes(rows: pd.DataFrame) -> np.ndarray:
    """The 64-bit perceptual hashes as integers: all at once when each is 16 hex digits (as
    imagehash writes them; int() per row cost 0.2 s at 60,000 images), else one by one."""
    texts = rows["phash"].astype(str)
    if texts.str.len().eq(16).all():
        try:
            return np.frombuffer(bytes.fromhex("".join(texts)), dtype=">u8").astype(np.uint64)
        except ValueError:
            pass  # not hex: int() names the value
    return np.array([int(h, 16) for h in texts], dtype=np.uint64)


def _mark(frame: pd.DataFrame, index: pd.Index, partners: pd.DataFrame) -> None:
    frame.loc[index, "label_conflict"] = True
    frame.loc[index, "conflicts_with"] = [f"{p.path} ({p.label})" for p in partners.itertuples()]


def class_counts(manifest: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Images per (split, class), including zero rows for empty classes."""
    decoded = manifest[manifest["decode_ok"]]
    splits = sorted(set(manifest["split"].unique()) | {"train", "test"})
    index = pd.MultiIndex.from_product([splits, classes], names=["split", "label"])
    counts = decoded.groupby(["split", "label"]).size().reindex(index, fill_value=0)
    frame = counts.rename("count").reset_index()
    frame.insert(0, "path", frame["split"] + "/" + frame["label"])
    # vs the smallest non-empty class of the same split (empty classes have their own check)
    smallest = frame["count"].where(frame["count"] > 0).groupby(frame["split"]).transform("min").fillna(1)
    frame["imbalance"] = frame["count"] / smallest
    return frame
