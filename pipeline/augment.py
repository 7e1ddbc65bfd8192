"""augment: decode + resize every validated image once, apply the albumentations policy, and
write data/prepared/ as memory-mappable uint8 chunks (chunk by chunk, in parallel threads: memory
is bounded by augment.chunk_mb, not by the dataset), with the view of each split, meta.json,
policy.json and files.csv.gz, plus a preview grid in reports/augment_preview.png. A new version
references the previous chunks that hold its images and writes only what they lack. The previous
data/prepared stays intact until the new one is complete. Reads params: augment.
"""

import os

from visionops.cli.stage import run_stage
from visionops.paths import AUGMENT_PREVIEW, PREPARED, RAW, VALIDATED


def main(args) -> None:
    import shutil

    from visionops.augment.pack import PackSpec
    from visionops.augment.policy import build_policy, serialize
    from visionops.augment.prepare import usable_files, write_prepared
    from visionops.augment.preview import preview_rows, save_preview
    from visionops.augment.reuse import decoder_id, policy_id, previous_chunks
    from visionops.config import dump, load_params
    from visionops.data.decode import RESIZE_METHOD
    from visionops.data.prepared import PreparedMeta, open_prepared, write_meta
    from visionops.data.shards import COMPACT_ENV, RawImages
    from visionops.io import publish_dir, read_json, staging_dir_for, write_json
    from visionops.validation.validated import read_selection

    params = load_params(args.params, "augment")
    cfg = params["augment"]
    upstream = read_json(VALIDATED / "meta.json")
    raw = RawImages(RAW)
    manifest = read_selection(raw, VALIDATED, upstream)  # the index and validate's flags
    classes = upstream["classes"]
    files = usable_files(manifest, classes, VALIDATED)
    policy = serialize(
        build_policy(cfg.policy, cfg.seed), cfg.seed, cfg.image_size
    )  # checked before any work
    policy_key = policy_id(policy, cfg.copies)
    spec = PackSpec(cfg.image_size, cfg.channels, cfg.copies, cfg.seed, tuple(cfg.policy))
    previous = previous_chunks(PREPARED, spec, policy_key, raw)
    reused = sum(map(previous.originals.__contains__, files["file_sha256"].tolist()))  # isin: 0.3 s
    if reused:
        print(f"augment: {reused} of {len(files)} images resized before (their chunks kept as they are)")
    max_dead = upstream["params"].get("data", {}).get("max_dead_fraction", 1.0)  # data.max_dead_fraction
    max_dead = -1.0 if os.environ.get(COMPACT_ENV) == "1" else max_dead  # `visionops compact`: now
    staging = staging_dir_for(PREPARED)
    try:
        written = write_prepared(staging, files, raw, spec, cfg.chunk_mb, cfg.workers, previous=previous,
                                 policy=policy_key, max_dead_fraction=max_dead)  # fmt: skip
        meta = PreparedMeta(
            classes=classes,
            image_size=cfg.image_size,
            channels=cfg.channels,
            resize=RESIZE_METHOD,
            **written,
            copies=cfg.copies,
            source=upstream["source"]["source"],
            params=upstream["params"] | dump(params),
            decoder=decoder_id(),
            policy=policy_key,
        )
        write_meta(staging, meta)
        write_json(staging / "policy.json", policy)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # the previous data/prepared stays as it was
        raise
    del previous  # its memory maps of the previous chunks, before they are replaced
    publish_dir(staging, PREPARED)
    prepared = open_prepared(PREPARED)
    save_preview(*preview_rows(prepared.train, classes, cfg.preview_images), AUGMENT_PREVIEW)
    print(f"augment: {meta.counts} images at {cfg.image_size}px x{cfg.channels}ch -> {PREPARED}")


if __name__ == "__main__":
    run_stage("augment", __doc__, main)
