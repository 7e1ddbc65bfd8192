"""scan: list a folder source's files with their SHA-256 into data/listing/, which download
depends on. Runs on every `dvc repro` (always_changed) and rewrites the listing only when the
folder changed: a file is hashed only when new or touched since the last scan, so that an
unchanged 60,000-image folder costs well under a second. Other sources get an empty listing
(their params and URL are download's own dependencies). Reads params: data.
"""

from visionops.cli.stage import run_stage
from visionops.paths import SCAN_STAMPS, SOURCE_LISTING


def main(args) -> None:
    from visionops.config import load_params
    from visionops.data.scan import check_folder, update_listing

    data = load_params(args.params, "data")["data"]
    folder = check_folder(data.path) if data.source == "folder" else None
    count, change = update_listing(folder, data.follow_links, SOURCE_LISTING, SCAN_STAMPS)
    where = data.path if folder else f"{data.source} (no folder to list)"
    print(f"scan: {where}: {count} files, {change or 'unchanged'}")


if __name__ == "__main__":
    run_stage("scan", __doc__, main)
