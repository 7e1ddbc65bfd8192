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
        device = f"cuda ({torch.cuda.get_device_name(self.device)})" if self.device.type == "cuda" else "cpu"
        precision = str(self.amp_dtype).replace("torch.", "") + " autocast" if self.amp_dtype else "fp32"
        return f"{device}, {precision}" + (", channels_last" if self.channels_last else "")


def resolve_device(requested: str, amp: bool = True, channels_last: bool = True) -> DeviceSetup:
    """`auto` takes CUDA when present. AMP: bf16 where supported (CUDA, or a CPU whose oneDNN
    has native bf16 kernels), fp16 + grad scaler on older GPUs, fp32 otherwise."""
    cuda = torch.cuda.is_available()
    if requested == "cuda" and not cuda:
        raise VisionOpsError(
            "train.device is 'cuda' but torch sees no CUDA GPU (torch.cuda.is_available() is False)",
            "set train.device: auto (CPU fallback) or cpu, or check the driver with nvidia-smi",
        )
    if requested == "cpu" or not cuda:
        return DeviceSetup(
            torch.device("cpu"), torch.bfloat16 if amp and cpu_has_bf16() else None, channels_last
        )
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return DeviceSetup(torch.device("cuda"), dtype if amp else None, channels_last)


def cpu_has_bf16() -> bool:
    """True when oneDNN runs bf16 natively here (AVX512-BF16/AMX); emulated bf16 would be slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
