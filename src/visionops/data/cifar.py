"""Read the canonical CIFAR-10/100 "python version" archive: pickled batches of uint8 rows.

Pickle runs code, so batches are read only from a checksum-verified archive, and with an
unpickler that admits nothing but the numpy array constructors the format needs.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from visionops.errors import VisionOpsError

LICENSE = "no explicit license; cite Krizhevsky (2009), Learning Multiple Layers of Features from Tiny Images"
ALLOWED_GLOBALS = {
    ("_codecs", "encode"),  # how Python 3 writes bytes in a protocol-2 pickle
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


@dataclass(frozen=True)
class CifarFormat:
    """Where one CIFAR variant keeps its batches and labels (names from torchvision)."""

    folder: str
    train: list[str]
    test: list[str]
    meta: str
    label_key: bytes
    names_key: bytes
    url: str
    md5: str


def cifar_format(variant: str) -> CifarFormat:
    """The layout of `cifar10` or `cifar100`, taken from torchvision's dataset classes."""
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR10 if variant == "cifar10" else CIFAR100
    return CifarFormat(
        folder=cls.base_folder,
        train=[name for name, _ in cls.train_list],
        test=[name for name, _ in cls.test_list],
        meta=cls.meta["filename"],
        label_key=b"labels" if variant == "cifar10" else b"fine_labels",
        names_key=cls.meta["key"].encode(),
        url=cls.url,
        md5=cls.tgz_md5,
    )


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Refuses every global except numpy's array reconstruction."""

    def find_class(self, module: str, name: str):
        module = module.replace("numpy.core.", "numpy._core.")
        if (module, name) not in ALLOWED_GLOBALS:
            raise VisionOpsError(
                f"a CIFAR batch asks to load {module}.{name}, which the format never needs",
                "this is not a genuine CIFAR batch (it could run code): do not use the archive",
            )
        return super().find_class(module, name)


def load_batch(path: Path) -> dict[bytes, object]:
    """Unpickle one batch file (Python 2 pickles: bytes keys)."""
    try:
        with open(path, "rb") as f:
            return _NumpyOnlyUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise VisionOpsError(
            f"{path.parent.name}/{path.name} is missing from the archive",
            "data.url must point at the CIFAR 'python version' archive (cifar-10-python.tar.gz)",
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        message = f"cannot read CIFAR batch {path.name}: {exc}"
        raise VisionOpsError(message, "re-download the archive") from exc


def read_cifar(unpacked: Path, fmt: CifarFormat) -> dict[str, tuple[np.ndarray, np.ndarray] | list[str]]:
    """{"train": (images uint8 [N,32,32,3], labels), "test": (...), "classes": [...]}"""
    folder = Path(unpacked) / fmt.folder
    meta = load_batch(folder / fmt.meta)
    classes = [name.decode() for name in meta[fmt.names_key]]
    out: dict = {"classes": classes}
    for split, names in (("train", fmt.train), ("test", fmt.test)):
        batches = [load_batch(folder / name) for name in names]
        data = np.concatenate([np.asarray(b[b"data"], dtype=np.uint8) for b in batches])
        labels = np.concatenate([np.asarray(b[fmt.label_key], dtype=np.int64) for b in batches])
        out[split] = (data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels)
    return out
