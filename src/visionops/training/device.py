"""Pick the compute device and its precision settings."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from visionops.errors import VisionOpsError


@dataclass(frozen=True)
class DeviceSetup:
    """Where to run and how: AMP dtype (None = fp32) and memory format."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool

    @property
    def name(self) -> str:
        if self.device.type == "cuda":
            return f"cuda ({torch.cuda.get_device_name(self.device)})"
        return "cpu"


def resolve_device(requested: str, amp: bool = True, channels_last: bool = True) -> DeviceSetup:
    """`auto` takes CUDA when present; AMP (bf16 where supported, else fp16) only on CUDA."""
    cuda = torch.cuda.is_available()
    if requested == "cuda" and not cuda:
        raise VisionOpsError(
            "train.device is 'cuda' but torch sees no CUDA GPU (torch.cuda.is_available() is False)",
            "set train.device: auto (CPU fallback) or cpu, or check the driver with nvidia-smi",
        )
    if requested == "cpu" or not cuda:
        return DeviceSetup(torch.device("cpu"), None, False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return DeviceSetup(torch.device("cuda"), dtype if amp else None, channels_last)
