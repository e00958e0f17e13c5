"""What training costs: floating-point operations counted by PyTorch's FLOP counter.

A forward pass is counted once per model on one image (matrix multiplies, convolutions and
attention, as ``torch.utils.flop_counter`` counts them); a training step is taken as three forward
passes (forward plus a backward twice as costly), and a teacher adds one forward pass per image.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


@torch.no_grad()
def forward_flops(model: nn.Module | None, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass of ``model`` on an input of ``input_shape`` (batch size 1)."""
    if model is None:
        return 0
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.zeros(input_shape, device=device))
    model.train(was_training)
    return int(counter.get_total_flops())


def training_flops(forward_per_image: int, images: int, teacher_forward_per_image: int = 0) -> int:
    """Training FLOPs: ~3 forward passes per image for the student, one for a teacher."""
    return images * (3 * forward_per_image + teacher_forward_per_image)
