"""What images look like, in numbers a person reads: brightness, contrast and sharpness of the
model's own input, and each file's original size. The reference and every monitored window are
measured by this one function, so a shift in them means the images changed, not the code."""

from __future__ import annotations

import numpy as np

STATS = ("brightness", "contrast", "sharpness", "width", "height")  # a new definition: bump reference.FORMAT
LAPLACIAN = np.array([[[0, 1, 0], [1, -4, 1], [0, 1, 0]]], dtype=np.float32)  # 3x3, per image


def image_stats(images: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """[N, len(STATS)] float64 for uint8 NHWC `images` and their files' [N, 2] (width, height):
    mean grey (brightness, 0-255), its standard deviation (contrast) and the variance of its
    Laplacian over the grey's own variance (sharpness: low = blurry; scale-free, so a darker
    image does not read as a blurrier one)."""
    from scipy import ndimage

    grey = images.astype(np.float32).mean(axis=3)
    edges = ndimage.convolve(grey, LAPLACIAN, mode="reflect")
    columns = [
        grey.mean(axis=(1, 2)),
        grey.std(axis=(1, 2)),
        edges.reshape(len(images), -1).var(axis=1) / (grey.var(axis=(1, 2)) + 1.0),
        sizes[:, 0],
        sizes[:, 1],
    ]
    return np.stack(columns, axis=1).astype(np.float64) if len(images) else np.zeros((0, len(STATS)))
