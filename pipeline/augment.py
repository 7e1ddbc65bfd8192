"""augment: decode + resize every validated image once, apply the albumentations policy,
and pack uint8 arrays into data/prepared/ (train.npz, test.npz, meta.json, policy.json),
plus a preview grid in reports/augment_preview.png. Reads params: augment.
"""

from pathlib import Path

from visionops.stage import run_stage

RAW = Path("data/raw")
VALIDATED = Path("data/validated")
PREPARED = Path("data/prepared")
PREVIEW = Path("reports/augment_preview.png")


def main(args) -> None:
    import numpy as np
    import pandas as pd

    from visionops.augment.pack import channel_stats, pack
    from visionops.augment.policy import build_eval_transform, build_train_transform, serialize
    from visionops.augment.prepared import Prepared, save_prepared
    from visionops.augment.preview import save_preview
    from visionops.config import dump, load_params
    from visionops.io import publish_dir, read_json, staging_dir_for, write_json

    params = load_params(args.params, "augment")
    cfg = params["augment"]
    upstream = read_json(VALIDATED / "meta.json")
    classes = upstream["classes"]
    manifest = pd.read_csv(VALIDATED / "manifest.csv")
    usable = manifest[manifest["decode_ok"] & ~manifest["quarantined"]]
    label_index = {name: i for i, name in enumerate(classes)}
    transform = build_train_transform(cfg.policy, cfg.image_size, cfg.seed)
    resize = build_eval_transform(cfg.image_size)

    arrays = {}
    for split, copies in (("train", cfg.copies), ("test", 0)):
        rows = usable[usable["split"] == split]
        labels = rows["label"].astype(str).map(label_index).to_numpy(np.int64)
        images, source = pack([RAW / p for p in rows["path"]], cfg.channels, transform, copies, resize)
        arrays[split] = {
            "x": images,
            "y": labels[source],
            "source": source,
            "copy": _copy_index(source),
        }
    del arrays["test"]["source"], arrays["test"]["copy"]

    train = arrays["train"]
    mean, std = channel_stats(train["x"][train["copy"] == 0])
    policy = serialize(transform, cfg.seed)
    meta = {
        "classes": classes,
        "image_size": cfg.image_size,
        "channels": cfg.channels,
        "mean": mean,
        "std": std,
        "counts": {split: len(a["y"]) for split, a in arrays.items()},
        "copies": cfg.copies,
        "source": upstream["source"]["source"],
        "params": upstream["params"] | dump(params),
    }
    staging = staging_dir_for(PREPARED)
    save_prepared(staging, Prepared(arrays["train"], arrays["test"], meta))
    write_json(staging / "policy.json", policy)
    publish_dir(staging, PREPARED)
    _preview(train, classes, cfg.preview_images, save_preview)
    print(f"augment: {meta['counts']} packed at {cfg.image_size}px x{cfg.channels}ch -> {PREPARED}")


def _copy_index(source):
    """0 for the first row of each source image (the original), 1.. for its copies."""
    import numpy as np

    starts = np.r_[0, np.flatnonzero(np.diff(source)) + 1]
    return np.arange(len(source)) - np.repeat(starts, np.diff(np.r_[starts, len(source)]))


def _preview(train, classes, count, save_preview) -> None:
    """One row per class (up to `count`): the resized original then its augmented copies."""
    import numpy as np

    rows, titles = [], []
    for label in range(len(classes)):
        originals = np.flatnonzero((train["y"] == label) & (train["copy"] == 0))
        if len(originals) and len(rows) < count:
            source = train["source"][originals[0]]
            rows.append(list(train["x"][train["source"] == source]))
            titles.append(classes[label])
    save_preview(rows, titles, PREVIEW)


if __name__ == "__main__":
    run_stage("augment", __doc__, main)
