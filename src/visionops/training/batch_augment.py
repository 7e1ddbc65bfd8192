"""Per-batch augmentation on the device (random translate, horizontal flip) as tensor ops,
with no per-sample Python in the hot loop; the batches come from data/loader.py."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
