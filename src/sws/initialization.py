"""Ways to initialize a Des-Net before training, all selectable by ``--init``:

============  ==========================================================================================
``scratch``   timm's random initialization
``sws``       expand an SWS learngene (``--load-gene``): layer ``i`` copies learngene layer ``mapping[i]``
``tleg``      expand a TLEG learngene: layer ``l`` of ``L`` gets ``base + (l / L) * slope``
``select``    evenly spaced layers of a full pre-trained ViT (``--ancestry``): layer ``i`` of ``L``
              copies ancestry layer ``floor(i * D / L)`` of ``D``, with its embeddings, norm and head
              (the depth part of Weight Selection, Xu et al., ICLR 2024)
``inherit``   the ancestry's last ``k`` layers become the Des-Net's last ``k`` (with the final norm);
              the rest stays random (the heuristic learngene of Wang et al., 2022; ``k`` is
              ``--inherit-layers``, default 3)
============  ==========================================================================================

``--finetune CHECKPOINT`` instead starts from a whole model, as DeiT's flag does: a classifier of
another size is dropped and the position embedding is resampled to the model's input size.

Every function returns a record of what it did, kept in the run's summary.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from timm.layers import resample_abs_pos_embed
from timm.models import VisionTransformer

from sws.architecture import ViTArchitecture
from sws.errors import CheckpointError, ConfigError, IncompatibleModelError
from sws.expansion import initialize_from_learngene

DEFAULT_INHERIT_LAYERS = 3


def initialize_model(
    model: nn.Module,
    method: str = "auto",
    load_gene: str | os.PathLike[str] | None = None,
    layers_source: str | None = None,
    ancestry: str | os.PathLike[str] | None = None,
    inherit_layers: int | None = None,
    finetune: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Initialize ``model`` in place by ``method`` (see the module docstring)."""
    if finetune and (load_gene or method not in ("auto", "scratch")):
        raise ConfigError("--finetune starts from a whole model; do not combine it with --load-gene or --init")
    if finetune:
        return load_finetune_weights(model, finetune)
    if method == "auto":
        method = "learngene" if load_gene else "scratch"
    if method in ("sws", "tleg", "learngene"):
        from sws.learngene import load_learngene

        gene = load_learngene(load_gene)
        if method != "learngene" and gene.kind != method:
            raise ConfigError(f"--init {method} but {load_gene} is a {gene.kind} learngene; use --init {gene.kind}")
        expansion = initialize_from_learngene(model, gene, layers_source)
        return {"method": gene.kind, "learngene": str(load_gene), **expansion.to_dict()}
    if method in ("select", "inherit"):
        source = load_ancestry(ancestry)
        if method == "select":
            return {"method": "select", "ancestry": str(ancestry), **select_layers(model, source)}
        k = DEFAULT_INHERIT_LAYERS if inherit_layers is None else inherit_layers
        return {"method": "inherit", "ancestry": str(ancestry), **inherit_last_layers(model, source, k)}
    if method == "scratch":
        return {"method": "scratch"}
    raise ConfigError(f"unknown initialization {method!r}")


def load_ancestry(path: str | os.PathLike[str] | None) -> VisionTransformer:
    """A full pre-trained ViT: an ``sws train`` checkpoint or a timm hub folder."""
    if not path:
        raise ConfigError("this initialization copies a pre-trained model: give --ancestry")
    path = Path(path)
    if path.is_dir():
        import timm

        return timm.create_model(f"local-dir:{path}", pretrained=True)
    from sws.checkpoint import load_checkpoint, model_from_checkpoint

    model = model_from_checkpoint(load_checkpoint(path))
    if not isinstance(model, VisionTransformer):
        raise IncompatibleModelError(f"the ancestry {path} holds a {type(model).__name__}, not a ViT")
    return model


def _check_ancestry_fits(model: nn.Module, ancestry: VisionTransformer) -> None:
    ViTArchitecture.of(ancestry).check_fits(ViTArchitecture.of(model), "the Des-Net (from the ancestry)")


def select_layers(model: nn.Module, ancestry: VisionTransformer) -> dict[str, Any]:
    """Evenly spaced ancestry layers, plus embeddings, final norm and (same classes) head."""
    _check_ancestry_fits(model, ancestry)
    depth, ancestry_depth = len(model.blocks), len(ancestry.blocks)
    chosen = [i * ancestry_depth // depth for i in range(depth)]
    with torch.no_grad():
        for layer, source in enumerate(chosen):
            model.blocks[layer].load_state_dict(ancestry.blocks[source].state_dict())
        outer = _copy_outer(model, ancestry, embeddings=True)
    return {"layers": chosen, **outer}


def inherit_last_layers(model: nn.Module, ancestry: VisionTransformer, k: int) -> dict[str, Any]:
    """The ancestry's last ``k`` layers (and final norm) on top of randomly initialized ones."""
    _check_ancestry_fits(model, ancestry)
    depth, ancestry_depth = len(model.blocks), len(ancestry.blocks)
    if not 1 <= k <= min(depth, ancestry_depth):
        raise ConfigError(f"--inherit-layers {k} must be between 1 and {min(depth, ancestry_depth)}")
    pairs = list(zip(range(depth - k, depth), range(ancestry_depth - k, ancestry_depth), strict=True))
    with torch.no_grad():
        for layer, source in pairs:
            model.blocks[layer].load_state_dict(ancestry.blocks[source].state_dict())
        outer = _copy_outer(model, ancestry, embeddings=False)
    return {"layers": {str(layer): source for layer, source in pairs}, **outer}


def _copy_outer(model: nn.Module, ancestry: VisionTransformer, embeddings: bool) -> dict[str, str]:
    model.norm.load_state_dict(ancestry.norm.state_dict())
    record = {"head": "new", "pos_embed": "new"}
    if embeddings:
        model.patch_embed.load_state_dict(ancestry.patch_embed.state_dict())
        model.pos_embed.copy_(_fit_pos_embed(ancestry.pos_embed, model))
        record["pos_embed"] = "copied"
    heads = (model.head, ancestry.head)
    if all(isinstance(h, nn.Linear) for h in heads) and heads[0].weight.shape == heads[1].weight.shape:
        model.head.load_state_dict(ancestry.head.state_dict())
        record["head"] = "copied"
    return record


def _fit_pos_embed(pos_embed: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """A position embedding resampled to ``model``'s patch grid, dropping prefix-token slots that the
    model does not have (DeiT's fine-tuning rule)."""
    target_tokens = model.pos_embed.shape[1]
    grid = tuple(model.patch_embed.grid_size)
    model_prefix = target_tokens - grid[0] * grid[1]
    source_tokens = pos_embed.shape[1]
    side = int((source_tokens - model_prefix) ** 0.5)
    source_prefix = source_tokens - side * side
    if source_prefix > model_prefix:
        pos_embed = pos_embed[:, source_prefix - model_prefix :]
        source_prefix = model_prefix
    if pos_embed.shape == model.pos_embed.shape:
        return pos_embed
    return resample_abs_pos_embed(pos_embed, new_size=list(grid), num_prefix_tokens=source_prefix)


def load_finetune_weights(model: nn.Module, path: str | os.PathLike[str]) -> dict[str, Any]:
    """DeiT's ``--finetune``: load a checkpoint's weights, dropping a classifier of another size and
    resampling the position embedding. Reads sws checkpoints, DeiT ``{'model': ...}`` files, bare
    state dicts (weights-only), safetensors files and timm hub folders."""
    state = _read_weights(Path(path))
    own = model.state_dict()
    dropped = [k for k in ("head.weight", "head.bias") if k in state and k in own and state[k].shape != own[k].shape]
    for key in dropped:
        del state[key]
    note = "copied"
    if "pos_embed" in state and "pos_embed" in own and state["pos_embed"].shape != own["pos_embed"].shape:
        state["pos_embed"] = _fit_pos_embed(state["pos_embed"], model)
        note = "resampled"
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("head.")]
    if missing:
        raise IncompatibleModelError(
            f"--finetune {path} lacks {len(missing)} tensors of the model (first: {missing[0]}); "
            "it holds another architecture"
        )
    if result.unexpected_keys:
        warnings.warn(
            f"--finetune ignored {len(result.unexpected_keys)} tensors the model does not have "
            f"(first: {result.unexpected_keys[0]})",
            stacklevel=2,
        )
    return {"method": "finetune", "checkpoint": str(path), "head": "new" if dropped else "copied", "pos_embed": note}


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    from sws.checkpoint import read_torch_file

    if path.is_dir():
        path = path / "model.safetensors"
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise CheckpointError(f"no weights at {path}")
        return dict(load_file(str(path)))
    loaded = read_torch_file(path)
    state = loaded.get("model", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no state dict")
    return dict(state)
