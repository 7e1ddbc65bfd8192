"""Build the albumentations Compose from params, and serialise it beside the data.

albumentations does not serialise the Compose seed, so it is stored next to the policy.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from visionops.config import AugmentStep
from visionops.errors import VisionOpsError


def build_train_transform(steps: list[AugmentStep], image_size: int, seed: int):
    """Resize to `image_size`, then the configured transforms, seeded for reproducibility."""
    import albumentations as A

    ops = [
        A.Resize(height=image_size, width=image_size),
        *(_make(A, i, s) for i, s in enumerate(steps)),
    ]
    return A.Compose(ops, seed=seed)


def build_eval_transform(image_size: int):
    """Resize only: what the test split (and deployment) sees."""
    import albumentations as A

    return A.Compose([A.Resize(height=image_size, width=image_size)])


def serialize(transform, seed: int) -> dict[str, Any]:
    """The policy as albumentations' own dict form, plus the seed it does not store."""
    import albumentations as A

    return {"albumentations": A.__version__, "seed": seed, "transform": A.to_dict(transform)}


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
