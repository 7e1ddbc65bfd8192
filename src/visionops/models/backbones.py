"""torchvision backbones with `num_classes`, any channel count, and stems that fit small
inputs (stride-1 first conv, no early max-pool below 64 px), optionally pretrained."""

from __future__ import annotations

from torch import nn

from visionops.errors import VisionOpsError

SMALL_INPUT = 64  # below this many pixels, early downsampling would discard most of the image
WEIGHTS = {
    "resnet18": "ResNet18_Weights",
    "resnet_cifar": "ResNet18_Weights",
    "mobilenet_v3_small": "MobileNet_V3_Small_Weights",
    "efficientnet_b0": "EfficientNet_B0_Weights",
}


def build_backbone(
    arch: str, in_channels: int, num_classes: int, image_size: int, dropout: float, pretrained: bool
) -> nn.Module:
    """The torchvision network for `arch`, adapted to channels, classes and input size."""
    import torchvision

    builder = getattr(torchvision.models, "resnet18" if arch == "resnet_cifar" else arch)
    weights = _weights(arch) if pretrained else None
    model = builder(weights=weights) if weights is not None else builder(num_classes=num_classes)
    small = arch == "resnet_cifar" or image_size < SMALL_INPUT
    if arch in ("resnet18", "resnet_cifar"):
        model.conv1 = _conv_like(model.conv1, in_channels, stride=1 if small else 2, kernel=3 if small else 7)
        if small:
            model.maxpool = nn.Identity()
        model.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(model.fc.in_features, num_classes))
    else:
        stem = model.features[0][0]
        model.features[0][0] = _conv_like(stem, in_channels, stride=1 if small else 2, kernel=3)
        last = model.classifier[-1]
        model.classifier[-1] = nn.Linear(last.in_features, num_classes)
    return model


def head_of(model: nn.Module) -> nn.Module:
    """The final Linear layer (kept intact by pruning)."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


def _conv_like(conv: nn.Conv2d, in_channels: int, stride: int, kernel: int) -> nn.Conv2d:
    """A stem conv with new input channels / stride / kernel; reuses weights when shapes allow."""
    new = nn.Conv2d(in_channels, conv.out_channels, kernel, stride, kernel // 2, bias=conv.bias is not None)
    if new.weight.shape == conv.weight.shape:
        new.weight.data.copy_(conv.weight.data)
    elif conv.weight.shape[2:] == new.weight.shape[2:] and in_channels == 1:
        new.weight.data.copy_(conv.weight.data.sum(1, keepdim=True))  # grey input: sum RGB filters
    return new


def _weights(arch: str):
    import torch
    import torchvision

    weights = getattr(torchvision.models, WEIGHTS[arch]).DEFAULT
    filename = weights.url.rsplit("/", 1)[-1]
    try:
        weights.get_state_dict(progress=False, check_hash=True)  # download once, or read the hub cache
    except Exception as exc:
        raise VisionOpsError(
            f"model.pretrained: cannot load {arch} weights {filename} "
            f"({type(exc).__name__}: {exc}); this machine may be offline",
            f"download {weights.url} elsewhere and copy it to "
            f"{torch.hub.get_dir()}/checkpoints/{filename}, or set model.pretrained: false",
        ) from None
    return weights
