"""Find the class folders in an unpacked archive or a local tree and copy them into the
`<root>/{train,test}/<class>/` layout, splitting by a seeded fraction when there is no test set.

Accepted shapes (after any single wrapping folder, e.g. `hymenoptera_data/`):
`train/<class>/*` + `test/<class>/*` (or `val/`, `valid/`, `validation/` as the test split),
`train/<class>/*` alone (split by fraction), or `<class>/*` (split by fraction).

Symbolic links that lead out of the tree are refused unless the user opts in: otherwise a
link such as `cat/passwd.png -> /etc/passwd` would copy a file from elsewhere on the machine
into data/raw and the DVC cache, ready for `dvc push`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from visionops.data.archive import ignored
from visionops.data.split import stratified_split
from visionops.errors import VisionOpsError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
TEST_NAMES = ("test", "val", "valid", "validation")
LAYOUT_FIX = "arrange the images as train/<class>/*.jpg and test/<class>/*.jpg, or as <class>/*.jpg"


def dataset_root(folder: Path) -> Path:
    """Step through wrapper folders that hold nothing but one sub-folder. A sub-folder that
    holds images itself is a class (a one-class tree), not a wrapper."""
    while True:
        entries = [p for p in folder.iterdir() if not ignored(p.name)]
        if len(entries) != 1 or not entries[0].is_dir() or entries[0].name in ("train", *TEST_NAMES):
            return folder
        if any(_is_image(p) for p in entries[0].iterdir()):
            return folder
        folder = entries[0]


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
    """Stop before copying anything when a link leads out of `tree` (see the module doc)."""
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


def class_images(split_dir: Path, where: str) -> dict[str, list[tuple[Path, str]]]:
    """Class name -> its image files (recursively, sorted) as (path, flat file name); errors
    for no class folders or an empty one. Deeper sub-paths are joined with `__`."""
    classes = sorted(p for p in split_dir.iterdir() if p.is_dir() and not ignored(p.name))
    if not classes:
        raise VisionOpsError(f"no class folders found in {where}", LAYOUT_FIX)
    found = {}
    for folder in classes:
        files = [
            (p, "__".join(p.relative_to(folder).parts))
            for p in sorted(folder.rglob("*"))
            if _is_image(p) and not ignored(str(p.relative_to(folder)))
        ]
        if not files:
            raise VisionOpsError(
                f"class folder {where}/{folder.name} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})",
                f"every sub-folder of the dataset folder is read as a class: add images to {folder} "
                "or remove it, or point at the folder that holds the class folders",
            )
        found[folder.name] = files
    return found


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def import_tree(
    source: Path, root: Path, test_fraction: float, seed: int, where: str, move: bool = False
) -> list[str]:
    """Copy the class folders under `source` into root/{train,test}/<class>/; return classes.

    Files are copied, never modified, keeping their names; `move=True` renames them instead,
    for a private scratch folder on the same filesystem (an unpacked archive).
    """
    top = dataset_root(source)
    train_dir = top / "train" if (top / "train").is_dir() else None
    test_dir = next((top / n for n in TEST_NAMES if train_dir and (top / n).is_dir()), None)
    if train_dir and test_dir:
        splits = {
            "train": class_images(train_dir, f"{where}/train"),
            "test": class_images(test_dir, f"{where}/{test_dir.name}"),
        }
    else:
        splits = _split_by_fraction(class_images(train_dir or top, where), test_fraction, seed)
    classes = sorted(set(splits["train"]) | set(splits["test"]))
    for split, per_class in splits.items():
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for path, flat_name in per_class.get(name, []):
                (shutil.move if move else shutil.copy2)(path, folder / flat_name)
    return classes


def _split_by_fraction(
    per_class: dict[str, list[tuple[Path, str]]], test_fraction: float, seed: int
) -> dict[str, dict[str, list[tuple[Path, str]]]]:
    """Seeded, stratified train/test split of one class-folder tree."""
    names = sorted(per_class)
    files = [path for name in names for path in per_class[name]]
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
