"""download: pack the configured data source into data/raw: tar shards of the images, stored as
{train,test}/<class>/<file>, their index.csv and source.json (see visionops/data/shards.py).
A folder source's files are those of data/listing/ (the scan stage's), each checked against
its SHA-256 there. A new version adds shards and never rewrites one: an image the previous
data/raw holds stays in its shard, carried over unchanged; removed images' bytes are reclaimed
past data.max_dead_fraction (or now, with `visionops compact`).

Writes into a staging folder and swaps it in only when complete, so an interrupted
download never leaves a half-written data/raw. Reads params: data.
"""

import os
import shutil

from visionops.cli.stage import run_stage
from visionops.paths import RAW, SOURCE_LISTING


def main(args) -> None:
    from visionops.config import dump, load_params
    from visionops.data.scan import read_listing
    from visionops.data.shards import COMPACT_ENV
    from visionops.data.sources import materialize, previous_raw
    from visionops.io import publish_dir, staging_dir_for, write_json

    params = load_params(args.params, "data")
    staging = staging_dir_for(RAW)
    try:
        listing = read_listing(SOURCE_LISTING) if params["data"].source == "folder" else None
        compact = os.environ.get(COMPACT_ENV) == "1"  # `visionops compact`
        record = materialize(
            params["data"], staging, listing=listing, previous=previous_raw(RAW), compact=compact
        )
        write_json(staging / "source.json", record | {"params": dump(params)})
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # the previous data/raw stays as it was
        raise
    publish_dir(staging, RAW)
    counts = {split: sum(per_class.values()) for split, per_class in record["counts"].items()}
    print(f"download: {record['source']} -> {RAW}: {counts}, {len(record['classes'])} classes")


if __name__ == "__main__":
    run_stage("download", __doc__, main)
