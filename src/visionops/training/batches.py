"""Device-resident data: the whole split lives on the device as uint8; batches are sliced,
augmented (random translate, horizontal flip) and normalised as tensor ops, with no
per-sample Python in the hot loop.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F


class DeviceDataset:
    """uint8 images [N, C, H, W] + labels, plus the normalisation to apply.

    The images live on `device` when they fit in `budget_mb`; otherwise they stay in pinned
    host memory and each batch is copied over asynchronously (still no per-sample Python).
    """

    def __init__(
        self, images_nhwc: np.ndarray, labels: np.ndarray, mean, std, device: torch.device, budget_mb: int = 0
    ):
        self.device = device
        images = torch.from_numpy(np.ascontiguousarray(images_nhwc)).permute(0, 3, 1, 2)
        self.resident = fits_on_device(images.nbytes, device, budget_mb)
        self.images = images.to(device) if self.resident else images.pin_memory()
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
        shape = (1, -1, 1, 1)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(shape) * 255.0
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(shape) * 255.0

    def __len__(self) -> int:
        return len(self.labels)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 -> float, standardised per channel."""
        return (images.float() - self.mean) / self.std

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None, rank: int = 0, world: int = 1
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield uint8 (images, labels) batches; shuffled when a generator is given.

        With world > 1, every rank draws the same order and takes its equal-length shard.
        """
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        if world > 1:
            order = order[: n - n % world][rank::world]
            n = len(order)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            images = self.images[index.to(self.images.device)].to(self.device, non_blocking=True)
            yield images, self.labels[index.to(self.device)]


def fits_on_device(nbytes: int, device: torch.device, budget_mb: int) -> bool:
    """Whether a split goes to the device whole (CPU memory is the host: always; 0 = no limit)."""
    return device.type == "cpu" or budget_mb == 0 or nbytes <= budget_mb * 2**20


def augment_batch(
    images: torch.Tensor, padding: int, hflip: bool, generator: torch.Generator
) -> torch.Tensor:
    """Random translate by up to `padding` px (zero fill) and optional horizontal flip."""
    n, _, h, w = images.shape
    if padding > 0:
        padded = F.pad(images, (padding, padding, padding, padding))
        shifts = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator).to(images.device)
        out = torch.empty_like(images)
        for dy in range(2 * padding + 1):
            for dx in range(2 * padding + 1):
                mask = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
                out[mask] = padded[mask, :, dy : dy + h, dx : dx + w]
        images = out
    if hflip:
        flip = (torch.rand(n, generator=generator) < 0.5).to(images.device)
        images = torch.where(flip.view(-1, 1, 1, 1), images.flip(3), images)
    return images
