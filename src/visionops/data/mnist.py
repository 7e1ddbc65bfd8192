"""MNIST and Fashion-MNIST: four gzipped IDX files, parsed with torchvision's reader."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np

from visionops.errors import VisionOpsError

LICENSES = {
    "mnist": "CC BY-SA 3.0 (Yann LeCun and Corinna Cortes)",
    "fashion-mnist": "MIT (Zalando Research)",
}
# torchvision's Fashion-MNIST mirror is plain http; the authors' repository serves the same files.
FASHION_HTTPS = "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def mnist_resources(variant: str) -> tuple[str, dict[str, str], list[str]]:
    """(base URL, file name -> md5, class folder names) from torchvision's dataset classes."""
    from torchvision.datasets import MNIST, FashionMNIST

    if variant == "mnist":
        return MNIST.mirrors[0], dict(MNIST.resources), [c.split(" - ")[0] for c in MNIST.classes]
    names = [c.replace("/", "-") for c in FashionMNIST.classes]  # "T-shirt/top" is not a folder name
    return FASHION_HTTPS, dict(FashionMNIST.resources), names


def read_idx_pair(images_gz: Path, labels_gz: Path, scratch: Path) -> tuple[np.ndarray, np.ndarray]:
    """Decompress one images/labels pair and parse it: (uint8 [N, 28, 28], int64 [N])."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    plain = []
    try:
        for gz in (images_gz, labels_gz):
            target = Path(scratch) / gz.name.removesuffix(".gz")
            with gzip.open(gz, "rb") as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            plain.append(target)
        images = read_image_file(str(plain[0])).numpy().astype(np.uint8)
        labels = read_label_file(str(plain[1])).numpy().astype(np.int64)
    except (OSError, ValueError, RuntimeError, AssertionError) as exc:
        raise VisionOpsError(
            f"{images_gz.name}/{labels_gz.name} are not gzipped IDX files: {exc}",
            "data.url must be the base URL of the MNIST-format .gz files",
        ) from exc
    if len(images) != len(labels):
        counts = f"{len(images)} images but {len(labels)} labels"
        raise VisionOpsError(f"{images_gz.name} has {counts}", "re-download the files")
    return images, labels
