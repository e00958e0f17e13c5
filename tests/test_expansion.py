"""Expansion: Des-Nets of any depth from a learngene, preserving function where they can."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

from sws.architecture import ViTArchitecture
from sws.errors import IncompatibleModelError, LayoutError
from sws.expansion import expand, initialize_from_learngene, save_des_net
from sws.learngene import Learngene, SWSLearngene
from sws.models import create_model
from tests.conftest import perturbed_aux_net


@pytest.mark.parametrize(
    ("layout", "arch"),
    [
        (
            "3,3,4,3,3",
            ViTArchitecture(embed_dim=32, num_heads=2, mlp_ratio=2.0, patch_size=4, img_size=16, num_classes=5),
        ),
        (
            "1,2,3",
            ViTArchitecture(
                embed_dim=48, num_heads=3, mlp_ratio=4.0, patch_size=8, img_size=32, in_chans=1, num_classes=7
            ),
        ),
    ],
)
def test_des_net_at_the_aux_net_layout_computes_the_aux_net_logits(layout, arch) -> None:
    aux = perturbed_aux_net(layout, arch)
    gene = SWSLearngene.from_aux_net(aux)
    des = expand(gene, depth=aux.layout.depth).eval()
    assert type(des).__name__ == "VisionTransformer"
    x = torch.randn(4, arch.in_chans, arch.img_size, arch.img_size)
    with torch.no_grad():
        difference = (des(x) - aux(x)).abs().max().item()
    assert difference <= 1e-5


def test_descendant_layer_i_copies_learngene_layer_mapping_i_bit_for_bit(tiny_arch) -> None:
    gene = SWSLearngene.from_aux_net(perturbed_aux_net("3,3,4,3,3", tiny_arch))
    for depth, mapping in ((12, None), (6, "0,0,1,2,3,4"), (3, None), (20, None)):
        des = expand(gene, depth=depth, mapping=mapping)
        used = des.sws_expansion.mapping
        assert len(used) == depth
        for layer, stage in enumerate(used):
            for name, tensor in des.blocks[layer].state_dict().items():
                assert torch.equal(tensor, gene.tensors[f"stages.{stage}.{name}"]), (depth, layer, name)
        for name in ("patch_embed.proj.weight", "pos_embed", "norm.weight", "head.weight"):
            assert torch.equal(des.state_dict()[name], gene.tensors[name])
    assert expand(gene, depth=12).sws_expansion.mapping == (0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 4)


def test_round_trip_through_file_and_timm_local_dir_without_sws(tiny_arch, tmp_path) -> None:
    gene = SWSLearngene.from_aux_net(perturbed_aux_net("3,3,4,3,3", tiny_arch))
    gene.save(tmp_path / "g.safetensors")
    reloaded = Learngene.load(tmp_path / "g.safetensors")
    des = expand(reloaded, depth=12).eval()
    direct = expand(gene, depth=12).eval()
    assert all(torch.equal(a, b) for a, b in zip(des.state_dict().values(), direct.state_dict().values(), strict=True))
    out = save_des_net(des, tmp_path / "des12", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x = torch.randn(2, 3, 16, 16)
    torch.save({"x": x, "logits": des(x).detach()}, tmp_path / "ref.pt")
    script = textwrap.dedent(f"""
        import sys, torch, timm
        model = timm.create_model('local-dir:{out}', pretrained=True).eval()
        ref = torch.load('{tmp_path / "ref.pt"}')
        assert 'sws' not in sys.modules, 'sws was imported'
        print(model.pretrained_cfg['mean'], (model(ref['x']) - ref['logits']).abs().max().item())
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr
    mean, difference = result.stdout.rsplit(" ", 1)
    assert float(difference) <= 1e-6
    assert "0.5" in mean


def test_head_is_new_when_classes_differ_and_pos_embed_resampled_for_other_sizes(tiny_arch) -> None:
    gene = SWSLearngene.from_aux_net(perturbed_aux_net("2,2", tiny_arch))
    des = expand(gene, depth=4, num_classes=11, img_size=32)
    assert des.sws_expansion.head == "new"
    assert des.head.weight.shape == (11, 32)
    assert des.sws_expansion.pos_embed == "resampled 4x4 -> 8x8"
    assert des.pos_embed.shape == (1, 64, 32)
    assert des(torch.randn(1, 3, 32, 32)).shape == (1, 11)
    same = expand(gene, depth=4)
    assert same.sws_expansion.head == "copied" and same.sws_expansion.pos_embed == "copied"


def test_a_head_is_new_on_other_data_even_when_the_class_counts_agree(tiny_arch) -> None:
    gene = SWSLearngene.from_aux_net(perturbed_aux_net("2,2", tiny_arch))
    model = create_model("des_net", depth=4, **tiny_arch.to_dict())
    fresh = model.head.weight.detach().clone()
    assert initialize_from_learngene(model, gene, new_head=True).head == "new"
    assert torch.equal(model.head.weight, fresh) and not torch.equal(model.head.weight, gene.tensors["head.weight"])


@pytest.mark.parametrize(("trained", "wanted", "note"), [(1, 3, "1 -> 3 (replicated)"), (3, 1, "3 -> 1 (summed)")])
def test_a_learngene_of_other_channels_reads_a_grey_image_as_it_did(tiny_arch, trained, wanted, note) -> None:
    """A grey image copied to every channel, or summed to one, gets the patch embedding it had."""
    gene = SWSLearngene.from_aux_net(perturbed_aux_net("2,2", tiny_arch.replace(in_chans=trained)))
    des = expand(gene, depth=4, in_chans=wanted).eval()
    assert des.sws_expansion.channels == note
    grey = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        mine = gene.to_aux_net()(grey.expand(-1, trained, -1, -1))
        theirs = des(grey.expand(-1, wanted, -1, -1))
    assert torch.allclose(mine, theirs, atol=1e-5)
    with pytest.raises(IncompatibleModelError, match="cannot be fitted to 5"):
        expand(SWSLearngene.from_aux_net(perturbed_aux_net("2,2", tiny_arch.replace(in_chans=2))), 4, in_chans=5)


def test_another_head_count_fits_with_a_warning(tiny_arch) -> None:
    gene = SWSLearngene.from_aux_net(perturbed_aux_net("2,2", tiny_arch))
    with pytest.warns(UserWarning, match="trained with 2 attention heads but the Des-Net has 4") as caught:
        des = expand(gene, depth=4, num_heads=4)
    assert caught[0].filename == __file__
    assert des.blocks[0].attn.num_heads == 4


def test_a_des_net_shallower_than_the_stage_count_warns_which_stages_it_drops(tiny_arch) -> None:
    gene = SWSLearngene.from_aux_net(perturbed_aux_net("1,2,1,1,1", tiny_arch))
    with pytest.warns(
        UserWarning, match=r"copies stages 0,1,2 and drops stage\(s\) 3,4; every stage is kept from depth 5"
    ) as caught:
        expand(gene, depth=3)
    assert caught[0].filename == __file__  # it points at the user's line, not into sws
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # at the stage count, or with a mapping chosen by hand: no warning
        expand(gene, depth=5)
        expand(gene, depth=3, mapping="0,2,4")


def test_mismatched_models_are_refused(tiny_arch) -> None:
    gene = SWSLearngene.from_aux_net(perturbed_aux_net("2,2", tiny_arch))
    # another width is grown to (see sws.width), but another MLP ratio has no rule
    wider = create_model("des_net", depth=4, embed_dim=64, num_heads=4, patch_size=4, img_size=16)
    with pytest.raises(IncompatibleModelError, match="mlp_hidden_dim 256 != learngene's 128"):
        initialize_from_learngene(wider, gene)
    other_patch = create_model("des_net", depth=4, embed_dim=32, num_heads=2, mlp_ratio=2.0, patch_size=8, img_size=16)
    with pytest.raises(IncompatibleModelError, match="patch_size 8 != learngene's 4"):
        initialize_from_learngene(other_patch, gene)
    with pytest.raises(IncompatibleModelError, match="does not split into 5 attention heads"):
        expand(gene, depth=4, num_heads=5)
    with_cls = create_model("vit_tiny_patch16_224", embed_dim=32, num_heads=2, mlp_ratio=2.0, patch_size=4, img_size=16)
    with pytest.raises(IncompatibleModelError, match="class or register token"):
        initialize_from_learngene(with_cls, gene)


def test_bad_mappings_are_refused(tiny_arch) -> None:
    gene = SWSLearngene.from_aux_net(perturbed_aux_net("2,2", tiny_arch))
    with pytest.raises(LayoutError, match="has 3 entries but the descendant has 4"):
        expand(gene, depth=4, mapping="0,0,1")
    with pytest.raises(LayoutError, match="names learngene layer 2, but layout 2,2 has only 2"):
        expand(gene, depth=4, mapping="0,1,1,2")


def test_a_model_of_twice_the_width_is_initialized_with_the_same_function(tiny_arch) -> None:
    """The natural way in training: a Des-Net built at another width (here by name with its own head
    count) takes the learngene grown to its width."""
    gene = SWSLearngene.from_aux_net(perturbed_aux_net("3,3,4,3,3", tiny_arch))
    narrow = expand(gene, depth=6).eval()
    wide = create_model("des_net", depth=6, **{**tiny_arch.to_dict(), "embed_dim": 64, "num_heads": 4}).eval()
    expansion = initialize_from_learngene(wide, gene)
    assert expansion.width.startswith("width 32->64") and "function-preserving" in expansion.width
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        assert (wide(x) - narrow(x)).abs().max().item() <= 1e-5


def test_cli_expand_to_another_width_and_its_refusals(tiny_arch, tmp_path, capsys) -> None:
    from sws.cli import main

    gene_path = SWSLearngene.from_aux_net(perturbed_aux_net("1,1", tiny_arch)).save(tmp_path / "g.safetensors")

    assert main(["expand", str(gene_path), "--depth", "4", "--width", "64", "--out", str(tmp_path / "wide")]) == 0
    assert "width 32->64" in capsys.readouterr().out
    config = __import__("json").loads((tmp_path / "wide" / "config.json").read_text())
    assert config["model_args"]["embed_dim"] == 64 and config["model_args"]["num_heads"] == 4
    for width, heads, words in (("0", None, "positive whole number"), ("48", "5", "does not split into 5"),
                                ("20", None, "cannot keep the learngene's head dimension")):  # fmt: skip
        argv = ["expand", str(gene_path), "--depth", "4", "--width", width, "--out", str(tmp_path / width)]
        assert main([*argv, *(["--num-heads", heads] if heads else [])]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
