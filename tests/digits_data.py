"""The embedded digits as the download stage packs them (data/raw), unpacked into class folders
for tests to edit, and as the augment stage writes them (prepared data), for tests that need
real data without running DVC."""

import shutil
from pathlib import Path

import pandas as pd

from visionops.config import AugmentStep
from visionops.data import shards
from visionops.data.shards import RawImages

POLICY = (AugmentStep(name="Affine", params={"rotate": [-15, 15], "p": 1.0}),)


def digits_tree(folder: Path) -> Path:
    """The digits' data/raw unpacked (`tar -x` of its shards) into folder/{train,test}/<class>/,
    with its source.json: a tree a test can edit, then `pack_tree`."""
    from visionops.config import DataParams
    from visionops.data.shards import unpack
    from visionops.data.sources import materialize
    from visionops.io import write_json

    packed = folder.with_name(folder.name + "-download")
    record = materialize(DataParams(), packed, progress=False)
    unpack(packed, folder)
    write_json(folder / "source.json", record)
    shutil.rmtree(packed)
    return folder


def pack_tree(tree: Path) -> RawImages:
    """data/raw holding exactly the files of tree/<split>/<class>/ (hidden ones left out), as
    the download stage would have packed them; written beside the tree, replacing any earlier pack."""
    raw = tree.with_name(tree.name + "-packed")
    shutil.rmtree(raw, ignore_errors=True)
    return shards.pack_tree(tree, raw)


def digit_files(raw: RawImages, per_class: int | None = None) -> pd.DataFrame:
    """(split, path, label) rows of the digits, as the augment stage reads them."""
    rows = []
    for split in ("train", "test"):
        for label in range(10):
            paths = sorted(e.path for e in raw if e.split == split and e.label == str(label))[:per_class]
            rows += [(split, path, label) for path in paths]
    return pd.DataFrame(rows, columns=["split", "path", "label"])


def write_prepared_digits(raw: Path, root: Path) -> Path:
    """data/raw of the digits source in `raw`, and its prepared data (16 px, 1 channel, one
    augmented copy) in `root`, written by the augment stage's own code."""
    from visionops.augment.pack import PackSpec
    from visionops.augment.prepare import write_prepared
    from visionops.config import DataParams
    from visionops.data.decode import RESIZE_METHOD
    from visionops.data.prepared import PreparedMeta, write_meta
    from visionops.data.sources import materialize

    materialize(DataParams(), raw, progress=False)
    images = RawImages(raw)
    spec = PackSpec(image_size=16, channels=1, copies=1, seed=0, steps=POLICY)
    written = write_prepared(root, digit_files(images), images, spec, chunk_mb=0.5, workers=1, progress=False)
    classes = [str(i) for i in range(10)]
    meta = PreparedMeta(
        classes=classes, image_size=16, channels=1, resize=RESIZE_METHOD, copies=1, source="digits", **written
    )
    write_meta(root, meta)
    return root
