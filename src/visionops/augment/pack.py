"""Decode images once, apply the policy, and pack the results into uint8 arrays [N, H, W, C]."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from visionops.data.decode import load_image


def pack(
    paths: Sequence[Path],
    channels: int,
    transform,
    copies: int,
    eval_transform,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Pack each image once through `eval_transform` and `copies` times through `transform`.

    Returns (images uint8 [N*(1+copies), H, W, C], source index [N*(1+copies)]): the index
    says which input each row came from, so labels can be repeated to match.
    """
    from tqdm import tqdm

    images, sources = [], []
    for index, path in enumerate(tqdm(paths, desc="augment", unit="img", disable=None if progress else True)):
        pixels = load_image(path, channels)
        images.append(_as_hwc(eval_transform(image=pixels)["image"], channels))
        images.extend(_as_hwc(transform(image=pixels)["image"], channels) for _ in range(copies))
        sources.extend([index] * (1 + copies))
    return np.stack(images).astype(np.uint8), np.asarray(sources, dtype=np.int64)


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 [N, H, W, C] images, in the 0-1 range."""
    scaled = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
    std = np.maximum(scaled.std(axis=0), 1e-6)
    return scaled.mean(axis=0).round(6).tolist(), std.round(6).tolist()


def _as_hwc(pixels: np.ndarray, channels: int) -> np.ndarray:
    return pixels[..., None] if pixels.ndim == 2 and channels == 1 else pixels
