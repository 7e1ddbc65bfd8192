"""The prepared-data format between augment and the model stages: images in immutable chunk
files, and per version a small view that says which rows each split is made of.

    data/prepared/
      chunks/NNNN.npy       uint8 [rows, H, W, C], never rewritten once written: "original" chunks
                            hold resized originals (one row per image content), "copies" chunks
                            each image's augmented copies (`copies` rows per image)
      chunks/NNNN.keys      the file sha256 of each original row, or of each image's copies
      chunks/NNNN.sums.npy  int64 [rows, 2, C]: per original row, its pixel values' sum and sum of
                            squares per channel (the normalisation's exact integers)
      view/{split}_original.npy  int32 [n, 2]: (chunk, row) of each image's resized original
      view/train_copies.npy      int32 [n, 2]: (chunk, first row) of its copies (copies > 0)
      view/{split}_label.npy     int32 [n]: its class index
      files.csv.gz          split, index, path, label of every image (gzip, no timestamp)
      meta.json             format, classes, size, channels, mean/std, counts, copies, the chunks

A split reads as one array (`ChunkedImages`): image i of train is rows i*(1+copies) to
(i+1)*(1+copies)-1, its original then its copies, in the canonical order: split, then class,
then file name (the path order of data/raw's index), whatever order the chunks were written in.
So a model trained on a version built step by step is the same bytes as one trained on the same
images built at once. DVC stores and moves each chunk once: a version adds chunks for the images
it adds and rewrites only the view (issue 48). Rows are read with `pread` (`read_rows`): the OS
page cache holds the data, no process does; a memory map is opened for its shape and offset only.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from visionops.errors import VisionOpsError, first_invalid_field
from visionops.io import read_json, write_json

FORMAT = "visionops-prepared/3"
CHUNKS, VIEW, FILES = "chunks", "view", "files.csv.gz"
ORIGINAL, COPIES = "original", "copies"


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


class ChunkInfo(BaseModel):
    """One chunk file of the prepared data: what its rows are."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    number: int
    kind: Literal["original", "copies"]
    rows: int
    copies: int = 0  # "copies" chunks: rows per image
    policy: str = ""  # "copies" chunks: the augmentation that made them (augment/reuse.policy_id)

    @property
    def name(self) -> str:
        return f"{self.number:04d}.npy"


class PreparedMeta(BaseModel):
    """meta.json of the prepared data: what every model stage reads about it. Written and read
    only through `write_meta` / `open_prepared`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: str = FORMAT
    classes: list[str]
    image_size: int
    channels: int
    resize: str  # how images were brought to image_size (data/decode.RESIZE_METHOD)
    counts: dict[str, int]  # rows per split (train counts every augmented copy)
    mean: list[float]  # per channel, of the train originals' pixels scaled to [0, 1]
    std: list[float]
    copies: int  # augmented copies per train original
    source: str  # the data source's name (data.source)
    params: dict[str, Any] = {}  # the data stages' params that made it
    decoder: str = ""  # what else the resized pixels depend on (augment/reuse.decoder_id)
    policy: str = ""  # what the copies depend on (augment/reuse.policy_id)
    chunks: list[ChunkInfo] = []
    content_sha256: str = ""  # of what the splits hold (image contents, labels, order, decoder, policy)

    def model_meta(self) -> dict[str, Any]:
        """What a model trained on this data records about its input (saved with it, and in
        its ONNX metadata): the task and the normalisation."""
        return {key: getattr(self, key) for key in ("classes", "image_size", "channels", "mean", "std")}


def write_meta(root: Path, meta: PreparedMeta) -> None:
    write_json(Path(root) / "meta.json", meta.model_dump(mode="json"))


@dataclass
class Split:
    """One split: images (`ChunkedImages`, uint8 NHWC) and the small per-row arrays, in memory."""

    x: Any
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

    def files(self):
        """split, index, path, label of every image (files.csv.gz), a DataFrame."""
        import pandas as pd

        return pd.read_csv(self.root / FILES, dtype={"path": str, "split": str})

    def file_sha256(self, split: str) -> list[str]:
        """The file sha256 of each image of `split`, in its order (from the chunks' keys)."""
        located = np.load(self.root / VIEW / f"{split}_original.npy")
        keys = {
            info.number: chunk_keys(self.root, info.number)
            for info in self.meta.chunks
            if info.kind == ORIGINAL
        }
        return [keys[int(chunk)][int(row)] for chunk, row in located]


class ChunkedImages:
    """A split's images as one read-only array whose rows lie in several chunk files: `len`,
    `shape`, `dtype`, `nbytes`, and indexing by an int, a slice or an array of rows return numpy
    arrays read with `pread` (nothing is mapped into the process)."""

    def __init__(self, chunks: dict[int, np.ndarray], chunk: np.ndarray, row: np.ndarray):
        self._chunks, self._chunk, self._row = chunks, chunk, row
        first = next(iter(chunks.values()))
        self.dtype, self.shape = first.dtype, (len(chunk), *first.shape[1:])
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The images at `rows`, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        chunk, inner = self._chunk[rows], self._row[rows]
        for number in np.unique(chunk).tolist():
            picked = np.flatnonzero(chunk == number)
            order = picked[np.argsort(inner[picked], kind="stable")]
            out[order] = read_rows(self._chunks[number], inner[order])
        return out

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, int | np.integer):
            return self.read(np.array([key if key >= 0 else len(self) + key]))[0]
        if isinstance(key, slice):
            return self.read(np.arange(len(self))[key])
        return self.read(np.arange(len(self))[np.asarray(key)])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self.read(np.arange(len(self)))
        return whole if dtype is None else whole.astype(dtype)


def chunk_keys(root: Path, number: int) -> list[str]:
    """The file sha256 lines of chunk `number` (one per original row, or per image's copies)."""
    return (Path(root) / CHUNKS / f"{number:04d}.keys").read_text(encoding="ascii").split()


def array_path(root: Path, split: str, name: str) -> Path:
    return Path(root) / VIEW / f"{split}_{name}.npy"


def open_prepared(root: Path) -> Prepared:
    """The splits as arrays over the chunks; a clear error when the augment stage has not run,
    wrote an older format, or a file is missing or damaged."""
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
    try:
        chunks = {info.number: np.load(root / CHUNKS / info.name, mmap_mode="r") for info in meta.chunks}
        train, test = (_split(root, split, meta, chunks) for split in ("train", "test"))
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise VisionOpsError(
            f"{root}: a chunk or view file is missing or damaged ({type(exc).__name__}: {exc})",
            "re-run `dvc repro -f augment`",
        ) from None
    return Prepared(root, meta, train, test)


def _split(root: Path, split: str, meta: PreparedMeta, chunks: dict[int, np.ndarray]) -> Split:
    located = np.load(array_path(root, split, "original")).astype(np.int64)
    labels = np.load(array_path(root, split, "label")).astype(np.int64)
    per_image = 1 + meta.copies if split == "train" else 1
    chunk = np.repeat(located[:, 0], per_image)
    row = np.repeat(located[:, 1], per_image)
    if per_image > 1:
        copied = np.load(array_path(root, split, "copies")).astype(np.int64)
        for k in range(1, per_image):
            chunk[k::per_image], row[k::per_image] = copied[:, 0], copied[:, 1] + k - 1
    if len(chunk) and (set(np.unique(chunk).tolist()) - chunks.keys()):
        raise KeyError(f"{split} names a chunk meta.json does not list")
    if len(chunk) and any(row[chunk == n].max() >= len(chunks[n]) for n in np.unique(chunk).tolist()):
        raise IndexError(f"{split} names a row beyond its chunk's end")
    x = (
        ChunkedImages(chunks, chunk, row)
        if chunks
        else np.zeros((0, meta.image_size, meta.image_size, meta.channels), np.uint8)
    )
    if split != "train":
        return Split(x, labels)
    return Split(x, np.repeat(labels, per_image), np.repeat(np.arange(len(labels)), per_image),
                 np.tile(np.arange(per_image, dtype=np.int16), len(labels)))  # fmt: skip


def read_rows(images: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`images[rows]` for ascending `rows`. From a memory-mapped .npy (or `ChunkedImages` over
    them) they are read with pread, one call per run of consecutive rows, so nothing is mapped
    into the process; any other array is indexed."""
    if isinstance(images, ChunkedImages):
        return images.read(rows)
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
