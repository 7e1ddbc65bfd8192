"""Per-epoch training checkpoints: everything needed to resume bit-exactly on CPU.

A checkpoint holds model, optimizer, scheduler and grad-scaler state, the epoch, the
history so far, the best weights, the RNG states, a fingerprint of what was being
trained (params + data), and caller extras (the MLflow run). It is written atomically
and read with weights_only=True. A checkpoint whose fingerprint differs is ignored.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from visionops.io import write_torch


def job_fingerprint(*parts: Any) -> str:
    """Stable hash of JSON-able parts (params, data fingerprint, model spec)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` atomically (temp file + rename): a kill mid-write keeps the previous one."""
    write_torch(path, state)


def load_checkpoint(path: Path | None, expected_fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint at `path` if it exists and belongs to this training job, else None."""
    if path is None or not Path(path).is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable or foreign file: start over rather than crash
        print(f"checkpoint {path} is unreadable ({type(exc).__name__}); starting from scratch")
        return None
    if state.get("fingerprint") != expected_fingerprint:
        print(f"checkpoint {path} is from different params or data; starting from scratch")
        return None
    return state


def checkpoint_extras(path: Path) -> dict[str, Any]:
    """The caller extras of whatever checkpoint is at `path` ({} when none or unreadable), e.g.
    the MLflow run of a training that is being abandoned."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True).get("extras") or {}
    except Exception:
        return {}


def rng_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The batch generator's and torch's global RNG states (dropout uses the global one)."""
    state = {"generator": generator.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(generator: torch.Generator, state: dict[str, Any]) -> None:
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
