"""The embedded digits as the augment stage reads them (class folders) and writes them
(prepared data), for tests that need real prepared data without running DVC."""

from pathlib import Path

import pandas as pd

from visionops.config import AugmentStep

POLICY = (AugmentStep(name="Affine", params={"rotate": [-15, 15], "p": 1.0}),)


def digit_files(raw: Path, per_class: int | None = None) -> pd.DataFrame:
    """(split, path, label) rows of the digits class folders, as the augment stage reads them."""
    rows = []
    for split in ("train", "test"):
        for label in range(10):
            paths = sorted((raw / split / str(label)).iterdir())[:per_class]
            rows += [(split, p.relative_to(raw).as_posix(), label) for p in paths]
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
    spec = PackSpec(image_size=16, channels=1, copies=1, seed=0, steps=POLICY)
    written = write_prepared(root, digit_files(raw), raw, spec, chunk_mb=0.5, workers=1, progress=False)
    classes = [str(i) for i in range(10)]
    meta = PreparedMeta(
        classes=classes, image_size=16, channels=1, resize=RESIZE_METHOD, copies=1, source="digits", **written
    )
    write_meta(root, meta)
    return root
