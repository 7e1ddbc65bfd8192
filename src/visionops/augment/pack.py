"""Decode and resize images, and make their augmented copies, chunk by chunk (a thread pool over
chunks when images are costly enough), handing each chunk, in order, to a writer; per-channel
pixel sums of each original are exact integers, for the normalisation mean and std.

Threads, not processes: Pillow's decoders and OpenCV's resize release the GIL, and measured on
2 cores threads beat spawned workers in every case (2.0x serial on photos at 224 px); worker
processes pay seconds of start-up (albumentations imports torch) and forked ones can hang on
locks held by the parent's threads. Tiny images stay serial (see THREADS_FROM_S).

Memory is bounded by the chunk size times the chunks in flight, never by the dataset.
Each image's augmentation is seeded from (seed, the image file's sha256): its copies depend on
its content alone, not on the chunk size, the number of threads or which other images the
dataset holds (issue 48: a version built step by step gives the same copies as one built at once).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from visionops.augment.reuse import CHANGED_SINCE_VALIDATION, RawImage, StoredRow
from visionops.config import AugmentStep
from visionops.data.decode import load_resized
from visionops.data.shards import Member
from visionops.errors import VisionOpsError

# Threads pay off only where decoding (which releases the GIL) outweighs the Python around it:
# measured on 2 cores, 32 px CIFAR JPEGs (0.14 ms each) ran 0.8x serial speed on 2 threads,
# photos resized to 224 px (several ms each) 2x.
THREADS_FROM_S = 1e-3


@dataclass(frozen=True)
class PackSpec:
    """What every image goes through: resize to image_size, `copies` augmented variants."""

    image_size: int
    channels: int
    copies: int = 0
    seed: int = 0
    steps: tuple[AugmentStep, ...] = ()

    @property
    def row_bytes(self) -> int:
        """Bytes written per source image (the original and its copies)."""
        return self.image_size * self.image_size * self.channels * (1 + self.copies)


@dataclass
class PixelSums:
    """Exact per-channel sums of pixel values and of their squares, and the pixel count."""

    total: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    squares: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    pixels: int = 0

    def add(self, other: PixelSums) -> None:
        if not len(self.total):
            self.total, self.squares = other.total.copy(), other.squares.copy()
        else:
            self.total += other.total
            self.squares += other.squares
        self.pixels += other.pixels

    def mean_std(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std in the 0-1 range (std floored at 1e-6)."""
        mean = self.total / self.pixels
        var = np.maximum(self.squares / self.pixels - mean**2, 0.0)
        std = np.maximum(np.sqrt(var) / 255.0, 1e-6)
        return (mean / 255.0).round(6).tolist(), std.round(6).tolist()


def pixel_sums(images: np.ndarray) -> PixelSums:
    """PixelSums of uint8 [N, H, W, C] images, from a 256-bin histogram per channel (exact, and
    twice as fast as summing int64 copies)."""
    flat = images.reshape(-1, images.shape[-1])
    values = np.arange(256, dtype=np.int64)
    counts = np.stack([np.bincount(flat[:, c], minlength=256) for c in range(flat.shape[1])])
    return PixelSums(counts @ values, counts @ (values * values), len(flat))


def row_sums(images: np.ndarray) -> np.ndarray:
    """int64 [N, 2, C]: each image's per-channel sum of pixel values and of their squares."""
    out = np.empty((len(images), 2, images.shape[-1]), dtype=np.int64)
    for i, image in enumerate(images):
        flat = image.reshape(-1, image.shape[-1]).astype(np.int64)
        out[i, 0], out[i, 1] = flat.sum(0), (flat * flat).sum(0)
    return out


def sums_of(rows: np.ndarray, pixels_per_image: int) -> PixelSums:
    """The PixelSums of images whose `row_sums` are `rows` (exact: integers)."""
    if not len(rows):
        return PixelSums()
    return PixelSums(rows[:, 0].sum(0), rows[:, 1].sum(0), len(rows) * pixels_per_image)


MAX_CHUNK_IMAGES = 256  # small images still make enough chunks to keep every thread busy


def chunk_images(spec: PackSpec, chunk_mb: float) -> int:
    """Source images per chunk: a chunk's output is at most about `chunk_mb` megabytes."""
    return max(1, min(MAX_CHUNK_IMAGES, int(chunk_mb * 2**20 // spec.row_bytes)))


def pack_chunk(spec: PackSpec, members: Sequence[Member | RawImage | StoredRow]) -> np.ndarray:
    """Each image resized once (its bytes checked first, for a RawImage), or read where an
    earlier version stored it (a StoredRow): uint8 [len(members), H, W, C]."""
    return _originals(members, spec.channels, spec.image_size)


def copies_chunk(spec: PackSpec, originals: np.ndarray, keys: Sequence[str]) -> np.ndarray:
    """`spec.copies` augmented variants of each original, seeded by its file's sha256 (`keys`):
    uint8 [len(originals) * copies, H, W, C], an image's copies one after another."""
    from visionops.augment.policy import build_policy

    augment = build_policy(list(spec.steps), spec.seed)
    out = np.empty((len(originals) * spec.copies, *originals.shape[1:]), dtype=np.uint8)
    for i, (original, key) in enumerate(zip(originals, keys, strict=True)):
        augment.set_random_seed(image_seed(spec.seed, key))
        for k in range(spec.copies):
            out[i * spec.copies + k] = _same_shape(
                _as_hwc(augment(image=original)["image"], spec.channels), original
            )
    return out


def _originals(members: Sequence[Member | RawImage | StoredRow], channels: int, side: int) -> np.ndarray:
    """The resized originals: decoded, or read from where they are stored (sorted rows per
    array, one read per run of consecutive rows)."""
    from visionops.data.prepared import read_rows

    out = np.empty((len(members), side, side, channels), dtype=np.uint8)
    stored: dict[int, list[tuple[int, int]]] = {}
    arrays = {}
    for i, member in enumerate(members):
        if isinstance(member, StoredRow):
            stored.setdefault(id(member.images), []).append((member.row, i))
            arrays[id(member.images)] = member.images
        else:
            out[i] = _decode(member, channels, side)
    for key, rows in stored.items():
        rows.sort()
        out[[i for _, i in rows]] = read_rows(arrays[key], np.array([row for row, _ in rows]))
    return out


def _decode(member: Member | RawImage, channels: int, size: int) -> np.ndarray:
    import io

    path = member.member.path if isinstance(member, RawImage) else member.path
    try:
        return load_resized(io.BytesIO(member.read()), channels, size, path)
    except VisionOpsError:
        raise
    except Exception as exc:  # validation decoded it: the file changed since
        raise VisionOpsError(
            f"{path} cannot be decoded ({type(exc).__name__}: {exc}); it changed after validation",
            CHANGED_SINCE_VALIDATION,
        ) from None


def image_seed(seed: int, key: str) -> int:
    """The augmentation seed of the image whose file sha256 is `key`: independent streams per
    image content."""
    return int(np.random.SeedSequence([seed, int(key[:32], 16)]).generate_state(1)[0])


def in_chunks(
    items: Sequence,
    make: Callable[[Sequence], np.ndarray],
    write: Callable[[np.ndarray, Sequence], None],
    per_chunk: int,
    workers: int = 0,
    progress: bool = True,
    desc: str = "augment",
) -> None:
    """`make` over `items` a chunk of `per_chunk` at a time, each result handed to `write` with its
    items, in order. workers 0 = one thread per CPU core, used only when one item takes at least
    THREADS_FROM_S (timed on the first chunk)."""
    from tqdm import tqdm

    chunks = [list(items[start : start + per_chunk]) for start in range(0, len(items), per_chunk)]
    with tqdm(total=len(items), desc=desc, unit="img", disable=None if progress else True) as bar:
        if not chunks:
            return
        started = time.perf_counter()
        write(make(chunks[0]), chunks[0])  # serially: it tells what one item costs here
        bar.update(len(chunks[0]))
        per_item = (time.perf_counter() - started) / len(chunks[0])
        workers = (workers or os.cpu_count() or 1) if per_item >= THREADS_FROM_S else 1
        for chunk, images in zip(chunks[1:], ordered_map(make, chunks[1:], workers), strict=True):
            write(images, chunk)
            bar.update(len(chunk))


def ordered_map(fn: Callable, items: Iterable, workers: int) -> Iterator:
    """fn over items in a thread pool, results in order, at most 2 x workers in flight (so
    finished chunks never pile up in memory while the writer catches up)."""
    if workers <= 1:
        yield from map(fn, items)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="visionops-augment") as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _same_shape(augmented: np.ndarray, original: np.ndarray) -> np.ndarray:
    if augmented.shape != original.shape:
        raise VisionOpsError(
            f"augment.policy turned a {original.shape} image into {augmented.shape}",
            "every copy must keep augment.image_size and channels: drop size-changing transforms "
            "(crops, pads) or give them size=(image_size, image_size)",
        )
    return augmented


def _as_hwc(pixels: np.ndarray, channels: int) -> np.ndarray:
    return pixels[..., None] if pixels.ndim == 2 and channels == 1 else pixels
