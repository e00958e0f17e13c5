"""The other initializations: layer selection and last-layer inheritance from a full ViT, and
DeiT-style --finetune."""

from __future__ import annotations

import pytest
import torch

from sws.errors import ConfigError, IncompatibleModelError
from sws.initialization import inherit_last_layers, load_finetune_weights, select_layers
from sws.models import create_model

ARCH = {"embed_dim": 32, "num_heads": 2, "patch_size": 4, "img_size": 16, "num_classes": 5}


def _vit(depth, seed):
    torch.manual_seed(seed)
    model = create_model("des_net", depth=depth, **ARCH)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def test_select_copies_evenly_spaced_layers_bit_for_bit() -> None:
    ancestry = _vit(12, seed=1)
    for depth, expected in ((6, [0, 2, 4, 6, 8, 10]), (4, [0, 3, 6, 9]), (5, [0, 2, 4, 7, 9])):
        des = _vit(depth, seed=2)
        record = select_layers(des, ancestry)
        assert record["layers"] == expected
        for layer, source in enumerate(expected):
            for name, tensor in des.blocks[layer].state_dict().items():
                assert torch.equal(tensor, ancestry.blocks[source].state_dict()[name])
        assert torch.equal(des.pos_embed, ancestry.pos_embed) and torch.equal(des.head.weight, ancestry.head.weight)


def test_inherit_copies_the_last_k_layers_and_leaves_the_rest_random() -> None:
    ancestry = _vit(12, seed=1)
    des = _vit(6, seed=2)
    fresh = {k: v.clone() for k, v in des.state_dict().items()}
    record = inherit_last_layers(des, ancestry, k=3)
    assert record["layers"] == {"3": 9, "4": 10, "5": 11}
    for layer, source in ((3, 9), (4, 10), (5, 11)):
        for name, tensor in des.blocks[layer].state_dict().items():
            assert torch.equal(tensor, ancestry.blocks[source].state_dict()[name])
    for layer in range(3):
        for name, tensor in des.blocks[layer].state_dict().items():
            assert torch.equal(tensor, fresh[f"blocks.{layer}.{name}"])
    assert torch.equal(des.patch_embed.proj.weight, fresh["patch_embed.proj.weight"])
    assert torch.equal(des.norm.weight, ancestry.norm.weight)
    with pytest.raises(ConfigError, match="between 1 and 6"):
        inherit_last_layers(_vit(6, 3), ancestry, k=7)


def test_an_ancestry_of_another_width_is_refused() -> None:
    torch.manual_seed(0)
    wide = create_model("des_net", depth=4, **{**ARCH, "embed_dim": 64})
    with pytest.raises(IncompatibleModelError, match="embed_dim"):
        select_layers(_vit(2, 0), wide)


def test_finetune_drops_a_head_of_another_size_and_resamples_pos_embed(tmp_path) -> None:
    source = _vit(4, seed=1)
    torch.save({"model": source.state_dict()}, tmp_path / "deit_style.pth")
    target = create_model("des_net", depth=4, **{**ARCH, "num_classes": 7, "img_size": 32})
    record = load_finetune_weights(target, tmp_path / "deit_style.pth")
    assert record["head"] == "new" and record["pos_embed"] == "resampled"
    assert target.pos_embed.shape == (1, 64, 32)
    assert torch.equal(target.blocks[2].mlp.fc1.weight, source.blocks[2].mlp.fc1.weight)
    with pytest.raises(IncompatibleModelError, match="lacks"):
        load_finetune_weights(create_model("des_net", depth=6, **ARCH), tmp_path / "deit_style.pth")
