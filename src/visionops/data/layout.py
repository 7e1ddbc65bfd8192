"""Write and read the class-folder layout that every source is turned into."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

IGNORED_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


def write_split(
    root: Path, split: str, images: np.ndarray, labels: np.ndarray, classes: Sequence[str]
) -> None:
    """Write images as PNG files under root/split/<class name>/<index>.png."""
    from PIL import Image

    for name in classes:
        (root / split / name).mkdir(parents=True, exist_ok=True)
    for index, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        Image.fromarray(pixels).save(root / split / classes[label] / f"{index:05d}.png")


def iter_images(root: Path) -> Iterator[tuple[str, str, Path]]:
    """Yield (split, class name, path) for every file under root/<split>/<class>/.

    Every regular file is yielded (not only known image suffixes) so that validation
    sees, and reports, a stray non-image file instead of it being silently skipped.
    """
    for split_dir in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            for path in sorted(class_dir.iterdir()):
                if path.is_file() and not path.name.startswith(".") and path.name not in IGNORED_NAMES:
                    yield split_dir.name, class_dir.name, path
