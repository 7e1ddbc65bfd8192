"""Find the class folders in a tree of files (a user's folder, or an archive's member list) and
plan where each image goes in `{train,test}/<class>/<name>`, splitting by a seeded fraction
when there is no test set. Nothing here reads an image: sources list, plan, then pack.

Accepted shapes (after any single wrapping folder, e.g. `hymenoptera_data/`):
`train/<class>/*` + `test/<class>/*` (or `val/`, `valid/`, `validation/` as the test split),
`train/<class>/*` alone (split by fraction), or `<class>/*` (split by fraction).

Symbolic links that lead out of a folder are refused unless the user opts in: otherwise a
link such as `cat/passwd.png -> /etc/passwd` would copy a file from elsewhere on the machine
into data/raw and the DVC cache, ready for `dvc push`.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from visionops.data.listing import Listing, ignored
from visionops.data.split import stratified_split
from visionops.errors import VisionOpsError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
TEST_NAMES = ("test", "val", "valid", "validation")
LAYOUT_FIX = "arrange the images as train/<class>/*.jpg and test/<class>/*.jpg, or as <class>/*.jpg"


@dataclass(frozen=True)
class Placement:
    """One image's place in data/raw and the source handle to read it from."""

    split: str
    label: str
    name: str
    handle: Any


def folder_listing(source: Path) -> Listing:
    """Every file and folder under `source`, following links (those leaving it are refused
    first unless allowed, see `refuse_links_leaving`), each real folder visited once."""
    listing, seen = Listing(), set()
    for folder, dirs, files in os.walk(source, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree
            dirs.clear()
            continue
        seen.add(real)
        relative = PurePosixPath(Path(folder).relative_to(source).as_posix())
        listing.add_dir(relative)
        for name in files:
            if os.path.isfile(os.path.join(folder, name)):  # not a dangling link
                listing.add_file(relative / name, Path(folder, name))
    return listing


def links_leaving(tree: Path) -> list[tuple[Path, Path]]:
    """(link, target) for every symbolic link under `tree` whose target lies outside it."""
    top = tree.resolve()
    found = []
    for folder, dirs, files in os.walk(tree, followlinks=False):
        for name in dirs + files:
            path = Path(folder) / name
            if path.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(top):
                    found.append((path, target))
    return found


def refuse_links_leaving(tree: Path) -> None:
    """Stop before reading anything when a link leads out of `tree` (see the module doc)."""
    escaping = links_leaving(tree)
    if escaping:
        shown = ", ".join(f"{link.relative_to(tree)} -> {target}" for link, target in escaping[:5])
        more = f" (and {len(escaping) - 5} more)" if len(escaping) > 5 else ""
        raise VisionOpsError(
            f"{len(escaping)} symbolic link(s) in {tree} point outside it: {shown}{more}; nothing was copied",
            "replace the links with the image files themselves, or set data.follow_links: true "
            "if you built the tree from links on purpose (their targets are then copied into "
            "data/raw and the DVC cache)",
        )


def dataset_root(listing: Listing) -> PurePosixPath:
    """Step through wrapper folders that hold nothing but one sub-folder. A sub-folder that
    holds images itself is a class (a one-class tree), not a wrapper."""
    folder = PurePosixPath()
    while True:
        entries = listing.entries(folder)
        if len(entries) != 1 or entries[0] not in listing.dirs or entries[0].name in ("train", *TEST_NAMES):
            return folder
        if any(_is_image(listing, p) for p in listing.entries(entries[0])):
            return folder
        folder = entries[0]


def class_images(listing: Listing, split_dir: PurePosixPath, where: str) -> dict[str, list[tuple[Any, str]]]:
    """Class name -> its image files (recursively, sorted) as (handle, flat file name); errors
    for no class folders or an empty one. Deeper sub-paths are joined with `__`."""
    classes = [p.name for p in listing.entries(split_dir) if p in listing.dirs]
    if not classes:
        raise VisionOpsError(f"no class folders found in {where}", LAYOUT_FIX)
    inside: dict[str, list[PurePosixPath]] = defaultdict(list)
    for path in listing.files:
        if path.is_relative_to(split_dir) and len(relative := path.relative_to(split_dir).parts) > 1:
            inside[relative[0]].append(PurePosixPath(*relative[1:]))
    found = {}
    for name in classes:
        folder = split_dir / name
        files = sorted(p for p in inside[name] if _is_image(listing, folder / p) and not ignored(str(p)))
        if not files:
            raise VisionOpsError(
                f"class folder {where}/{name} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})",
                f"every sub-folder of the dataset folder is read as a class: add images to {where}/{name} "
                "or remove it, or point at the folder that holds the class folders",
            )
        found[name] = [(listing.files[folder / p], "__".join(p.parts)) for p in files]
    return found


def _is_image(listing: Listing, path: PurePosixPath) -> bool:
    return path in listing.files and path.suffix.lower() in IMAGE_SUFFIXES


def plan_splits(
    listing: Listing, test_fraction: float, seed: int, where: str
) -> tuple[list[str], list[Placement]]:
    """(classes, where every image goes): the tree's own train/test folders, else a seeded
    stratified split of its class folders."""
    top = dataset_root(listing)
    train_dir = top / "train" if top / "train" in listing.dirs else None
    test_dir = next((top / n for n in TEST_NAMES if train_dir and top / n in listing.dirs), None)
    if train_dir and test_dir:
        splits = {
            "train": class_images(listing, train_dir, f"{where}/train"),
            "test": class_images(listing, test_dir, f"{where}/{test_dir.name}"),
        }
    else:
        splits = _split_by_fraction(class_images(listing, train_dir or top, where), test_fraction, seed)
    classes = sorted(set(splits["train"]) | set(splits["test"]))
    placements = [
        Placement(split, name, flat_name, handle)
        for split, per_class in splits.items()
        for name in classes
        for handle, flat_name in per_class.get(name, [])
    ]
    return classes, placements


def _split_by_fraction(
    per_class: dict[str, list[tuple[Any, str]]], test_fraction: float, seed: int
) -> dict[str, dict[str, list[tuple[Any, str]]]]:
    """Seeded, stratified train/test split of one class-folder tree."""
    names = sorted(per_class)
    files = [item for name in names for item in per_class[name]]
    labels = np.asarray([i for i, name in enumerate(names) for _ in per_class[name]])
    try:
        train, test = stratified_split(labels, test_fraction, seed)
    except ValueError as exc:  # e.g. a class with a single image cannot be stratified
        raise VisionOpsError(
            f"cannot split the images into train/test by data.test_fraction={test_fraction}: {exc}",
            "give every class at least 2 images (more is better), or provide train/ and test/ folders",
        ) from exc
    return {
        split: {name: [files[i] for i in index if labels[i] == k] for k, name in enumerate(names)}
        for split, index in (("train", train), ("test", test))
    }


def image_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Files as given, and the image files under folders (recursively): what `visionops
    predict` and `visionops monitor` read."""
    for path in paths:
        if path.is_dir():
            yield from (p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            yield path
