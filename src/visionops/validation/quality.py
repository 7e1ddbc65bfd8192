"""Image quality judged against the dataset's own distribution, in the manner of cleanvision:
brightness, contrast and blur are measured on a fixed-size grey thumbnail (so 32 px and
2,000 px photos are comparable), and an image is flagged when it is an outlier of its
dataset (robust z-score: median and MAD) or crosses an absolute floor (black, white or
blank). Thresholds set on one dataset's pixel scale (8 px digits) then stop meaning
anything on another: a quarter of a clean photo collection was "very blurry"."""

from __future__ import annotations

import numpy as np
import pandas as pd

from visionops.config import ValidateParams

SIDE = 128  # every image's statistics come from a SIDE x SIDE grey thumbnail
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution x this = its standard deviation


def quality_stats(img) -> dict[str, float]:
    """Mean brightness and contrast (std) of the grey thumbnail, 0-255, and blur as the
    variance of its Laplacian (low = blurry)."""
    from PIL import Image
    from scipy import ndimage

    grey = img.convert("L").resize((SIDE, SIDE), Image.Resampling.BILINEAR, reducing_gap=2.0)
    pixels = np.asarray(grey, dtype=np.float64)
    return {
        "brightness": float(pixels.mean()),
        "contrast": float(pixels.std()),
        "blur": float(ndimage.laplace(pixels).var()),
    }


def robust_z(values: pd.Series) -> pd.Series:
    """(x - median) / (1.4826 x MAD): a z-score that a few outliers cannot drag. 0 where the
    spread is 0 (all alike: nothing stands out)."""
    median = values.median()
    scale = MAD_TO_SIGMA * (values - median).abs().median()
    if not scale > 0:
        return pd.Series(0.0, index=values.index)
    return (values - median) / scale


def flag_quality(manifest: pd.DataFrame, cfg: ValidateParams) -> pd.DataFrame:
    """Add `too_dark_or_bright`, `nearly_blank` and `very_blurry` (booleans) and the robust
    z-scores they rest on. Contrast and blur are compared on a log scale (they are skewed)."""
    frame = manifest.copy()
    decoded = frame["decode_ok"].astype(bool)
    rows = frame[decoded]
    limit = cfg.quality_outlier_z
    brightness = robust_z(rows["brightness"].astype(float))
    contrast = robust_z(np.log1p(rows["contrast"].astype(float)))
    blur = robust_z(np.log1p(rows["blur"].astype(float)))
    flags = {
        "too_dark_or_bright": (brightness.abs() > limit)
        | ~rows["brightness"].between(cfg.min_brightness, cfg.max_brightness),
        "nearly_blank": (contrast < -limit) | (rows["contrast"] < cfg.min_contrast),
        "very_blurry": blur < -limit,
    }
    for name, flag in flags.items():
        frame[name] = flag.reindex(frame.index, fill_value=False).astype(bool)
    for name, z in (("brightness_z", brightness), ("contrast_z", contrast), ("blur_z", blur)):
        frame[name] = z.reindex(frame.index)
    return frame
