"""What the register stage hands tracking to log the registered model: plain values only (the
pyfunc code file, the package it needs, an example image, pinned requirements), so tracking
needs to know nothing of the model's code and the values survive the replay journal."""

from __future__ import annotations

import base64
import io
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

PACKAGE = Path(__file__).resolve().parents[1]  # src/visionops, shipped with the model
SERVING_REQUIREMENTS = ("onnxruntime", "pillow", "numpy", "pandas")


def pyfunc_spec(example: np.ndarray) -> dict[str, Any]:
    """Spec for tracking.registry.log_image_model; `example` is one uint8 HWC image."""
    return {
        "python_model": str(PACKAGE / "serving" / "pyfunc_model.py"),
        "code_paths": [str(PACKAGE)],
        "example_png_b64": base64.b64encode(png_bytes(example)).decode(),
        "pip_requirements": [f"{name}=={version(name)}" for name in SERVING_REQUIREMENTS],
    }


def png_bytes(image: np.ndarray) -> bytes:
    """A uint8 HWC (C = 1 or 3) image encoded as PNG."""
    from PIL import Image

    pixels = image[..., 0] if image.shape[-1] == 1 else image
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
    return buffer.getvalue()
