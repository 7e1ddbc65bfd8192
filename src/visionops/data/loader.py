"""Batches of one split for training and inference: uint8 NCHW tensors on the compute device.

Two paths, picked per run by `choose_resident`, both yielding identical batches for the same
order:
* device-resident: the split's rows are copied onto the GPU once (chunk by chunk, so host
  memory stays bounded) and each batch is a gather there. The fast path when the split fits
  `train.device_memory_budget_mb` (CIFAR on a GPU).
* streamed: each batch is read from the file (pread, `data.prepared.read_rows`) by a
  background thread a few batches ahead, pinned on CUDA and copied `non_blocking`; memory is
  a few batches. The CPU always streams: the page cache already keeps the file in RAM, a
  private copy would double it.
No per-sample Python in the training loop: a batch is one sorted read in the prefetch thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import numpy as np
import torch

from visionops.data.prepared import read_rows

RESIDENT_CHUNK_BYTES = 64 * 2**20  # host memory used while copying a split onto the GPU


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small host tensor (indices, random draws) on `device` without stalling a GPU: a copy
    from pageable memory waits until the GPU has drained its queue, one from pinned memory is
    queued behind the work already there (the pinned block is kept until it has been read)."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def choose_resident(nbytes: int, device: torch.device, budget_mb: int) -> bool:
    """Whether a split goes onto the GPU whole: CUDA, and it fits the budget (0 = no limit)."""
    return device.type == "cuda" and (budget_mb == 0 or nbytes <= budget_mb * 2**20)


class ImageBatches:
    """uint8 images (NHWC rows of a memory map or array) + labels, served as torch batches on
    `device` with the normalisation to apply. `rows` selects a subset (e.g. train minus val)."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        mean,
        std,
        device: torch.device,
        rows: np.ndarray | None = None,
        resident: bool = False,
        prefetch: int = 3,
    ):
        self.images = images
        self.rows = np.arange(len(labels)) if rows is None else np.asarray(rows, dtype=np.int64)
        self.device = torch.device(device)
        self.prefetch = prefetch
        self.labels = torch.from_numpy(np.asarray(labels)[self.rows].astype(np.int64)).to(self.device)
        shape = (1, -1, 1, 1)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(shape) * 255.0
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(shape) * 255.0
        self.resident = resident
        self._on_device = self._copy_to_device() if resident else None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def nbytes(self) -> int:
        return len(self.rows) * int(np.prod(self.images.shape[1:]))

    def describe(self) -> str:
        """Which data path this split takes, for logs and MLflow."""
        size = f"{self.nbytes / 2**20:.0f} MB"
        if self.resident:
            return f"device-resident ({size} on {self.device.type})"
        return f"streamed: read batch by batch from the prepared files ({size}, {self.prefetch} prefetched)"

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 -> float, standardised per channel."""
        return (images.float() - self.mean) / self.std

    def batches(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        rank: int = 0,
        world: int = 1,
        positions: bool = False,
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        """Yield (uint8 images [B, C, H, W], labels) on the device, and with `positions` each
        image's position in this split (CPU int64); shuffled when a generator is given, in order
        otherwise. With world > 1, every rank draws the same order and takes its equal-length
        shard, reading only its own rows."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        if world > 1:
            order = order[: n - n % world][rank::world]
        order = order.numpy()
        picks = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
        batches = self._resident(picks) if self._on_device is not None else self._streamed(picks)
        for pick, (images, labels) in zip(picks, batches, strict=True):
            yield (images, labels, torch.from_numpy(pick)) if positions else (images, labels)

    def gather(self, positions: np.ndarray) -> np.ndarray:
        """uint8 NHWC rows at `positions` (of this subset), read from the file in ascending order
        (`read_rows`) and returned in the order asked for."""
        file_rows = self.rows[positions]
        if np.all(np.diff(file_rows) > 0):  # already ascending (evaluation): no reordering
            return read_rows(self.images, file_rows)
        order = np.argsort(file_rows, kind="stable")
        out = np.empty((len(file_rows), *self.images.shape[1:]), dtype=np.uint8)
        out[order] = read_rows(self.images, file_rows[order])
        return out

    def _resident(self, picks: list[np.ndarray]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for pick in picks:
            index = to_device(torch.from_numpy(pick), self.device)
            yield self._on_device[index].permute(0, 3, 1, 2), self.labels[index]

    def _streamed(self, picks: list[np.ndarray]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        ready: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        pin = self.device.type == "cuda"

        def produce() -> None:
            try:
                for pick in picks:
                    host = torch.from_numpy(self.gather(pick))
                    item = (pick, host.pin_memory() if pin else host)
                    while not stop.is_set():
                        try:
                            ready.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                ready.put(None)
            except BaseException as exc:  # handed to the consumer, raised there
                ready.put(exc)

        worker = threading.Thread(target=produce, name="visionops-prefetch", daemon=True)
        worker.start()
        try:
            while (item := ready.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                pick, host = item
                images = host.to(self.device, non_blocking=pin).permute(0, 3, 1, 2)
                yield images, self.labels[to_device(torch.from_numpy(pick), self.device)]
        finally:
            stop.set()
            while worker.is_alive():
                try:
                    ready.get(timeout=0.1)
                except queue.Empty:
                    continue
            worker.join()

    def _copy_to_device(self) -> torch.Tensor:
        """The subset's rows as one NHWC uint8 tensor on the device, copied in bounded chunks."""
        shape = self.images.shape[1:]
        out = torch.empty((len(self), *shape), dtype=torch.uint8, device=self.device)
        step = max(1, RESIDENT_CHUNK_BYTES // max(1, int(np.prod(shape))))
        for start in range(0, len(self), step):
            positions = np.arange(start, min(start + step, len(self)))
            out[start : start + len(positions)] = torch.from_numpy(self.gather(positions)).to(self.device)
        return out
