"""Import Aux-Net checkpoints written by the official SWS (and TLEG) code into learngene files.

An official checkpoint is a torch pickle: ``{'model', 'optimizer', 'lr_scheduler', 'model_ema',
'scaler', 'epoch', 'args'}``, where ``args`` is an ``argparse.Namespace``. It is read with
``torch.load(weights_only=True)``, allowing ``argparse.Namespace`` and nothing else beyond tensors
and plain containers, so no pickled code runs.

Its ``'model'`` entry keeps each shared block part once per stage
(``blocks.block.attn.qkv.instances.{s}.weight``); those become the learngene's
``stages.{s}.attn.qkv.weight``. The official Aux-Net normalizes every token with its final
LayerNorm and then averages them (the SWS head that sws uses too), but all of its LayerNorms use
PyTorch's default epsilon 1e-5 (recorded in the learngene, so the imported Aux-Net computes the
same logits), and its small model uses 12 attention heads of dimension 32 where DeiT-Small and
the official small Des-Net use 6 (recorded too; see ``OFFICIAL_HEADS``).

Example:
    >>> gene = import_official("aux_s_checkpoint.pth")
    >>> gene.save("small.learngene.safetensors")
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from sws.architecture import ViTArchitecture
from sws.checkpoint import is_sws_checkpoint, read_torch_file
from sws.errors import CheckpointError, LayoutError
from sws.layout import StageLayout, check_depth
from sws.learngene import Learngene, SWSLearngene, training_record
from sws.tleg import TLEGLearngene

# Block parts as the official code names them (``blocks.block.<part>.instances.<s>``); they are
# also the timm ``Block`` sub-module names, so the conversion only moves the stage index.
OFFICIAL_BLOCK_PARTS = ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")
OFFICIAL_OUTER_KEYS = (
    "patch_embed.proj.weight",
    "patch_embed.proj.bias",
    "pos_embed",
    "norm.weight",
    "norm.bias",
    "head.weight",
    "head.bias",
)
OFFICIAL_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default, used throughout the official Aux-Nets

# The official TLEG code registers its Aux-Nets under plain DeiT names, each with 12 layers.
OFFICIAL_TLEG_DEPTHS = {"aux_deit_small_patch16_224": 12, "aux_deit_base_patch16_224": 12}

# Head counts of the official Aux-Nets, by the width word in their model names: the official
# small Aux-Net used 12 heads (head dimension 32), unlike DeiT-Small's 6.
OFFICIAL_HEADS = {"tiny": 3, "small": 12, "base": 12}

_SWS_KEY = re.compile(r"blocks\.block\.(.+)\.instances\.(\d+)\.(weight|bias)$")
_TLEG_KEY = re.compile(r"blocks\.block\.(.+)\.instances\.0\.(weight|bias)_(base|ilayer)$")


def load_official_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an official checkpoint without running pickled code (weights-only loading that also
    admits ``argparse.Namespace``, the only object such a file holds)."""
    checkpoint = read_torch_file(path)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} holds a {type(checkpoint).__name__}, not an official checkpoint dict")
    return checkpoint


def official_kind(state: dict[str, torch.Tensor]) -> str:
    """``'tleg'`` or ``'sws'``, told apart by the keys of the ``'model'`` entry."""
    if any(_TLEG_KEY.match(key) for key in state):
        return "tleg"
    if any(_SWS_KEY.match(key) for key in state):
        return "sws"
    raise CheckpointError(
        "the checkpoint's model holds no 'blocks.block.<part>.instances.<n>' keys, so it is neither an "
        "official SWS nor an official TLEG Aux-Net; for an sws checkpoint use `sws extract`"
    )


def import_official(
    source: str | os.PathLike[str] | dict[str, Any],
    layout: StageLayout | str | None = None,
    num_heads: int | None = None,
    use_ema: bool = False,
    aux_depth: int | None = None,
    name: str | None = None,
) -> Learngene:
    """Convert an official SWS or TLEG Aux-Net checkpoint into a learngene.

    Args:
        source: The official ``checkpoint.pth`` (or its contents, already read weights-only).
        layout: SWS stage layout; by default read from the model name in the checkpoint's ``args``
            (``..._L16_33433``).
        num_heads: Attention heads of the official Aux-Net; by default what the named official model
            used (``OFFICIAL_HEADS``).
        use_ema: Import the ``'model_ema'`` weights instead of ``'model'``.
        aux_depth: Depth of a TLEG Aux-Net; by default read from the model name (``..._L16``, or
            12 for the official TLEG names ``aux_deit_{tiny,small,base}_patch16_224``).
        name: What to call the checkpoint in messages (default: its file name).
    """
    checkpoint = source if isinstance(source, dict) else load_official_checkpoint(source)
    name = name or ("the checkpoint" if isinstance(source, dict) else Path(source).name)
    if is_sws_checkpoint(checkpoint):
        raise CheckpointError(
            f"{name} was written by sws train, not by the official code; take its learngene with `sws extract`"
        )
    entry = "model_ema" if use_ema else "model"
    state = checkpoint.get(entry)
    if not isinstance(state, dict) or not state:
        raise CheckpointError(
            f"{name} has no '{entry}' state dict, so it is neither an official SWS nor an official TLEG Aux-Net "
            "checkpoint; a learngene comes from `sws extract` (sws checkpoints) or `sws import-official`"
        )
    _check_state(state, f"{name}'s '{entry}'")
    if aux_depth is not None:
        check_depth(aux_depth, "the TLEG Aux-Net (--aux-depth, aux_depth)")
    args = checkpoint.get("args")
    model_name = str(getattr(args, "model", "") or "")
    architecture = _architecture(state, model_name, num_heads, name)
    training = _training_record(checkpoint, args)
    origin = f"sws import-official {name}"
    if official_kind(state) == "tleg":
        return _import_tleg(state, architecture, model_name, aux_depth, training, origin)
    return _import_sws(state, architecture, layout, model_name, training, origin)


def _import_sws(
    state: dict[str, torch.Tensor],
    architecture: ViTArchitecture,
    layout: StageLayout | str | None,
    model_name: str,
    training: dict[str, Any],
    source: str,
) -> SWSLearngene:
    stages = sorted({int(m.group(2)) for key in state if (m := _SWS_KEY.match(key))})
    if stages != list(range(len(stages))):
        raise CheckpointError(f"the checkpoint's stages are numbered {stages}; expected 0 to {len(stages) - 1}")
    if layout is None:
        layout = StageLayout.from_model_name(model_name)
        if layout is None:
            raise LayoutError(
                f"cannot tell the stage layout from model name {model_name!r}; pass --layout, for example 3,3,4,3,3"
            )
    layout = StageLayout.parse(layout)
    if layout.num_stages != len(stages):
        raise LayoutError(
            f"layout {layout} has {layout.num_stages} stages but the checkpoint holds {len(stages)} learngene "
            "layers; pass the layout it was trained with"
        )
    tensors = _outer_tensors(state)
    expected = [
        f"blocks.block.{part}.instances.{s}.{w}"
        for s in stages
        for part in OFFICIAL_BLOCK_PARTS
        for w in ("weight", "bias")
    ]
    _require(state, expected)
    for key in expected:
        match = _SWS_KEY.match(key)
        part, stage, what = match.group(1), match.group(2), match.group(3)
        tensors[f"stages.{stage}.{part}.{what}"] = state[key].float().clone()
    gene = SWSLearngene(architecture, tensors, layout, training=training, source=source)
    gene.check()
    return gene


def _import_tleg(
    state: dict[str, torch.Tensor],
    architecture: ViTArchitecture,
    model_name: str,
    aux_depth: int | None,
    training: dict[str, Any],
    source: str,
) -> TLEGLearngene:
    """``blocks.block.<part>.instances.0.weight_base|weight_ilayer`` become ``base.<part>.weight``
    and ``slope.<part>.weight``."""
    if aux_depth is None:
        aux_depth = official_tleg_depth(model_name)
    tensors = _outer_tensors(state)
    expected = [
        f"blocks.block.{part}.instances.0.{what}_{role}"
        for part in OFFICIAL_BLOCK_PARTS
        for what in ("weight", "bias")
        for role in ("base", "ilayer")
    ]
    _require(state, expected)
    for key in expected:
        part, what, role = _TLEG_KEY.match(key).groups()
        tensors[f"{'base' if role == 'base' else 'slope'}.{part}.{what}"] = state[key].float().clone()
    gene = TLEGLearngene(architecture, tensors, aux_depth=aux_depth, training=training, source=source)
    gene.check()
    return gene


def official_tleg_depth(model_name: str) -> int:
    """The depth of an official TLEG Aux-Net, from its model name: an ``_L<depth>`` suffix, or the
    official code's fixed 12 layers for its ``aux_deit_*_patch16_224`` names."""
    match = re.search(r"_L(\d+)", model_name)
    if match:
        return check_depth(int(match.group(1)), f"the TLEG Aux-Net {model_name}")
    if model_name in OFFICIAL_TLEG_DEPTHS:
        return OFFICIAL_TLEG_DEPTHS[model_name]
    raise LayoutError(f"cannot tell the TLEG Aux-Net's depth from model name {model_name!r}; pass --aux-depth")


def _outer_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    _require(state, OFFICIAL_OUTER_KEYS)
    return {key: state[key].float().clone() for key in OFFICIAL_OUTER_KEYS}


def _require(state: dict[str, torch.Tensor], keys: Any) -> None:
    missing = [key for key in keys if key not in state]
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise CheckpointError(
            f"the official checkpoint lacks {shown}; it is incomplete or not an official Aux-Net checkpoint"
        )


def _check_state(state: dict[Any, Any], what: str) -> None:
    """Every entry of an official state dict is a tensor under a text key."""
    for key, value in state.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{what} holds the key {key!r}; a state dict's keys are tensor names (text)")
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{what} holds {type(value).__name__} at {key}, not a tensor; the file is damaged")


# The ranks an official Aux-Net's outer tensors have: (width, channels, patch, patch), (1, tokens, width)
_OUTER_RANKS = {"patch_embed.proj.weight": 4, "pos_embed": 3, "head.weight": 2}


def _architecture(state: dict[str, torch.Tensor], model_name: str, num_heads: int | None, name: str) -> ViTArchitecture:
    _require(state, ("patch_embed.proj.weight", "pos_embed", "head.weight"))
    for key, rank in _OUTER_RANKS.items():
        if state[key].ndim != rank:
            raise CheckpointError(
                f"{name}'s {key} has shape {tuple(state[key].shape)}, not the {rank}-D tensor of an official Aux-Net"
            )
    proj = state["patch_embed.proj.weight"]
    embed_dim, in_chans, patch_size, patch_width = proj.shape
    if patch_size != patch_width:
        raise CheckpointError(f"{name}'s patch projection is {tuple(proj.shape)}: sws imports square patches only")
    num_patches = state["pos_embed"].shape[1]
    side = round(num_patches**0.5)
    if side * side != num_patches:
        raise CheckpointError(
            f"pos_embed of {name} has {num_patches} tokens, not a square grid of patches (a class-token slot?); "
            "sws imports official Aux-Nets without a class token"
        )
    fc1 = next((v for k, v in state.items() if k.startswith("blocks.block.mlp.fc1.instances.0.weight")), None)
    if fc1 is None:
        raise CheckpointError("the official checkpoint lacks blocks.block.mlp.fc1.instances.0.weight; it is incomplete")
    if num_heads is None:
        num_heads = next((h for word, h in OFFICIAL_HEADS.items() if f"_{word}_" in f"_{model_name}_"), None)
        if num_heads is None:
            raise CheckpointError(
                f"cannot tell how many attention heads official model {model_name!r} used; pass --num-heads"
            )
    qkv_bias = any(k.startswith("blocks.block.attn.qkv.instances.0.bias") for k in state)
    return ViTArchitecture(
        embed_dim=int(embed_dim),
        num_heads=int(num_heads),
        mlp_ratio=fc1.shape[0] / embed_dim,
        patch_size=int(patch_size),
        img_size=int(side * patch_size),
        in_chans=int(in_chans),
        num_classes=int(state["head.weight"].shape[0]),
        qkv_bias=qkv_bias,
        norm_eps=OFFICIAL_NORM_EPS,
    )


def _training_record(checkpoint: dict[str, Any], args: Any) -> dict[str, Any]:
    """What the official ``args`` say about how the Aux-Net was trained."""
    record: dict[str, Any] = {"code": "official"}
    if "epoch" in checkpoint:
        record["epochs_completed"] = int(checkpoint["epoch"]) + 1
    record.update(training_record(args))
    return record
