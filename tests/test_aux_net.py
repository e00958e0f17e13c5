"""The Aux-Net: one set of block weights per stage, timm-compatible, per-position drop path."""

from __future__ import annotations

import pytest
import timm
import torch

import sws  # noqa: F401  (registers the models)
from sws.aux_net import AuxNet
from sws.errors import ConfigError
from sws.models import create_model


def _expected_param_count(
    width: int, heads: int, mlp_ratio: float, patch: int, img: int, chans: int, classes: int, stages: int
) -> int:
    """Counted by hand: embeddings + one block per stage + final norm + head."""
    hidden = int(width * mlp_ratio)
    patches = (img // patch) ** 2
    embeddings = width * chans * patch * patch + width + patches * width
    block = (
        2 * width  # norm1
        + 3 * width * width
        + 3 * width  # qkv
        + width * width
        + width  # proj
        + 2 * width  # norm2
        + width * hidden
        + hidden  # fc1
        + hidden * width
        + width  # fc2
    )
    return embeddings + stages * block + 2 * width + width * classes + classes


def test_paper_aux_net_holds_five_blocks_and_counts_like_it() -> None:
    model = timm.create_model("aux_deit_small_patch16_224_L16_33433")
    assert isinstance(model, AuxNet)
    assert len(model.blocks) == 16
    assert len(model.stage_blocks) == 5
    got = sum(p.numel() for p in model.parameters())
    assert got == _expected_param_count(384, 6, 4.0, 16, 224, 3, 1000, stages=5)


def test_layers_of_a_stage_share_weights_but_not_drop_path() -> None:
    model = create_model("aux_deit_tiny_patch16_224_L16_33433", drop_path_rate=0.15)
    for layer, stage in enumerate(model.layout.stage_index):
        owner = model.stage_blocks[stage]
        block = model.blocks[layer]
        for part in ("norm1", "attn", "norm2", "mlp"):
            assert getattr(block, part) is getattr(owner, part)
        if layer != model.layout.first_layer(stage):
            assert block.drop_path1 is not owner.drop_path1
    # DeiT's linear rule over the 16 positions
    rates = [getattr(b.drop_path1, "drop_prob", 0.0) for b in model.blocks]
    expected = torch.linspace(0, 0.15, 16).tolist()
    assert rates == pytest.approx(expected, abs=1e-6)


def test_tiny_and_base_names_and_any_layout_build() -> None:
    base = timm.create_model("aux_deit_base_patch16_224_L16_33433", device="meta")
    assert base.embed_dim == 768 and base.blocks[0].attn.num_heads == 12
    tiny = timm.create_model("aux_deit_tiny_patch16_224_L16_33433", device="meta")
    assert tiny.embed_dim == 192 and tiny.blocks[0].attn.num_heads == 3
    small = timm.create_model("aux_deit_small_patch16_224_L16_33433", device="meta")
    assert small.blocks[0].attn.num_heads == 6
    custom = create_model("aux_deit_small_patch16_224_L12_444", device="meta")
    assert custom.layout.layers_per_stage == (4, 4, 4)
    generic = create_model("aux_net", layout="2,2", embed_dim=64, num_heads=2, img_size=28, patch_size=7, in_chans=1)
    assert len(generic.blocks) == 4 and len(generic.stage_blocks) == 2
    assert generic(torch.randn(2, 1, 28, 28)).shape == (2, 1000)


def test_no_class_token_and_per_token_norm_before_average_pooling(tiny_arch) -> None:
    from tests.conftest import perturbed_aux_net

    model = perturbed_aux_net("2,1", tiny_arch)
    assert model.cls_token is None and model.global_pool == "avg"
    x = torch.randn(3, 3, 16, 16)
    tokens = model.forward_features(x)  # final norm applied to every token
    assert torch.allclose(model.head(tokens.mean(dim=1)), model(x), atol=1e-6)


def test_a_training_step_updates_each_shared_weight_once() -> None:
    model = create_model("aux_net", layout="2,2", embed_dim=32, num_heads=2, img_size=16, patch_size=4, num_classes=3)
    params = list(model.parameters())
    assert len({id(p) for p in params}) == len(params)
    optimizer = torch.optim.SGD(params, lr=0.1)
    before = model.stage_blocks[0].attn.qkv.weight.detach().clone()
    loss = model(torch.randn(4, 3, 16, 16)).logsumexp(dim=1).mean()
    loss.backward()
    grad = model.stage_blocks[0].attn.qkv.weight.grad.clone()
    optimizer.step()
    after = model.blocks[1].attn.qkv.weight.detach()
    assert torch.allclose(after, before - 0.1 * grad)


def test_aux_net_refuses_overrides_of_its_shape() -> None:
    with pytest.raises(ConfigError, match="sets depth"):
        AuxNet("3,3", depth=12)
