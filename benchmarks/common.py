"""Benchmark data: a CIFAR-10 JPEG subset (from the shared archive) or the embedded digits,
written as class folders, and prepared the way the augment stage does; a committed copy of the
project to run DVC in."""

from __future__ import annotations

import tarfile
from pathlib import Path

from visionops.stack.project import copy_project, dotted

ROOT = Path(__file__).resolve().parents[1]


def write_images(root: Path, cifar: Path | None, per_class: int) -> dict:
    """Class folders under root/{train,test} (the digits: unpacked from their data/raw shards);
    returns facts the benchmarks need."""
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
    from visionops.data.shards import unpack
    from visionops.data.sources import materialize

    packed = root.with_name(root.name + "-download")
    materialize(DataParams(), packed)
    unpack(packed, root)
    return {
        "name": "digits (PNG, 8 px -> 32 px)",
        "size": 32,
        "channels": 1,
        "padding": 2,
        "hflip": False,
        "resize": True,
    }


def prepare_folders(images: Path, out: Path, size: int, channels: int):
    """Decode every image once, resized to size x size, into a prepared dataset written by the
    augment stage's own code (memory-mapped .npy files); returns it opened."""
    import pandas as pd

    from visionops.augment.pack import PackSpec
    from visionops.augment.prepare import write_prepared
    from visionops.data.decode import RESIZE_METHOD
    from visionops.data.prepared import PreparedMeta, open_prepared, write_meta
    from visionops.data.shards import pack_tree

    raw = pack_tree(images, out.with_name(out.name + "-raw"))
    classes = sorted({entry.label for entry in raw})
    rows = [(entry.split, entry.path, classes.index(entry.label)) for entry in raw]
    table = pd.DataFrame(rows, columns=["split", "path", "label"])
    written = write_prepared(out, table, raw, PackSpec(size, channels), chunk_mb=32, progress=False)
    meta = PreparedMeta(
        classes=classes,
        image_size=size,
        channels=channels,
        resize=RESIZE_METHOD,
        copies=0,
        source="benchmark",
        **written,
    )
    write_meta(out, meta)
    return open_prepared(out)


def committed_copy(dest: Path, params: dict, cache_type: str | None = None) -> Path:
    """The project (none of the developer's results) with `params` as params.yaml's values,
    committed in a fresh git repository at dest."""
    return copy_project(ROOT, dest, dotted(params), cache_type)
