"""Decode one image file the same way everywhere: a pixel limit, EXIF orientation, a
conversion of any Pillow mode (palette, alpha, CMYK, 16-bit) to 1 or 3 uint8 channels, and
the one resize that training, evaluation and the deployed model share (`load_resized`)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from visionops.errors import VisionOpsError


def open_image(path, name: str | None = None):
    """Image.open (of a path or a binary file object) with Pillow's pixel limit
    (Image.MAX_IMAGE_PIXELS, ~89 MP) as a hard error naming the file (`name`, else the path),
    instead of Pillow's warning (1-2x the limit) or bare exception (above)."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(path)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise VisionOpsError(
                f"{name or path}: over the {Image.MAX_IMAGE_PIXELS:,} pixel limit, "
                f"a possible decompression bomb ({exc})",
                "remove the file, or downscale it if it is a genuine huge image",
            ) from None


def load_image(path: Path, channels: int) -> np.ndarray:
    """Decode a file to uint8 [H, W, C] with C = channels (1 grey, 3 RGB)."""
    from PIL import ImageOps

    with open_image(path) as img:
        img = ImageOps.exif_transpose(img)
        pixels = np.asarray(to_mode(img, "L" if channels == 1 else "RGB"))
    return pixels[..., None] if channels == 1 else pixels


RESIZE_METHOD = "Pillow bilinear, antialiased, to a square (aspect ratio not kept), after EXIF orientation"


def load_resized(path, channels: int, size: int, name: str | None = None) -> np.ndarray:
    """Decode `path` (a file path or a binary file object, called `name` in errors) to uint8
    [size, size, channels]."""
    return load_resized_sized(path, channels, size, name)[0]


def load_resized_sized(
    path, channels: int, size: int, name: str | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """`load_resized` and the file's own (width, height), from one decode.

    JPEGs are decoded at the smallest DCT scale still at least `size` (Pillow's draft mode):
    several times faster on photos, and what is lost is detail the resize drops anyway."""
    from PIL import Image, ImageOps

    with open_image(path, name) as img:
        original = img.size
        img.draft(None, (size, size))
        img = to_mode(ImageOps.exif_transpose(img), "L" if channels == 1 else "RGB")
        pixels = np.asarray(img.resize((size, size), Image.Resampling.BILINEAR))
    return (pixels[..., None] if channels == 1 else pixels), original


def decode_file(path: Path, channels: int, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """`load_resized_sized` for a file a user handed over: any failure other than a refused
    file (VisionOpsError) becomes a ValueError of one readable line."""
    try:
        return load_resized_sized(path, channels, size)
    except VisionOpsError:
        raise
    except Exception as exc:
        raise ValueError(f"cannot be decoded as an image ({type(exc).__name__}: {exc})") from None


def to_mode(img, mode: str):
    """Convert to L or RGB. 16-bit and float greys are rescaled to 0-255 first (Pillow's own
    conversion clips them, turning most 16-bit images white); alpha is dropped, as
    torchvision's loader does."""
    from PIL import Image

    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(img, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
        img = Image.fromarray(np.rint(scaled).astype(np.uint8), mode="L")
    elif img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # avoids Pillow's warning on palette transparency
    return img.convert(mode)
