"""Shared fixtures: tiny shapes so every test runs in seconds on a 2-core CPU."""

from __future__ import annotations

import pytest
import torch

from sws.architecture import ViTArchitecture
from sws.aux_net import AuxNet


@pytest.fixture
def tiny_arch() -> ViTArchitecture:
    return ViTArchitecture(
        embed_dim=32, num_heads=2, mlp_ratio=2.0, patch_size=4, img_size=16, in_chans=3, num_classes=5
    )


def perturbed_aux_net(layout: str, arch: ViTArchitecture, seed: int = 0) -> AuxNet:
    """An Aux-Net with every tensor moved off its initial value (norm weights away from 1,
    biases away from 0), so copies of the wrong tensor cannot pass unnoticed."""
    torch.manual_seed(seed)
    model = AuxNet(
        layout,
        img_size=arch.img_size,
        patch_size=arch.patch_size,
        in_chans=arch.in_chans,
        num_classes=arch.num_classes,
        embed_dim=arch.embed_dim,
        num_heads=arch.num_heads,
        mlp_ratio=arch.mlp_ratio,
        norm_eps=arch.norm_eps,
    )
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    return model.eval()
