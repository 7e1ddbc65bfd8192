"""The embedded default dataset: scikit-learn's handwritten digits (real data, offline).

1,797 8x8 grey images of the digits 0-9 from the UCI optical-recognition set
(BSD-3-Clause via scikit-learn), shipped inside the scikit-learn package.
"""

from __future__ import annotations

import numpy as np

LICENSE = "BSD-3-Clause (scikit-learn); UCI Optical Recognition of Handwritten Digits, CC BY 4.0"
URL = "https://archive.ics.uci.edu/dataset/80"


def load_digits_images() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Return (images uint8 [N, 8, 8] scaled to 0-255, labels int [N], class names)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    classes = [str(name) for name in bunch.target_names]
    return images, bunch.target.astype(np.int64), classes
