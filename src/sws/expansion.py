"""Expansion: growing Des-Nets of any depth from a learngene.

``expand(gene, depth=12)`` builds a plain timm ViT of 12 layers and initializes it: descendant layer
``i`` copies learngene layer ``mapping[i]`` (the stage layout's expansion guidance unless a mapping
is given), the embeddings and final norm are copied, the classifier is copied when the class counts
agree and left freshly initialized otherwise, and the position embedding is resampled (timm's
bicubic resampling) when the Des-Net sees another image size. At another width
(``expand(gene, depth=12, embed_dim=768)``, or any model of another width given to
``initialize_from_learngene``) the learngene is first grown or shrunk by ``sws.width``.

``save_des_net`` writes the result in timm's own hub format (``config.json`` + ``model.safetensors``)
so that ``timm.create_model('local-dir:DIR', pretrained=True)`` loads it without sws, and the folder
can be pushed to the Hugging Face Hub as it is.

Example:
    >>> des = expand(Learngene.load("small.learngene.safetensors"), depth=12, num_classes=100)
    >>> save_des_net(des, "des_s_l12")
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from timm.models import VisionTransformer
from timm.models._hub import save_config_for_hf

from sws.architecture import TIMM_NORM_EPS, ViTArchitecture, fit_patch_embed, fit_pos_embed
from sws.des_net import create_des_net, des_net_kwargs, timm_base_name
from sws.errors import IncompatibleModelError, caller_stacklevel
from sws.fileio import check_output_dir, write_files_atomic
from sws.learngene import Learngene, TensorDict, warn_head_count_change, write_safetensors
from sws.width import change_width, new_architecture, width_change_note


@dataclass(frozen=True)
class Expansion:
    """What ``initialize_from_learngene`` did, for logs and provenance."""

    depth: int
    mapping: tuple[int, ...] | None
    head: str  # "copied" or "new"
    pos_embed: str  # "copied" or "resampled HxW -> HxW"
    width: str = "kept"  # or how the learngene's width was changed (``sws.width``)
    channels: str = "kept"  # or how the patch embedding was fitted to the images' channels

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["mapping"] = list(self.mapping) if self.mapping is not None else None
        if self.channels == "kept":  # the record of every same-channel expansion stays as it was
            del values["channels"]
        return values


def expand(
    learngene: Learngene,
    depth: int,
    mapping: Sequence[int] | str | None = None,
    *,
    num_classes: int | None = None,
    img_size: int | None = None,
    in_chans: int | None = None,
    num_heads: int | None = None,
    embed_dim: int | None = None,
    width_seed: int = 0,
    new_head: bool = False,
    drop_path_rate: float = 0.0,
    **kwargs: Any,
) -> VisionTransformer:
    """Build a Des-Net of ``depth`` layers initialized from ``learngene``.

    ``new_head`` leaves the classifier freshly initialized even when the class counts agree (data
    whose classes are not the learngene's). ``num_classes``, ``img_size``, ``in_chans`` and
    ``embed_dim`` default to the learngene's (other
    channels get the patch embedding fitted: ``sws.architecture.fit_patch_embed``). Another
    ``embed_dim`` grows or shrinks the learngene first (``sws.width``: wider by replication,
    function-preserving at integer multiples; narrower by selection), keeping the head dimension
    unless ``num_heads`` is given. At the learngene's width, another ``num_heads`` is allowed with a
    warning that it changes the function.

    Example:
        >>> expand(gene, depth=12, embed_dim=768)   # a DeiT-Base-wide Des-Net from a DeiT-Small learngene
    """
    target = learngene.architecture
    if embed_dim is not None and embed_dim != target.embed_dim:
        target = new_architecture(target, embed_dim, num_heads)
    elif num_heads is not None:
        target = target.replace(num_heads=num_heads)
    asked = (("num_classes", num_classes), ("img_size", img_size), ("in_chans", in_chans))
    changes = {k: v for k, v in asked if v is not None}
    model = create_des_net(depth, target.replace(**changes), drop_path_rate=drop_path_rate, **kwargs)
    expansion = initialize_from_learngene(model, learngene, mapping, width_seed=width_seed, new_head=new_head)
    model.sws_expansion = expansion  # provenance, saved by save_des_net
    return model


def initialize_from_learngene(
    model: nn.Module,
    learngene: Learngene,
    mapping: Sequence[int] | str | None = None,
    *,
    width_seed: int = 0,
    new_head: bool = False,
) -> Expansion:
    """Initialize an SWS-shaped ViT (a Des-Net, built by any name) from ``learngene`` in place; a
    model of another width gets the learngene changed to its width and head count first, images of
    other channels a fitted patch embedding. The classifier is copied when the class counts agree,
    unless ``new_head`` (a target whose classes are not the learngene's)."""
    _check_sws_shaped(model)
    target = ViTArchitecture.of(model)
    width_note = "kept"
    if target.embed_dim != learngene.architecture.embed_dim:
        before = learngene.architecture
        learngene = change_width(learngene, target.embed_dim, target.num_heads, seed=width_seed)
        width_note = width_change_note(before, learngene.architecture, width_seed)
    learngene.architecture.check_fits(target, f"this {len(model.blocks)}-layer model")
    warn_head_count_change(learngene.architecture.num_heads, target.num_heads)
    depth = len(model.blocks)
    layers = learngene.descendant_layers(depth, mapping)
    _check_shared_layers(model, layers)
    used_mapping = _resolved_mapping(learngene, depth, mapping)
    if mapping is None:
        _warn_dropped_stages(learngene, depth, used_mapping)
    outer = learngene.outer_tensors()
    patch_weight, channels_note = fit_patch_embed(outer["patch_embed.proj.weight"], target.in_chans)
    pos_embed, pos_embed_note = fit_pos_embed(outer["pos_embed"], tuple(model.patch_embed.grid_size))
    head_copied = not new_head and "head.weight" in outer and target.num_classes == learngene.architecture.num_classes
    with torch.no_grad():
        model.patch_embed.proj.weight.copy_(patch_weight)
        model.patch_embed.proj.bias.copy_(outer["patch_embed.proj.bias"])
        model.pos_embed.copy_(pos_embed)
        model.norm.weight.copy_(outer["norm.weight"])
        model.norm.bias.copy_(outer["norm.bias"])
        if head_copied:
            model.head.weight.copy_(outer["head.weight"])
            model.head.bias.copy_(outer["head.bias"])
        for block, tensors in zip(model.blocks, layers, strict=True):
            block.load_state_dict(tensors)
    head = "copied" if head_copied else "new"
    return Expansion(depth, used_mapping, head, pos_embed_note, width_note, channels_note)


def _check_shared_layers(model: nn.Module, layers: Sequence[TensorDict]) -> None:
    """Layers that share one block (an Aux-Net) can take one set of tensors only: refuse a mapping
    that gives them different ones, which would leave the last one's in the shared block."""
    positions: dict[int, list[int]] = {}
    for position, block in enumerate(model.blocks):
        positions.setdefault(id(block.attn), []).append(position)
    for group in positions.values():
        first = layers[group[0]]
        for other in group[1:]:
            if any(not torch.equal(first[name], layers[other][name]) for name in first):
                raise IncompatibleModelError(
                    f"layers {group[0]} and {other} of this model share one block (an Aux-Net), but the learngene "
                    "gives them different tensors; rebuild an Aux-Net with gene.to_aux_net(), or expand a plain "
                    "Des-Net with sws.expand"
                )


def _resolved_mapping(learngene: Learngene, depth: int, mapping: Sequence[int] | str | None) -> tuple[int, ...] | None:
    if mapping is None:
        return learngene.default_mapping(depth)
    layout = getattr(learngene, "layout", None)
    return layout.validate_mapping(mapping, depth) if layout is not None else None


def _warn_dropped_stages(learngene: Learngene, depth: int, used_mapping: tuple[int, ...] | None) -> None:
    """A Des-Net shallower than the layout's stage count cannot copy every stage; the default
    mapping drops the last ones. Say so: such a Des-Net starts far below the deeper ones (on
    Fashion-MNIST, 71% at depth 4 of ``3,3,4,3,3`` against 83% at depth 6)."""
    layout = getattr(learngene, "layout", None)
    if layout is None or used_mapping is None:
        return
    dropped = sorted(set(range(layout.num_stages)) - set(used_mapping))
    if not dropped:
        return
    warnings.warn(
        f"a {depth}-layer Des-Net is shallower than the {layout.num_stages} stages of layout {layout}: "
        f"it copies stages {','.join(map(str, used_mapping))} and drops stage(s) {','.join(map(str, dropped))}; "
        f"every stage is kept from depth {layout.num_stages} (or pass a mapping to choose which to keep)",
        stacklevel=caller_stacklevel(),
    )


def is_sws_shaped(model: nn.Module) -> bool:
    """Whether ``model`` is a ViT with no class token, a per-token final norm and average pooling."""
    return not _sws_shape_problems(model)


def _check_sws_shaped(model: nn.Module) -> None:
    """A Des-Net must have no class token, a per-token final norm and average pooling."""
    problems = _sws_shape_problems(model)
    if problems:
        raise IncompatibleModelError(
            "a learngene initializes only SWS-shaped ViTs, but "
            + "; ".join(problems)
            + ": use a Des-Net name such as deit_small_patch16_224_L12, or `sws expand`"
        )


def _sws_shape_problems(model: nn.Module) -> list[str]:
    problems = []
    if not isinstance(model, VisionTransformer):
        problems.append(f"it is a {type(model).__name__}, not a timm VisionTransformer")
    else:
        if model.cls_token is not None or model.reg_token is not None:
            problems.append("it has a class or register token")
        if model.global_pool != "avg":
            problems.append(f"it pools by {model.global_pool!r}, not 'avg'")
        if not isinstance(model.fc_norm, nn.Identity) or isinstance(model.norm, nn.Identity):
            problems.append("its final norm comes after pooling")
    return problems


DES_NET_FILES = ("model.safetensors", "config.json")


def save_des_net(
    model: VisionTransformer,
    out_dir: str | os.PathLike[str],
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    crop_pct: float | None = None,
    interpolation: str | None = None,
    provenance: dict[str, Any] | None = None,
    overwrite: bool = False,
    protect: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Save a Des-Net as a timm hub folder (``config.json`` + ``model.safetensors``), each file
    written atomically.

    ``mean``/``std``/``crop_pct`` record the preprocessing it was trained with (one mean and std per
    input channel); ``provenance`` (and the expansion that made the model, if any) is stored under
    ``config.json``'s ``sws`` key, which timm ignores. A folder that holds files, or a file at
    ``out_dir``, is refused unless ``overwrite``, and then only the two files above are replaced;
    ``protect`` lists inputs that must not be overwritten.
    """
    _check_sws_shaped(model)
    architecture = ViTArchitecture.of(model)
    if architecture.norm_eps != TIMM_NORM_EPS or getattr(model, "layout", None) is not None:
        raise IncompatibleModelError(
            "only a plain Des-Net saves in timm's hub format; expand the learngene first (`sws expand`)"
        )
    data_config: dict[str, Any] = {"input_size": (architecture.in_chans, architecture.img_size, architecture.img_size)}
    for key, value in (("mean", mean), ("std", std)):
        if value is not None and len(value) != architecture.in_chans:
            raise IncompatibleModelError(
                f"--{key} has {len(value)} values but the Des-Net takes {architecture.in_chans}-channel images; "
                f"give one {key} per channel"
            )
    for key, value in (("mean", mean), ("std", std), ("crop_pct", crop_pct), ("interpolation", interpolation)):
        if value is not None:
            data_config[key] = tuple(value) if isinstance(value, (list, tuple)) else value
    sws_info = dict(provenance or {})
    expansion = getattr(model, "sws_expansion", None)
    if expansion is not None:
        sws_info.setdefault("expansion", expansion.to_dict())
    model_config: dict[str, Any] = {"architecture": timm_base_name(architecture)}
    if sws_info:
        model_config["sws"] = sws_info
    model_args = des_net_kwargs(architecture, len(model.blocks))
    check_output_dir(out_dir, overwrite=overwrite, protect=protect, names=DES_NET_FILES)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    return write_files_atomic(
        out_dir,
        {
            "model.safetensors": lambda tmp: write_safetensors(tmp, state, {"format": "pt"}),
            "config.json": lambda tmp: save_config_for_hf(
                model, str(tmp), model_config=model_config, model_args=model_args, data_config=data_config
            ),
        },
    )
