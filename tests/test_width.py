"""Changing a learngene's width: wider by replication (function-preserving by whole multiples),
narrower by selecting the same channels, heads and MLP units everywhere."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
import torch.nn.functional as F

from sws.architecture import ViTArchitecture
from sws.errors import IncompatibleModelError
from sws.expansion import expand, save_des_net
from sws.learngene import Learngene, SWSLearngene
from sws.tleg import TLEGAuxNet, TLEGLearngene
from sws.width import change_width, split_fractions
from tests.conftest import perturbed_aux_net

WIDTH_32 = ViTArchitecture(embed_dim=32, num_heads=2, mlp_ratio=2.0, patch_size=4, img_size=16, num_classes=5)
WIDTH_48 = ViTArchitecture(embed_dim=48, num_heads=3, mlp_ratio=4.0, patch_size=4, img_size=16, num_classes=7)
WIDTH_64 = ViTArchitecture(embed_dim=64, num_heads=4, mlp_ratio=2.0, patch_size=4, img_size=16, num_classes=5)


def _sws_gene(arch: ViTArchitecture, layout: str = "3,3,4,3,3") -> SWSLearngene:
    return SWSLearngene.from_aux_net(perturbed_aux_net(layout, arch))


def _tleg_gene(arch: ViTArchitecture, depth: int = 6, seed: int = 0) -> TLEGLearngene:
    torch.manual_seed(seed)
    aux = TLEGAuxNet(depth=depth, **arch.to_dict())
    with torch.no_grad():
        for parameter in aux.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    return TLEGLearngene.from_aux_net(aux)


GENES = {"sws": _sws_gene, "tleg": _tleg_gene}


def _logits(gene: Learngene, depth: int, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return expand(gene, depth=depth).eval()(x)


@pytest.mark.parametrize("kind", ["sws", "tleg"])
@pytest.mark.parametrize(("arch", "factor"), [(WIDTH_32, 2), (WIDTH_32, 3), (WIDTH_48, 2), (WIDTH_48, 3)])
def test_a_des_net_from_a_learngene_widened_by_a_whole_multiple_computes_the_same_logits(kind, arch, factor) -> None:
    gene = GENES[kind](arch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a whole multiple must not warn that the function changes
        wide = change_width(gene, factor * arch.embed_dim)
    assert type(wide) is type(gene)
    assert wide.architecture == arch.replace(embed_dim=factor * arch.embed_dim, num_heads=factor * arch.num_heads)
    assert wide.architecture.mlp_hidden_dim == factor * arch.mlp_hidden_dim
    x = torch.randn(4, 3, 16, 16)
    differences = [(_logits(wide, d, x) - _logits(gene, d, x)).abs().max().item() for d in (3, 6, 12)]
    print(f"{kind} width {arch.embed_dim} x{factor}: max logit difference {max(differences):.2e}")
    assert max(differences) <= 1e-5


def test_replicas_are_tiled_and_the_copies_of_a_reading_column_add_up_to_it() -> None:
    gene, factor = _sws_gene(WIDTH_32, "2,2"), 3
    wide = change_width(gene, factor * 32)
    D, H, hd, M = 32, 2, 16, 64  # old width, heads, head dimension, MLP units
    for stage in range(2):
        old = gene.stage_tensors(stage)
        new = wide.stage_tensors(stage)
        qkv = _fold(new["attn.qkv.weight"], D).view(3, factor * H, hd, D)
        for head in range(factor * H):  # q, k and v of new head h are those of old head h % H
            assert torch.allclose(qkv[:, head], old["attn.qkv.weight"].view(3, H, hd, D)[:, head % H], atol=1e-6)
        qkv_bias = old["attn.qkv.bias"].view(3, H, hd).repeat(1, factor, 1)
        assert torch.equal(new["attn.qkv.bias"].view(3, factor * H, hd), qkv_bias)
        assert torch.allclose(_fold(new["attn.proj.weight"], D), old["attn.proj.weight"].repeat(factor, 1), atol=1e-6)
        assert torch.allclose(_fold(new["mlp.fc1.weight"], D), old["mlp.fc1.weight"].repeat(factor, 1), atol=1e-6)
        assert torch.allclose(_fold(new["mlp.fc2.weight"], M), old["mlp.fc2.weight"].repeat(factor, 1), atol=1e-6)
        for name in ("norm1.weight", "norm2.bias", "attn.proj.bias", "mlp.fc1.bias", "mlp.fc2.bias"):
            assert torch.equal(new[name], old[name].repeat(factor)), name
    assert torch.equal(wide.tensors["pos_embed"], gene.tensors["pos_embed"].repeat(1, 1, factor))
    patch_embed = gene.tensors["patch_embed.proj.weight"].repeat(factor, 1, 1, 1)
    assert torch.equal(wide.tensors["patch_embed.proj.weight"], patch_embed)
    assert torch.equal(wide.tensors["head.bias"], gene.tensors["head.bias"])
    assert torch.allclose(_fold(wide.tensors["head.weight"], D), gene.tensors["head.weight"], atol=1e-6)
    # Each copy holds a positive, unequal share of the original column.
    shares = (wide.tensors["head.weight"] / gene.tensors["head.weight"].repeat(1, factor))[0].view(factor, D)
    assert (shares > 0).all() and (shares < 1).all()
    assert (shares.max(0).values - shares.min(0).values).min() > 1e-3


def test_tleg_base_and_slope_share_their_split_so_every_layer_is_split_alike() -> None:
    gene = _tleg_gene(WIDTH_32)
    wide = change_width(gene, 64)
    for name in ("attn.proj.weight", "mlp.fc1.weight", "mlp.fc2.weight"):  # rows and columns tile by 2
        base, slope = (gene.tensors[f"{part}.{name}"].repeat(2, 2) for part in ("base", "slope"))
        new_base, new_slope = wide.tensors[f"base.{name}"], wide.tensors[f"slope.{name}"]
        # base' = base * f and slope' = slope * f with one f per column, so every layer
        # base + c * slope is split by the same positive shares f.
        assert torch.allclose(new_base * slope, new_slope * base, atol=1e-7), name
        assert not torch.allclose(new_base, base / 2, atol=1e-4), name


def _fold(weight: torch.Tensor, old_columns: int) -> torch.Tensor:
    """Sum the tiled copies of each input column (new column j copies old column j % old_columns)."""
    folded = torch.zeros(weight.shape[0], old_columns, dtype=torch.float64)
    return folded.index_add_(1, torch.arange(weight.shape[1]) % old_columns, weight.double()).float()


def test_split_fractions_are_positive_unequal_and_sum_to_one_per_column() -> None:
    index = torch.arange(10) % 4  # columns 0 and 1 have three copies, columns 2 and 3 two
    shares = split_fractions(index, torch.Generator().manual_seed(0))
    totals = torch.zeros(4, dtype=torch.float64).index_add_(0, index, shares)
    assert torch.allclose(totals, torch.ones(4, dtype=torch.float64), atol=1e-15)
    assert (shares > 0).all() and shares.unique().numel() == 10
    assert torch.equal(split_fractions(index, torch.Generator(), "equal"), 1 / torch.bincount(index)[index].double())
    assert split_fractions(torch.tensor([0, 2, 4]), torch.Generator()) is None  # a selection has no copies


@pytest.mark.parametrize(("split", "copies_diverge"), [("random", True), ("equal", False)])
def test_an_unequal_split_lets_copies_diverge_after_one_optimizer_step(split, copies_diverge) -> None:
    gene = _sws_gene(WIDTH_32, "1,1,1")
    des = expand(change_width(gene, 64, split=split), depth=3).train()
    optimizer = torch.optim.SGD(des.parameters(), lr=0.1)
    torch.manual_seed(1)
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 5, (8,))
    block = des.blocks[0]
    copies = {  # (tensor, first copy, second copy): tiled rows, identical before the step
        "residual channel": (des.patch_embed.proj.weight, slice(0, 32), slice(32, 64)),
        "attention head": (block.attn.qkv.weight, slice(0, 16), slice(32, 48)),  # q of heads 0 and 2
        "MLP unit": (block.mlp.fc1.weight, slice(0, 64), slice(64, 128)),
    }
    for tensor, first, second in copies.values():
        assert torch.equal(tensor[first], tensor[second])
    F.cross_entropy(des(x), y).backward()
    optimizer.step()
    for what, (tensor, first, second) in copies.items():
        difference = (tensor[first] - tensor[second]).abs().max().item()
        assert (difference > 1e-6) if copies_diverge else (difference == 0.0), (what, difference)


@pytest.mark.parametrize("kind", ["sws", "tleg"])
@pytest.mark.parametrize("narrow", [32, 48])
def test_narrowing_selects_the_same_channels_heads_and_units_everywhere(kind, narrow) -> None:
    gene = GENES[kind](WIDTH_64)
    small = change_width(gene, narrow)
    D, H, hd, M = 64, 4, 16, 128
    heads, units = narrow // hd, narrow * 2
    assert small.architecture == WIDTH_64.replace(embed_dim=narrow, num_heads=heads)
    channels = [i * D // narrow for i in range(narrow)]
    kept_heads = [i * H // heads for i in range(heads)]
    attention = [h * hd + d for h in kept_heads for d in range(hd)]
    qkv = [part * D + c for part in range(3) for c in attention]
    mlp = [i * M // units for i in range(units)]
    expected = {
        "norm1.weight": lambda t: t[channels],
        "norm1.bias": lambda t: t[channels],
        "attn.qkv.weight": lambda t: t[qkv][:, channels],
        "attn.qkv.bias": lambda t: t[qkv],
        "attn.proj.weight": lambda t: t[channels][:, attention],
        "attn.proj.bias": lambda t: t[channels],
        "norm2.weight": lambda t: t[channels],
        "norm2.bias": lambda t: t[channels],
        "mlp.fc1.weight": lambda t: t[mlp][:, channels],
        "mlp.fc1.bias": lambda t: t[mlp],
        "mlp.fc2.weight": lambda t: t[channels][:, mlp],
        "mlp.fc2.bias": lambda t: t[channels],
        "patch_embed.proj.weight": lambda t: t[channels],
        "patch_embed.proj.bias": lambda t: t[channels],
        "pos_embed": lambda t: t[:, :, channels],
        "norm.weight": lambda t: t[channels],
        "norm.bias": lambda t: t[channels],
        "head.weight": lambda t: t[:, channels],
        "head.bias": lambda t: t,
    }
    assert set(small.tensors) == set(gene.tensors)
    for key, tensor in small.tensors.items():
        name = key.split(".", 2)[-1] if key.startswith("stages.") else key.removeprefix("base.").removeprefix("slope.")
        assert torch.equal(tensor, expected[name](gene.tensors[key])), key
    assert torch.isfinite(_logits(small, 4, torch.randn(2, 3, 16, 16))).all()


@pytest.mark.parametrize("kind", ["sws", "tleg"])
def test_widening_by_a_non_multiple_warns_and_still_grows_a_working_des_net(kind, tmp_path) -> None:
    gene = GENES[kind](WIDTH_32)
    with pytest.warns(UserWarning, match="from width 32 to 48 is not by a whole multiple"):
        wide = change_width(gene, 48)
    assert wide.architecture.num_heads == 3 and wide.architecture.mlp_hidden_dim == 96
    wide.save(tmp_path / "wide.safetensors")
    loaded = Learngene.load(tmp_path / "wide.safetensors")
    x = torch.randn(4, 3, 16, 16)
    logits = _logits(loaded, 12, x)
    assert torch.isfinite(logits).all()
    difference = (logits - _logits(gene, 12, x)).abs().max().item()
    print(f"{kind} width 32 -> 48, depth 12: max logit difference {difference:.3f}")
    assert 0 < difference < float("inf")


def test_an_explicit_head_count_when_widening_regroups_heads_with_a_warning() -> None:
    gene = _sws_gene(WIDTH_32, "1,1")
    with pytest.warns(UserWarning, match="heads of dimension 16 -> 8"):
        wide = change_width(gene, 40, num_heads=5)
    assert wide.architecture.num_heads == 5 and "function changed" in wide.source


@pytest.mark.parametrize(
    ("embed_dim", "num_heads", "message"),
    [
        (64, 3, "width 64 does not split into 3 attention heads; pass a num_heads that divides 64"),
        (40, None, "width 40 cannot keep the learngene's head dimension 16; pass num_heads (a divisor of 40)"),
        (24, None, "width 24 cannot keep the learngene's head dimension 16; narrowing selects whole heads"),
        (16, 2, "narrowing selects whole heads and keeps the head dimension 16"),
        (32, 4, "width 32 is already the learngene's; to use 4 heads"),
        (0, None, "embed_dim must be a positive whole number, not 0"),
        (-64, None, "embed_dim must be a positive whole number, not -64"),
        (True, None, "embed_dim must be a positive whole number, not True"),
        (64.0, None, "embed_dim must be a positive whole number, not 64.0"),
        (64, 0, "num_heads must be a positive whole number, not 0"),
    ],
)
def test_bad_widths_are_refused_in_one_line(embed_dim, num_heads, message) -> None:
    gene = _sws_gene(WIDTH_32, "1,1")
    with pytest.raises(IncompatibleModelError) as error:
        change_width(gene, embed_dim, num_heads)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("kind", ["sws", "tleg"])
def test_provenance_survives_saving_and_loading(kind, tmp_path) -> None:
    gene = GENES[kind](WIDTH_32)
    wide = change_width(gene, 64, seed=3)
    note = "width 32->64 (2->4 heads; replicated x2, random split, seed 3; function-preserving)"
    assert wide.source == f"sws extract | {note}"
    narrow = change_width(wide, 32)
    assert narrow.source.endswith(" | width 64->32 (4->2 heads; evenly spaced selection)")
    for grown in (wide, narrow):
        grown.save(tmp_path / "g.safetensors")
        loaded = Learngene.load(tmp_path / "g.safetensors")
        loaded.check()
        assert type(loaded) is type(gene) and loaded.source == grown.source
        assert loaded.architecture == grown.architecture and loaded.aux_depth == gene.aux_depth
        assert all(torch.equal(loaded.tensors[k], t) for k, t in grown.tensors.items())
    if kind == "sws":
        assert wide.layout == gene.layout


def test_the_split_is_seeded_and_the_same_width_gives_a_copy() -> None:
    gene = _sws_gene(WIDTH_32, "1,1")
    first, again, other = (change_width(gene, 64, seed=s) for s in (0, 0, 1))
    assert all(torch.equal(first.tensors[k], again.tensors[k]) for k in first.tensors)
    assert not torch.equal(first.tensors["head.weight"], other.tensors["head.weight"])
    same = change_width(gene, 32)
    assert same is not gene and same.source == gene.source and same.architecture == gene.architecture
    assert all(torch.equal(same.tensors[k], t) and same.tensors[k] is not t for k, t in gene.tensors.items())


def test_a_grown_des_net_loads_in_plain_timm_with_the_same_logits(tmp_path) -> None:
    gene = _sws_gene(WIDTH_32)
    des = expand(change_width(gene, 64), depth=6).eval()
    out = save_des_net(des, tmp_path / "des_wide")
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.save({"x": x, "grown": des(x), "original": expand(gene, depth=6).eval()(x)}, tmp_path / "ref.pt")
    script = textwrap.dedent(f"""
        import sys, torch, timm
        model = timm.create_model('local-dir:{out}', pretrained=True).eval()
        assert 'sws' not in sys.modules, 'sws was imported'
        ref = torch.load('{tmp_path / "ref.pt"}')
        with torch.no_grad():
            logits = model(ref['x'])
        grown, original = ((logits - ref[k]).abs().max().item() for k in ('grown', 'original'))
        print(model.embed_dim, grown, original)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr
    width, to_grown, to_original = result.stdout.split()
    assert int(width) == 64
    assert float(to_grown) <= 1e-6
    assert float(to_original) <= 1e-5
