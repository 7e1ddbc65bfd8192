"""Pack the configured source into data/raw's shards under a staging root (see data/shards.py),
plus its provenance.

Every image is stored as {train,test}/<class>/<file>, and the record goes to source.json.
Network sources go through the verified download cache. A user's archive is never unpacked:
its members are listed and checked, planned into splits and classes, then streamed into the
shards in one pass; a user's folder is packed straight from where it is. The CIFAR and MNIST
formats (a few big files) are unpacked into a scratch folder beside root that is always removed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from visionops.config import DataParams
from visionops.data import digits
from visionops.data.archive import Limits, archive_listing, extract, read_members
from visionops.data.fetch import Checksum, FetchSettings, default_cache_dir, fetch
from visionops.data.folders import Placement, listing_of, plan_splits, walk_folder
from visionops.data.raw_index import has_index
from visionops.data.scan import RESCAN, SourceFile, check_folder
from visionops.data.shards import RawImages, ShardWriter
from visionops.data.split import stratified_split
from visionops.errors import VisionOpsError
from visionops.io import file_digest

USER_LICENSE = "as provided by the user: check the dataset's own license"


def materialize(
    cfg: DataParams,
    root: Path,
    progress: bool = True,
    listing: list[SourceFile] | None = None,
    previous: RawImages | None = None,
    compact: bool = False,
) -> dict[str, Any]:
    """Write the dataset named by `cfg.source` under `root` and return its source record; a
    folder source packs the files of `listing` (data/listing/) when given. Images that
    `previous` (the last data/raw) holds stay in its shards, which are carried over unchanged
    (data/shards.py); `compact` packs every image afresh.

    The record holds no timestamp: the same data must hash the same, so that DVC can
    skip downstream stages when a re-download produced identical files.
    """
    root.mkdir(parents=True, exist_ok=True)
    scratch_dir = tempfile.TemporaryDirectory(prefix=".unpack-", dir=root.parent)
    writer = ShardWriter(root, previous=previous, max_dead_fraction=cfg.max_dead_fraction, compact=compact)
    with scratch_dir as scratch, writer as shards:
        if cfg.source == "digits":
            record = _digits(cfg, shards)
        elif cfg.source in ("cifar10", "cifar100"):
            record = _cifar(cfg, shards, Path(scratch), progress)
        elif cfg.source in ("mnist", "fashion-mnist"):
            record = _mnist(cfg, shards, Path(scratch), progress)
        elif cfg.source == "url":
            record = _url(cfg, shards, progress)
        else:
            record = _folder(cfg, shards, progress, listing)
    print(f"download: {shards.report.summary()}")
    return record | {"counts": shards.counts(record["classes"])}


def previous_raw(root: Path) -> RawImages | None:
    """The last data/raw, to copy unchanged images from; None when there is none, or when it
    cannot be read (an older format, a damaged index: it is then re-packed in full)."""
    if not has_index(root):
        return None
    try:
        return RawImages(root)
    except VisionOpsError as exc:
        print(f"download: not reusing the previous {root} ({exc.cause}); packing every image")
        return None


def pack_arrays(
    shards: ShardWriter, split: str, images: np.ndarray, labels: np.ndarray, classes: list[str]
) -> None:
    """Store decoded images as PNG files named <index>.png in their class folder."""
    import io

    from PIL import Image

    for index, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        shards.add(split, classes[label], f"{index:05d}.png", buffer.getvalue())


def pack_placements(
    shards: ShardWriter, placements: list[Placement], read: Any, progress: bool, where: str
) -> None:
    """Store every planned image; `read(handles)` yields (handle, bytes) in any order. An image
    planned from the listing but not read back (the source changed between the two passes) is
    an error, never an image silently missing from data/raw."""
    from tqdm import tqdm

    by_handle = {placement.handle: placement for placement in placements}
    bar = tqdm(total=len(placements), desc=f"pack {where}", unit="img", disable=None if progress else True)
    with bar:
        for handle, data in read(list(by_handle)):
            placement = by_handle.pop(handle, None)
            if placement is not None:  # a name repeated in a tar: its first copy is kept
                shards.add(placement.split, placement.label, placement.name, data)
                bar.update()
    if by_handle:
        missing = sorted(map(str, by_handle))
        raise VisionOpsError(
            f"{len(missing)} image(s) listed in {where} were gone when it was read "
            f"(first: {missing[0]}): the source changed while download read it",
            "wait until nothing writes to the source (or the archive is replaced), then run "
            "`dvc repro -f -s download` again",
        )


def _digits(cfg: DataParams, shards: ShardWriter) -> dict[str, Any]:
    images, labels, classes = digits.load_digits_images()
    train, test = stratified_split(labels, cfg.test_fraction, cfg.seed)
    pack_arrays(shards, "train", images[train], labels[train], classes)
    pack_arrays(shards, "test", images[test], labels[test], classes)
    split = {"test_fraction": cfg.test_fraction, "seed": cfg.seed}
    return _record(cfg, digits.URL, None, digits.LICENSE, classes, split)


def _cifar(cfg: DataParams, shards: ShardWriter, scratch: Path, progress: bool) -> dict[str, Any]:
    from visionops.data.cifar import LICENSE, cifar_format, read_cifar

    fmt = cifar_format(cfg.source)
    url = cfg.url or fmt.url
    checksum = _sha256(cfg) or Checksum("md5", fmt.md5)
    extract(fetch(url, _settings(cfg, progress), checksum), scratch, _limits(cfg))
    data = read_cifar(scratch, fmt)
    for split in ("train", "test"):
        pack_arrays(shards, split, *data[split], data["classes"])
    return _record(cfg, url, checksum, LICENSE, data["classes"], "canonical train/test split")


def _mnist(cfg: DataParams, shards: ShardWriter, scratch: Path, progress: bool) -> dict[str, Any]:
    from visionops.data.mnist import FILES, LICENSES, mnist_resources, read_idx_pair

    base, md5s, classes = mnist_resources(cfg.source)
    base = (cfg.url or base).rstrip("/") + "/"
    settings = _settings(cfg, progress)
    sums = {name: _checksum_for(cfg, name, md5) for name, md5 in md5s.items()}
    for split, names in FILES.items():
        files = [fetch(base + name, settings, sums[name]) for name in names]
        images, labels = read_idx_pair(*files, scratch)
        pack_arrays(shards, split, images, labels, classes)
    record = _record(cfg, base, None, LICENSES[cfg.source], classes, "canonical train/test split")
    return record | {"checksum": {name: f"{c.algorithm}:{c.hexdigest}" for name, c in sums.items()}}


def _checksum_for(cfg: DataParams, name: str, canonical_md5: str) -> Checksum:
    """data.checksums[name] (SHA-256) when given, else torchvision's md5 for the file."""
    given = cfg.checksums.get(name)
    return _parse_sha256(given, f"data.checksums.{name}") if given else Checksum("md5", canonical_md5)


def _url(cfg: DataParams, shards: ShardWriter, progress: bool) -> dict[str, Any]:
    if not cfg.url:
        raise VisionOpsError("data.source is 'url' but data.url is not set", "set data.url to a .tar.gz/.zip")
    checksum = _sha256(cfg)
    if checksum is None and not cfg.allow_unverified:
        raise VisionOpsError(
            f"refusing to use {cfg.url} without a checksum",
            "set data.sha256 to the archive's SHA-256 (`sha256sum file.tgz`), "
            "or data.allow_unverified: true to trust whatever the server sends",
        )
    archive = fetch(cfg.url, _settings(cfg, progress), checksum)
    if checksum is None:
        checksum = Checksum("sha256", file_digest(archive, "sha256"))
        print(f"download: unverified archive; pin it with data.sha256: {checksum.hexdigest}")
    limits, where = _limits(cfg), Path(cfg.url).name
    classes, placements = plan_splits(archive_listing(archive, limits), cfg.test_fraction, cfg.seed, where)

    def read(names: list[str]) -> Iterator[tuple[str, bytes]]:
        return read_members(archive, set(names), limits)

    pack_placements(shards, placements, read, progress, where)
    return _record(cfg, cfg.url, checksum, USER_LICENSE, classes, _split_note(cfg))


def _folder(
    cfg: DataParams, shards: ShardWriter, progress: bool, listing: list[SourceFile] | None
) -> dict[str, Any]:
    """Pack the folder's images: the files `listing` (the scan stage's) names, each checked
    against its SHA-256 there, else (no listing: a direct call) the files found now."""
    source = check_folder(cfg.path)
    if listing is None:
        files = [(found.path, found.file) for found in walk_folder(source, cfg.follow_links)]
    else:
        files = [(row.path, os.path.join(source, row.path)) for row in listing]  # str: cheap to hash
    classes, placements = plan_splits(listing_of(files), cfg.test_fraction, cfg.seed, str(source))
    if listing is None:
        pack_placements(shards, placements, _read_files, progress, str(source))
    else:
        expected = {path: row.sha256 for (_, path), row in zip(files, listing, strict=True)}
        _pack_listed(shards, placements, expected, progress, str(source))
    return _record(cfg, source.resolve().as_uri(), None, USER_LICENSE, classes, _split_note(cfg))


def _pack_listed(
    shards: ShardWriter, placements: list[Placement], expected: dict[str, str], progress: bool, where: str
) -> None:
    """Store every planned file of the listing: an image whose listed bytes data/raw holds already
    is not read at all; any other is read and checked against its listed SHA-256, so that
    data/raw always holds exactly what DVC recorded as the scan's listing."""
    from tqdm import tqdm

    for split, label, name, path in tqdm(
        placements, desc=f"pack {where}", unit="img", disable=None if progress else True
    ):
        sha256 = expected[path]
        shards.add_known(split, label, name, sha256, partial(_read_checked, path, sha256))


def _read_files(paths: list[str]) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of each file, in the order planned."""
    for path in paths:
        with open(path, "rb") as handle:
            yield path, handle.read()


def _read_checked(path: str, sha256: str) -> bytes:
    """The file's bytes, which must be those the listing recorded (else an error)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise VisionOpsError(
            f"{path} was gone when download read it: the folder changed after the scan", RESCAN
        ) from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise VisionOpsError(f"{path} changed after the scan stage listed it", RESCAN)
    return data


def _record(
    cfg: DataParams, url: str, checksum: Checksum | None, license: str, classes: list[str], split: Any
) -> dict[str, Any]:
    record = {"source": cfg.source, "url": url, "license": license, "classes": classes, "split": split}
    if checksum is not None:
        record["checksum"] = f"{checksum.algorithm}:{checksum.hexdigest}"
    return record


def _split_note(cfg: DataParams) -> dict[str, Any]:
    """How images were split when the source had no test folder (see `split.hashed_split`)."""
    return {
        "test_fraction": cfg.test_fraction,
        "seed": cfg.seed,
        "by": "a seeded hash of each file's name in its class folder",
        "used_when": "no test/ or val/ folder",
    }


def _sha256(cfg: DataParams) -> Checksum | None:
    return None if cfg.sha256 is None else _parse_sha256(cfg.sha256, "data.sha256")


def _parse_sha256(value: str, key: str) -> Checksum:
    digest = value.strip().lower().removeprefix("sha256:")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise VisionOpsError(f"{key} {value!r} is not a SHA-256 digest", "give 64 hex characters (sha256sum)")
    return Checksum("sha256", digest)


def _settings(cfg: DataParams, progress: bool) -> FetchSettings:
    return FetchSettings(
        cache_dir=default_cache_dir(cfg.cache_dir),
        timeout_s=cfg.timeout_s,
        retries=cfg.retries,
        allow_http=cfg.allow_http,
        progress=progress,
    )


def _limits(cfg: DataParams) -> Limits:
    return Limits(max_bytes=cfg.max_extract_mb * 1_000_000, max_members=cfg.max_members)
