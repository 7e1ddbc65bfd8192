"""The prepared-data format between augment and the model stages: memory-mappable .npy files.

    data/prepared/
      train_x.npy       uint8 [N, H, W, C]  each original (copy 0) followed by its augmented copies
      train_y.npy       int64 [N]
      train_source.npy  int64 [N]  the original image a row came from (its row in files.csv)
      train_copy.npy    int16 [N]  0 = the resized original, k = the k-th augmented copy
      test_x.npy, test_y.npy       the resized test images, in files.csv order
      files.csv         split, index, path, label, file_sha256: every original image, by split
                        and index (file_sha256: the file's content, what the next run reuses by)
      meta.json         format, classes, image size, channels, per-channel mean/std, counts

Images are written chunk by chunk with plain file writes and read back by rows with
`pread` (`read_rows`): the OS page cache holds the data, no process does. A memory map is
opened for its shape and offset only; the pages a process touches through a map count as
its own memory, and reading an epoch through one grew train's RSS with the dataset.
"""

from __future__ import annotations

import errno
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from visionops.errors import VisionOpsError, first_invalid_field
from visionops.io import read_json, write_json

FORMAT = "visionops-prepared/2"
ARRAYS = {"train": ("x", "y", "source", "copy"), "test": ("x", "y")}


class ArrayWriter:
    """An .npy file of a known shape whose rows are appended in order, chunk by chunk; a
    context manager that checks, on a clean exit, that every declared row was written."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: Any):
        self.path, self.shape, self.dtype = Path(path), tuple(shape), np.dtype(dtype)
        self.rows = 0
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed by __exit__
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": self.shape,
        }
        np.lib.format.write_array_header_2_0(self._file, header)

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.shape[1:] or self.rows + len(rows) > self.shape[0]:
            raise ValueError(
                f"{self.path}: rows of shape {rows.shape} do not fit {self.shape} at {self.rows}"
            )
        self._file.write(rows.data)
        self.rows += len(rows)

    def __enter__(self) -> ArrayWriter:
        return self

    def __exit__(self, error_type, *_) -> None:
        self._file.close()
        if error_type is None and self.rows != self.shape[0]:
            raise ValueError(f"{self.path}: {self.rows} rows written, {self.shape[0]} declared")


class PreparedMeta(BaseModel):
    """meta.json of the prepared data: what every model stage reads about it. Written and read
    only through `write_meta` / `open_prepared`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: str = FORMAT
    classes: list[str]
    image_size: int
    channels: int
    resize: str  # how images were brought to image_size (data/decode.RESIZE_METHOD)
    counts: dict[str, int]  # images per split (train counts every augmented copy)
    mean: list[float]  # per channel, of the train pixels scaled to [0, 1]
    std: list[float]
    copies: int  # augmented copies per train original
    source: str  # the data source's name (data.source)
    params: dict[str, Any] = {}  # the data stages' params that made it
    decoder: str = ""  # what else the resized pixels depend on (augment/reuse.decoder_id)
    arrays_sha256: str = ""  # `arrays_sha256()` of the arrays as written: the next augment checks it

    def model_meta(self) -> dict[str, Any]:
        """What a model trained on this data records about its input (saved with it, and in
        its ONNX metadata): the task and the normalisation."""
        return {key: getattr(self, key) for key in ("classes", "image_size", "channels", "mean", "std")}


def write_meta(root: Path, meta: PreparedMeta) -> None:
    write_json(Path(root) / "meta.json", meta.model_dump(mode="json"))


@dataclass
class Split:
    """One split: images (memory-mapped, NHWC uint8) and the small per-row arrays, in memory."""

    x: np.ndarray
    y: np.ndarray
    source: np.ndarray | None = None
    copy: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)

    @property
    def originals(self) -> np.ndarray:
        """Row indices of the un-augmented images (all rows of a split without copies)."""
        return np.arange(len(self)) if self.copy is None else np.flatnonzero(self.copy == 0)


@dataclass
class Prepared:
    """What the augment stage wrote, opened for reading."""

    root: Path
    meta: PreparedMeta
    train: Split
    test: Split

    @property
    def classes(self) -> list[str]:
        return list(self.meta.classes)


def array_path(root: Path, split: str, name: str) -> Path:
    return Path(root) / f"{split}_{name}.npy"


def open_prepared(root: Path) -> Prepared:
    """Memory-map the images and load the small arrays; a clear error when the augment stage
    has not run or wrote an older format."""
    root = Path(root)
    if not (root / "meta.json").is_file():
        raise VisionOpsError(f"no prepared data in {root}", "run `dvc repro augment` first")
    record = read_json(root / "meta.json")
    if record.get("format") != FORMAT:
        raise VisionOpsError(
            f"{root} holds prepared data in an older format ({record.get('format', 'npz')})",
            "re-run the augment stage: `dvc repro -f augment`",
        )
    try:
        meta = PreparedMeta.model_validate(record)
    except ValidationError as exc:
        raise VisionOpsError(
            f"{root / 'meta.json'} is not prepared data's record ({first_invalid_field(exc)})",
            "re-run the augment stage: `dvc repro -f augment`",
        ) from None
    splits = {}
    for split, names in ARRAYS.items():
        loaded = {}
        for name in names:
            path = array_path(root, split, name)
            try:
                loaded[name] = np.load(path, mmap_mode="r" if name == "x" else None)
            except (OSError, ValueError) as exc:
                raise VisionOpsError(
                    f"{path} is missing or damaged ({exc})", "re-run `dvc repro -f augment`"
                ) from None
        splits[split] = Split(**loaded)
    return Prepared(root, meta, splits["train"], splits["test"])


def read_rows(images: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`images[rows]` for ascending `rows`. From a memory-mapped .npy they are read with pread,
    one call per run of consecutive rows, so nothing is mapped into the process; any other
    array is indexed."""
    if not isinstance(images, np.memmap) or images.filename is None:
        return np.asarray(images[rows])
    rows = np.asarray(rows, dtype=np.int64)
    out = np.empty((len(rows), *images.shape[1:]), dtype=images.dtype)
    if not len(rows):
        return out
    flat = out.reshape(len(rows), -1).view(np.uint8)
    row_bytes = flat.shape[1]
    starts = np.flatnonzero(np.r_[True, np.diff(rows) != 1])
    ends = np.r_[starts[1:], len(rows)]
    fd = os.open(images.filename, os.O_RDONLY)
    try:
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            _pread_into(
                fd, memoryview(flat[start:end]).cast("B"), images.offset + int(rows[start]) * row_bytes
            )
    finally:
        os.close(fd)
    return out


def _pread_into(fd: int, view: memoryview, offset: int) -> None:
    while len(view):
        got = os.preadv(fd, [view], offset)
        if got == 0:
            raise OSError(errno.EIO, "the prepared data file ends early (truncated?)")
        view, offset = view[got:], offset + got


def train_val_split(train: Split, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, val), split by original image and stratified by label.

    All copies of one original land on the same side (no augmented twin leaks into val),
    and val keeps only the un-augmented originals.
    """
    from visionops.data.split import stratified_split

    rows = np.arange(len(train))
    if val_fraction == 0:
        return rows, rows[:0]
    originals = train.originals
    _, val_idx = stratified_split(train.y[originals], val_fraction, seed)
    in_val = np.isin(train.source, train.source[originals][val_idx])
    return rows[~in_val], rows[in_val & (train.copy == 0)]


def to_model_input(images: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """uint8 [N, H, W, C] -> normalised float32 [N, C, H, W], as the model and ONNX expect
    (for a batch: a whole split would be 4x its bytes in float32)."""
    mean = np.asarray(meta["mean"], np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(meta["std"], np.float32).reshape(1, -1, 1, 1)
    scaled = np.asarray(images).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    return np.ascontiguousarray((scaled - mean) / std, dtype=np.float32)


def arrays_sha256(root: Path) -> str:
    """sha256 over the array files: identifies the exact data a model was trained on."""
    digest = hashlib.sha256()
    for split, names in ARRAYS.items():
        for name in names:
            with open(array_path(root, split, name), "rb") as fh:
                for block in iter(lambda: fh.read(1 << 22), b""):
                    digest.update(block)
    return digest.hexdigest()
