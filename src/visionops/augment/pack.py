"""Decode, resize and augment images chunk by chunk (a thread pool over chunks when images are
costly enough) and hand each chunk, in order, to a writer; per-channel pixel sums of the
originals are accumulated exactly (integers) on the way, for the normalisation mean and std.

Threads, not processes: Pillow's decoders and OpenCV's resize release the GIL, and measured on
2 cores threads beat spawned workers in every case (2.0x serial on photos at 224 px); worker
processes pay seconds of start-up (albumentations imports torch) and forked ones can hang on
locks held by the parent's threads. Tiny images stay serial (see THREADS_FROM_S).

Memory is bounded by the chunk size times the chunks in flight, never by the dataset.
Each image's augmentation is seeded from (seed, image number), so the result depends on
neither the chunk size nor the number of worker processes.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from visionops.augment.reuse import CHANGED_SINCE_VALIDATION, KeptRow
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


MAX_CHUNK_IMAGES = 256  # small images still make enough chunks to keep every thread busy


def chunk_images(spec: PackSpec, chunk_mb: float) -> int:
    """Source images per chunk: a chunk's output is at most about `chunk_mb` megabytes."""
    return max(1, min(MAX_CHUNK_IMAGES, int(chunk_mb * 2**20 // spec.row_bytes)))


def pack_chunk(
    spec: PackSpec, first: int, members: Sequence[Member | KeptRow]
) -> tuple[np.ndarray, PixelSums]:
    """Each image resized once (or its resized original copied from the previous prepared
    data, for a KeptRow), then `copies` augmented variants of it, in that order:
    uint8 [len(members) * (1 + copies), H, W, C], and the pixel sums of the resized originals.
    `first` is the number of the chunk's first image in its split (for the per-image seeds)."""
    side, per_image = spec.image_size, 1 + spec.copies
    augment = None
    if spec.copies:
        from visionops.augment.policy import build_policy

        augment = build_policy(list(spec.steps), spec.seed)
    out = np.empty((len(members) * per_image, side, side, spec.channels), dtype=np.uint8)
    out[::per_image] = _originals(members, spec.channels, side)
    for i in range(len(members)):
        original = out[i * per_image]
        if augment is not None:
            augment.set_random_seed(image_seed(spec.seed, first + i))
        for k in range(1, per_image):
            out[i * per_image + k] = _same_shape(
                _as_hwc(augment(image=original)["image"], spec.channels), original
            )
    return out, pixel_sums(out[::per_image])


def _originals(members: Sequence[Member | KeptRow], channels: int, side: int) -> np.ndarray:
    """The resized originals: decoded, or read from the previous arrays (sorted rows per
    array, one read per run of consecutive rows)."""
    from visionops.data.prepared import read_rows

    out = np.empty((len(members), side, side, channels), dtype=np.uint8)
    kept: dict[int, list[tuple[int, int]]] = {}
    arrays = {}
    for i, member in enumerate(members):
        if isinstance(member, KeptRow):
            member.check()
            kept.setdefault(id(member.images), []).append((member.row, i))
            arrays[id(member.images)] = member.images
        else:
            out[i] = _decode(member, channels, side)
    for key, rows in kept.items():
        rows.sort()
        out[[i for _, i in rows]] = read_rows(arrays[key], np.array([row for row, _ in rows]))
    return out


def _decode(member: Member, channels: int, size: int) -> np.ndarray:
    try:
        return load_resized(member.open(), channels, size, member.path)
    except VisionOpsError:
        raise
    except Exception as exc:  # validation decoded it: the file changed since
        raise VisionOpsError(
            f"{member.path} cannot be decoded ({type(exc).__name__}: {exc}); it changed after validation",
            CHANGED_SINCE_VALIDATION,
        ) from None


def image_seed(seed: int, number: int) -> int:
    """The augmentation seed of image `number`: independent streams per image."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def pack_images(
    members: Sequence[Member | KeptRow],
    spec: PackSpec,
    write: Callable[[np.ndarray], None],
    chunk_mb: float = 32,
    workers: int = 0,
    progress: bool = True,
    desc: str = "augment",
) -> PixelSums:
    """Pack every image (see `pack_chunk`) and pass the chunks to `write` in order; returns the
    pixel sums of the originals. workers 0 = one thread per CPU core, used only when one image
    takes at least THREADS_FROM_S (timed on the first chunk)."""
    from tqdm import tqdm

    size = chunk_images(spec, chunk_mb)
    chunks = [(spec, start, list(members[start : start + size])) for start in range(0, len(members), size)]
    sums = PixelSums()
    with tqdm(total=len(members), desc=desc, unit="img", disable=None if progress else True) as bar:

        def take(images: np.ndarray, chunk_sums: PixelSums) -> None:
            write(images)
            sums.add(chunk_sums)
            bar.update(len(images) // (1 + spec.copies))

        if not chunks:
            return sums
        started = time.perf_counter()
        take(*_pack_chunk_args(chunks[0]))  # serially: it tells what one image costs here
        per_image = (time.perf_counter() - started) / len(chunks[0][2])
        workers = (workers or os.cpu_count() or 1) if per_image >= THREADS_FROM_S else 1
        for result in ordered_map(_pack_chunk_args, chunks[1:], workers):
            take(*result)
    return sums


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


def _pack_chunk_args(args: tuple) -> tuple[np.ndarray, PixelSums]:
    return pack_chunk(*args)


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
