"""Per-batch augmentation on the device (random translate, horizontal flip) as tensor ops,
with no per-sample Python in the hot loop; the batches come from data/loader.py."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from visionops.data.loader import to_device


def augment_batch(
    images: torch.Tensor,
    padding: int,
    hflip: bool | str,
    generator: torch.Generator,
    flips: torch.Tensor | None = None,
) -> torch.Tensor:
    """Random translate by up to `padding` px (zero fill), then a horizontal flip: of the rows
    where `flips` is true when given (alternating flip), else of a random half when hflip."""
    n, c, h, w = images.shape
    device = images.device
    if padding > 0:  # one gather, no boolean masks: a masked copy makes a GPU wait for its count
        padded = F.pad(images, (padding, padding, padding, padding))
        shifts = to_device(torch.randint(0, 2 * padding + 1, (n, 2), generator=generator), device)
        rows = shifts[:, :1] + torch.arange(h, device=device)  # [n, h]: the source row of each row
        cols = shifts[:, 1:] + torch.arange(w, device=device)
        batch, channel = torch.arange(n, device=device), torch.arange(c, device=device)
        images = padded[
            batch[:, None, None, None],
            channel[None, :, None, None],
            rows[:, None, :, None],
            cols[:, None, None, :],
        ]
    if flips is None and hflip is True:
        flips = torch.rand(n, generator=generator) < 0.5
    if flips is not None:
        images = torch.where(to_device(flips, device).view(-1, 1, 1, 1), images.flip(3), images)
    return images


def alternating_flips(n: int, seed: int, epoch: int) -> torch.Tensor:
    """Which of `n` images to flip in `epoch` (from 1): a seeded random half in odd epochs, the
    other half in even ones, so every image is seen both ways in any two epochs in a row
    (airbench's alternating flip: more variety than flipping at random each epoch)."""
    half = torch.rand(n, generator=torch.Generator().manual_seed(seed)) < 0.5
    return half if epoch % 2 == 1 else ~half
