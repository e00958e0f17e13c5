"""TLEG: the learngene as base + (l / L) * slope; its Aux-Net, expansion and official import."""

from __future__ import annotations

import torch

from sws.expansion import expand
from sws.learngene import Learngene
from sws.official import import_official
from sws.tleg import TLEGAuxNet, TLEGLearngene
from tests.test_official import PARTS, official_forward, write_official_checkpoint


def _tleg_aux(depth=6, seed=0):
    torch.manual_seed(seed)
    model = TLEGAuxNet(depth=depth, embed_dim=32, num_heads=2, img_size=16, patch_size=4, num_classes=5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def test_each_shared_tensor_is_one_parameter() -> None:
    model = _tleg_aux(depth=6)
    bases, slopes = model.base_and_slope()
    owned = {id(p) for p in model.parameters()}
    assert all(id(t) in owned for t in [*bases.values(), *slopes.values()])
    per_block = sum(t.numel() for t in bases.values())
    outer = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("blocks."))
    assert sum(p.numel() for p in model.parameters()) == outer + 2 * per_block


def test_layer_tensors_follow_the_linear_formula() -> None:
    model = _tleg_aux(depth=6)
    bases, slopes = model.base_and_slope()
    for layer, block in enumerate(model.blocks):
        assert torch.allclose(block.attn.qkv.weight, bases["attn.qkv.weight"] + layer / 6 * slopes["attn.qkv.weight"])


def test_des_net_at_the_aux_depth_computes_the_aux_net_logits(tmp_path) -> None:
    aux = _tleg_aux(depth=6)
    gene = TLEGLearngene.from_aux_net(aux)
    gene.save(tmp_path / "tleg.safetensors")
    loaded = Learngene.load(tmp_path / "tleg.safetensors")
    assert isinstance(loaded, TLEGLearngene) and loaded.aux_depth == 6
    des = expand(loaded, depth=6).eval()
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        assert (des(x) - aux(x)).abs().max().item() <= 1e-5


def test_descendant_layers_equal_base_plus_l_over_depth_slope() -> None:
    gene = TLEGLearngene.from_aux_net(_tleg_aux(depth=6))
    for depth in (3, 9):
        des = expand(gene, depth=depth)
        for layer, block in enumerate(des.blocks):
            for name, tensor in block.state_dict().items():
                expected = gene.tensors[f"base.{name}"] + (layer / depth) * gene.tensors[f"slope.{name}"]
                assert torch.equal(tensor, expected), (depth, layer, name)


def official_tleg_state(width=48, hidden=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    state = {
        "patch_embed.proj.weight": torch.randn(width, 3, 4, 4, generator=g) * 0.1,
        "patch_embed.proj.bias": torch.randn(width, generator=g) * 0.1,
        "pos_embed": torch.randn(1, 16, width, generator=g) * 0.1,
        "norm.weight": 1 + torch.randn(width, generator=g) * 0.1,
        "norm.bias": torch.randn(width, generator=g) * 0.1,
        "head.weight": torch.randn(10, width, generator=g) * 0.1,
        "head.bias": torch.randn(10, generator=g) * 0.1,
    }
    for part, (w_shape, b_shape) in PARTS.items():
        offset = 1.0 if part.startswith("norm") else 0.0
        for what, shape in (("weight", w_shape(width, hidden)), ("bias", b_shape(width, hidden))):
            base = (offset if what == "weight" else 0.0) + torch.randn(shape, generator=g) * 0.1
            state[f"blocks.block.{part}.instances.0.{what}_base"] = base
            state[f"blocks.block.{part}.instances.0.{what}_ilayer"] = torch.randn(shape, generator=g) * 0.1
    return state


def test_official_tleg_checkpoint_imports_with_the_same_logits(tmp_path) -> None:
    state = official_tleg_state()
    path = tmp_path / "tleg.pth"
    write_official_checkpoint(path, state, model="aux_deit_small_patch16_224_L8")
    gene = import_official(path)
    assert isinstance(gene, TLEGLearngene) and gene.aux_depth == 8
    assert gene.architecture.num_heads == 12 and gene.architecture.norm_eps == 1e-5
    # the official forward, written independently: layer l's tensors are base + (l / 8) * ilayer
    depth = 8
    per_layer = dict(state)
    for layer in range(depth):
        for part in PARTS:
            for what in ("weight", "bias"):
                key = f"blocks.block.{part}.instances.{layer}.{what}"
                base = state[f"blocks.block.{part}.instances.0.{what}_base"]
                slope = state[f"blocks.block.{part}.instances.0.{what}_ilayer"]
                per_layer[key] = base + (layer / depth) * slope
    x = torch.randn(2, 3, 16, 16)
    reference = official_forward(per_layer, [1] * depth, x, num_heads=12)
    with torch.no_grad():
        ours = gene.to_aux_net()(x)
    assert (ours - reference).abs().max().item() <= 1e-5
