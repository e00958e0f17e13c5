"""EMA of a shared Aux-Net: each shared weight moves by exactly (1 - decay) per update."""

from __future__ import annotations

import torch
from timm.utils import ModelEmaV3

from sws.models import create_model
from sws.train import create_model_ema


def _aux():
    torch.manual_seed(0)
    return create_model("aux_net", layout="3,1,2", embed_dim=16, num_heads=2, img_size=8, patch_size=4, num_classes=3)


def _step_away(model):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))


def test_each_shared_weight_moves_by_one_minus_decay() -> None:
    model = _aux()
    decay = 0.9
    ema = create_model_ema(model, decay)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    _step_away(model)
    ema.update(model)
    for key, target in model.state_dict().items():
        expected = before[key] + (1 - decay) * (target - before[key])
        assert torch.allclose(ema.module.state_dict()[key], expected, atol=1e-6), key
    # the shared structure survives in the EMA copy
    assert ema.module.blocks[1].attn is ema.module.blocks[0].attn


def test_timm_default_would_move_a_three_layer_stage_three_times() -> None:
    """The trap this guards against: timm's default walks the state dict (one entry per position)."""
    model = _aux()
    ema = ModelEmaV3(model, decay=0.9)
    before = ema.module.blocks[0].attn.qkv.weight.clone()
    _step_away(model)
    ema.update(model)
    target = model.blocks[0].attn.qkv.weight
    moved = (ema.module.blocks[0].attn.qkv.weight - before) / (target - before)
    assert torch.allclose(moved, torch.full_like(moved, 1 - 0.9**3), atol=1e-4)
