"""Benchmark data: a CIFAR-10 JPEG subset (from the shared archive) or the embedded digits,
written as class folders, and prepared the way the augment stage does; a committed copy of the
project to run DVC in."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

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
    """The project's tracked files (none of the developer's data, models, reports or dvc.lock)
    with `params` as params.yaml, committed in a fresh git repository at dest."""
    import yaml

    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in filter(None, names.stdout.split("\0")):
        top = name.split("/", 1)[0]
        if name == "dvc.lock" or (top in {"data", "models", "reports"} and not name.endswith(".gitignore")):
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes((ROOT / name).read_bytes())
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    commands = [["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]]
    if cache_type:  # DVC's link type from its cache into the workspace (default: reflink, else copy)
        commands.insert(1, ["dvc", "config", "cache.type", cache_type])
    for cmd in commands:
        subprocess.run(cmd, cwd=dest, check=True, env=git_env(), capture_output=True)
    return dest


def git_env() -> dict[str, str]:
    """Commits without the user's git identity."""
    names = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b"}
    return os.environ | names | {"GIT_COMMITTER_EMAIL": "b@b"}
