"""Import of official SWS checkpoints, checked against an independent forward pass."""

from __future__ import annotations

import argparse
import math

import pytest
import torch
import torch.nn.functional as F

from sws.errors import CheckpointError, LayoutError
from sws.expansion import expand
from sws.extraction import load_learngene
from sws.learngene import Learngene, SWSLearngene
from sws.official import import_official

PARTS = {  # official part name -> (shape of weight, shape of bias) as functions of width D, hidden H
    "norm1": (lambda d, h: (d,), lambda d, h: (d,)),
    "attn.qkv": (lambda d, h: (3 * d, d), lambda d, h: (3 * d,)),
    "attn.proj": (lambda d, h: (d, d), lambda d, h: (d,)),
    "norm2": (lambda d, h: (d,), lambda d, h: (d,)),
    "mlp.fc1": (lambda d, h: (h, d), lambda d, h: (h,)),
    "mlp.fc2": (lambda d, h: (d, h), lambda d, h: (d,)),
}


def official_state(
    stages: int,
    width: int = 48,
    hidden: int = 96,
    patch: int = 4,
    img: int = 16,
    chans: int = 3,
    classes: int = 10,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """A state dict in the official SWS layout with random values (norms near 1)."""
    g = torch.Generator().manual_seed(seed)
    state = {
        "patch_embed.proj.weight": torch.randn(width, chans, patch, patch, generator=g) * 0.1,
        "patch_embed.proj.bias": torch.randn(width, generator=g) * 0.1,
        "pos_embed": torch.randn(1, (img // patch) ** 2, width, generator=g) * 0.1,
        "norm.weight": 1 + torch.randn(width, generator=g) * 0.1,
        "norm.bias": torch.randn(width, generator=g) * 0.1,
        "head.weight": torch.randn(classes, width, generator=g) * 0.1,
        "head.bias": torch.randn(classes, generator=g) * 0.1,
    }
    for s in range(stages):
        for part, (w_shape, b_shape) in PARTS.items():
            offset = 1.0 if part.startswith("norm") else 0.0
            weight = offset + torch.randn(w_shape(width, hidden), generator=g) * 0.1
            state[f"blocks.block.{part}.instances.{s}.weight"] = weight
            state[f"blocks.block.{part}.instances.{s}.bias"] = torch.randn(b_shape(width, hidden), generator=g) * 0.1
    return state


def write_official_checkpoint(path, state, model="aux_deit_small_patch16_224_L16_33433", **extra) -> None:
    args = argparse.Namespace(
        model=model,
        epochs=150,
        batch_size=128,
        lr=5e-4,
        teacher_model="levit_384",
        distillation_type="soft",
        distillation_alpha=1.0,
        distillation_tau=1.0,
        data_set="IMNET",
        input_size=224,
        seed=0,
        output_dir="/somewhere",
        drop_path=0.1,
    )
    checkpoint = {
        "model": state,
        "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]},
        "lr_scheduler": {"t_initial": 150, "base_values": [5e-4]},
        "model_ema": {k: v.clone() for k, v in state.items()},
        "scaler": {"scale": 65536.0, "growth_factor": 2.0},
        "epoch": 149,
        "args": args,
        **extra,
    }
    torch.save(checkpoint, path)


def official_forward(state, layout, x, num_heads: int) -> torch.Tensor:
    """The official Aux-Net's forward pass, written independently of timm: conv patch embedding,
    position embedding, pre-norm blocks (LayerNorm eps 1e-5) whose weights come from the layer's
    stage, final LayerNorm on every token, average of the tokens, linear head."""
    eps = 1e-5
    w = state["patch_embed.proj.weight"]
    tokens = F.conv2d(x, w, state["patch_embed.proj.bias"], stride=w.shape[-1]).flatten(2).transpose(1, 2)
    tokens = tokens + state["pos_embed"]
    batch, n, d = tokens.shape
    head_dim = d // num_heads
    stage_of_layer = [s for s, count in enumerate(layout) for _ in range(count)]
    for s in stage_of_layer:

        def p(part: str, what: str, s: int = s) -> torch.Tensor:
            return state[f"blocks.block.{part}.instances.{s}.{what}"]

        h = F.layer_norm(tokens, (d,), p("norm1", "weight"), p("norm1", "bias"), eps)
        qkv = h @ p("attn.qkv", "weight").T + p("attn.qkv", "bias")
        q, k, v = qkv.reshape(batch, n, 3, num_heads, head_dim).permute(2, 0, 3, 1, 4)
        attention = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(head_dim), dim=-1)
        mixed = (attention @ v).transpose(1, 2).reshape(batch, n, d)
        tokens = tokens + mixed @ p("attn.proj", "weight").T + p("attn.proj", "bias")
        h = F.layer_norm(tokens, (d,), p("norm2", "weight"), p("norm2", "bias"), eps)
        h = F.gelu(h @ p("mlp.fc1", "weight").T + p("mlp.fc1", "bias"))
        tokens = tokens + h @ p("mlp.fc2", "weight").T + p("mlp.fc2", "bias")
    tokens = F.layer_norm(tokens, (d,), state["norm.weight"], state["norm.bias"], eps)
    return tokens.mean(dim=1) @ state["head.weight"].T + state["head.bias"]


def test_imported_aux_net_computes_the_official_logits(tmp_path) -> None:
    state = official_state(stages=5)
    path = tmp_path / "checkpoint.pth"
    write_official_checkpoint(path, state)
    gene = import_official(path)
    assert isinstance(gene, SWSLearngene)
    assert str(gene.layout) == "3,3,4,3,3"  # from the model name in args
    assert gene.architecture.num_heads == 12  # the official small Aux-Net's head count
    assert gene.architecture.norm_eps == 1e-5
    assert gene.training["teacher_model"] == "levit_384" and gene.training["epochs_completed"] == 150
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        ours = gene.to_aux_net()(x)
    reference = official_forward(state, (3, 3, 4, 3, 3), x, num_heads=12)
    assert (ours - reference).abs().max().item() <= 1e-5


def test_head_count_is_recorded_and_kept_by_expansion(tmp_path) -> None:
    path = tmp_path / "checkpoint.pth"
    write_official_checkpoint(path, official_state(stages=5))
    gene = import_official(path, num_heads=6)
    gene.save(tmp_path / "g.safetensors")
    reloaded = Learngene.load(tmp_path / "g.safetensors")
    assert reloaded.architecture.num_heads == 6
    assert expand(reloaded, depth=12).blocks[0].attn.num_heads == 6


def test_load_learngene_accepts_the_official_checkpoint_directly(tmp_path) -> None:
    path = tmp_path / "checkpoint.pth"
    write_official_checkpoint(path, official_state(stages=3), model="aux_deit_small_patch16_224_L9_333")
    gene = load_learngene(path)
    assert str(gene.layout) == "3,3,3"


def test_stage_count_that_disagrees_with_the_layout_is_refused(tmp_path) -> None:
    path = tmp_path / "checkpoint.pth"
    write_official_checkpoint(path, official_state(stages=5))
    with pytest.raises(LayoutError, match="layout 4,4,4 has 3 stages but the checkpoint holds 5"):
        import_official(path, layout="4,4,4")


def test_missing_keys_are_refused(tmp_path) -> None:
    state = official_state(stages=5)
    del state["blocks.block.mlp.fc2.instances.3.weight"]
    path = tmp_path / "checkpoint.pth"
    write_official_checkpoint(path, state)
    with pytest.raises(CheckpointError, match=r"lacks blocks\.block\.mlp\.fc2\.instances\.3\.weight"):
        import_official(path)


def test_unknown_layout_needs_the_flag(tmp_path) -> None:
    path = tmp_path / "checkpoint.pth"
    write_official_checkpoint(path, official_state(stages=5), model="aux_deit_small_patch16_224")
    with pytest.raises(LayoutError, match="pass --layout"):
        import_official(path)
    assert str(import_official(path, layout="3,3,4,3,3").layout) == "3,3,4,3,3"


class Payload:
    """Stands for arbitrary code a malicious pickle would run."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_objects_beyond_namespace_are_refused(tmp_path) -> None:
    path = tmp_path / "checkpoint.pth"
    write_official_checkpoint(path, official_state(stages=5), payload=Payload())
    with pytest.raises(CheckpointError, match="weights-only loading refuses"):
        import_official(path)
