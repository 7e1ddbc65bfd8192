"""Initialisations of the fast-training recipe (airbench, Jordan 2024) for scratch networks:
convolutions that start as the identity, and a first convolution that whitens the input."""

from __future__ import annotations

import torch
from torch import nn


def dirac_init_(model: nn.Module) -> None:
    """Each 3x3 conv starts by passing its input through on its first `in_channels` filters
    (the rest keep their random init): a deep stack starts close to the identity."""
    for module in model.modules():
        if _square_odd_conv(module) and module.out_channels >= module.in_channels:
            nn.init.dirac_(module.weight.data[: module.in_channels])


def _square_odd_conv(module: nn.Module) -> bool:
    """A plain (not grouped) conv with a k x k kernel, k odd: one that has an identity."""
    if not isinstance(module, nn.Conv2d) or module.groups != 1:
        return False
    kh, kw = module.kernel_size
    return kh == kw and kh % 2 == 1


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The convolution that sees the input images."""
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


@torch.no_grad()
def whiten_first_conv_(model: nn.Module, images: torch.Tensor, eps: float = 5e-4) -> int:
    """Set the first conv's filters to the whitening of `images`' patches (normalised float
    NCHW, a few thousand training images): the top eigenvectors of the patch covariance, each
    scaled by 1/sqrt(eigenvalue + eps), as +/- pairs so a ReLU keeps both signs. Filters beyond
    twice the patch dimension keep their init. Returns how many filters were set."""
    conv = first_conv(model)
    kh, kw = conv.kernel_size
    patches = images.float().unfold(2, kh, 1).unfold(3, kw, 1)  # N, C, H', W', kh, kw
    flat = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, conv.in_channels * kh * kw).double()
    covariance = flat.T @ flat / len(flat)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
    pairs = min(conv.out_channels // 2, len(eigenvalues))
    top = eigenvectors[:, -pairs:].flip(1).T / torch.sqrt(eigenvalues[-pairs:].flip(0) + eps)[:, None]
    filters = top.reshape(pairs, conv.in_channels, kh, kw).to(conv.weight.dtype)
    conv.weight.data[: 2 * pairs] = torch.cat([filters, -filters])
    return 2 * pairs
