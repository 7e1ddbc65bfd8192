"""Build the albumentations Compose from params, and serialise it beside the data.

albumentations does not serialise the Compose seed, so it is stored next to the policy.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from visionops.config import AugmentStep
from visionops.errors import VisionOpsError


def albumentations():
    """The albumentations module, without its optional PyTorch helpers when torch is not loaded
    yet: `import albumentations` tries `from .pytorch import *` (ToTensorV2, which visionops
    never uses) inside `suppress(ImportError)`, and that imports torch: 3-5 s of every augment
    run. A None in sys.modules makes that one import fail the way albumentations allows for."""
    import sys

    if "albumentations" not in sys.modules and "torch" not in sys.modules:
        sys.modules.setdefault("albumentations.pytorch", None)
    import albumentations

    return albumentations


def build_policy(steps: list[AugmentStep], seed: int):
    """The configured transforms, seeded for reproducibility. They apply to the image already
    resized by `data.decode.load_resized` (as every image is for training and deployment)."""
    A = albumentations()
    return A.Compose([_make(A, i, s) for i, s in enumerate(steps)], seed=seed)


def serialize(transform, seed: int, image_size: int) -> dict[str, Any]:
    """The policy as albumentations' own dict form, plus the seed it does not store and the
    resize that comes before it."""
    from visionops.data.decode import RESIZE_METHOD

    A = albumentations()
    return {
        "albumentations": A.__version__,
        "seed": seed,
        "resize": {"size": image_size, "method": RESIZE_METHOD},
        "transform": A.to_dict(transform),
    }


def _make(A, index: int, step: AugmentStep):
    where = f"augment.policy[{index}] ({step.name})"
    cls = getattr(A, step.name, None)
    if not (isinstance(cls, type) and issubclass(cls, A.BasicTransform)):
        names = [n for n in dir(A) if isinstance(getattr(A, n), type)]
        close = difflib.get_close_matches(step.name, names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise VisionOpsError(
            f"{where}: '{step.name}' is not an albumentations transform{hint}",
            "use a class name from https://albumentations.ai/docs/api-reference/",
        )
    accepted = set(inspect.signature(cls).parameters)
    unknown = sorted(set(step.params) - accepted)
    if unknown:
        raise VisionOpsError(
            f"{where}: unknown argument(s) {', '.join(unknown)}",
            f"{step.name} accepts: {', '.join(sorted(accepted - {'always_apply'}))}",
        )
    try:
        return cls(**step.params)
    except Exception as exc:  # albumentations validates arguments with pydantic
        raise VisionOpsError(f"{where}: invalid arguments: {exc}", "fix the values in params.yaml") from None
