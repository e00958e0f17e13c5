"""Ways to initialize a Des-Net before training: one table, ``METHODS``, that ``sws train --init``,
``sws pipeline``, ``sws compare`` and their reports all read.

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
``sws-per-width``  as ``sws``, from a learngene distilled at the Des-Net's own width (the paper's way)
``scratch-kd``  random, and trained with distillation from the study's teacher
``pretrain-finetune``  a model of the Des-Net's own size pre-trained on the source data (``--finetune``):
              the route of pre-training every size, against which a learngene is measured
============  ==========================================================================================

Each entry of ``METHODS`` says what the method is called in reports, how it is drawn in plots,
which source it needs (a learngene, a TLEG learngene, a full ancestry ViT, a pre-trained model of
each size, or nothing), how many
parameters it stores to initialize every depth, and the function that applies it. Adding a method
is one ``InitMethod`` entry plus its function.

``--finetune CHECKPOINT`` instead starts from a whole model, as DeiT's flag does: a classifier of
another size (any, with ``--new-head``) is dropped, the position embedding is resampled to the
model's input size and the patch embedding fitted to its channels.

Every function returns a record of what it did, kept in the run's summary.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn as nn
from timm.models import VisionTransformer

from sws.architecture import ViTArchitecture, fit_patch_embed, fit_pos_embed
from sws.checkpoint import (
    ENTRIES,
    StateFit,
    check_checkpoint,
    hub_weights_file,
    is_sws_checkpoint,
    load_checkpoint,
    model_from_checkpoint,
    read_weights_file,
    show,
)
from sws.errors import CheckpointError, ConfigError, IncompatibleModelError, caller_stacklevel, first_line
from sws.expansion import initialize_from_learngene
from sws.extraction import load_learngene

DEFAULT_INHERIT_LAYERS = 3


@dataclass(frozen=True)
class InitOptions:
    """What an initialization may read: the ``sws train`` flags of the same names."""

    load_gene: str | os.PathLike[str] | None = None
    layers_source: str | None = None
    ancestry: str | os.PathLike[str] | None = None
    inherit_layers: int | None = None
    finetune: str | os.PathLike[str] | None = None
    new_head: bool = False  # a new classifier even when the class counts agree (other data's classes)

    @property
    def k(self) -> int:
        return DEFAULT_INHERIT_LAYERS if self.inherit_layers is None else self.inherit_layers


@dataclass(frozen=True)
class InitMethod:
    """One way to initialize a Des-Net.

    Attributes:
        name: What ``--init`` and ``--methods`` call it.
        label: Its name in reports and plot legends.
        style: Its matplotlib colour.
        source: The source it needs: ``"learngene"`` (``--load-gene``, an SWS learngene, grown or
            shrunk to other widths), ``"width_learngene"`` (an SWS learngene distilled at the
            Des-Net's own width: one Aux-Net per width, as the paper does), ``"tleg_learngene"``
            (``--load-gene``, a TLEG learngene), ``"ancestry"`` (``--ancestry``, a full pre-trained
            ViT), ``"pretrained"`` (``--finetune``, a model of the Des-Net's size pre-trained on the
            source data) or ``None``.
        stores: What it keeps to initialize every depth, in words.
        apply: Initializes a model in place from ``InitOptions``; returns a record.
        stored_params: Parameters it keeps, from the source's path and ``InitOptions``.
        distills: Whether its Des-Nets are trained with distillation from the study's teacher (with
            the Aux-Net's distillation settings), not only from the labels.
    """

    name: str
    label: str
    style: str
    source: str | None
    stores: str
    apply: Callable[[nn.Module, InitOptions], dict[str, Any]]
    stored_params: Callable[[Path | None, InitOptions], int]
    distills: bool = False

    @property
    def source_flag(self) -> str | None:
        """The ``sws train`` flag that passes the source."""
        flags = {"learngene": "load-gene", "width_learngene": "load-gene", "tleg_learngene": "load-gene"}
        return {**flags, "ancestry": "ancestry", "pretrained": "finetune"}.get(self.source or "")


def _apply_learngene(kind: str | None) -> Callable[[nn.Module, InitOptions], dict[str, Any]]:
    def apply(model: nn.Module, options: InitOptions) -> dict[str, Any]:
        if not options.load_gene:
            raise ConfigError(f"--init {kind} expands a learngene: give --load-gene FILE")
        gene = load_learngene(options.load_gene)
        if kind is not None and gene.kind != kind:
            raise ConfigError(
                f"--init {kind} but {options.load_gene} is a {gene.kind} learngene; use --init {gene.kind}"
            )
        expansion = initialize_from_learngene(model, gene, options.layers_source, new_head=options.new_head)
        return {"method": gene.kind, "learngene": str(options.load_gene), **expansion.to_dict()}

    return apply


def _apply_select(model: nn.Module, options: InitOptions) -> dict[str, Any]:
    return {
        "method": "select",
        "ancestry": str(options.ancestry),
        **select_layers(model, load_ancestry(options.ancestry), new_head=options.new_head),
    }


def _apply_inherit(model: nn.Module, options: InitOptions) -> dict[str, Any]:
    ancestry = load_ancestry(options.ancestry)
    inherited = inherit_last_layers(model, ancestry, options.k, new_head=options.new_head)
    return {"method": "inherit", "ancestry": str(options.ancestry), **inherited}


def _apply_pretrained(model: nn.Module, options: InitOptions) -> dict[str, Any]:
    if not options.finetune:
        raise ConfigError("--init pretrain-finetune starts from a pre-trained model of this size: give --finetune")
    return {**load_finetune_weights(model, options.finetune, options.new_head), "method": "pretrain-finetune"}


def _apply_scratch(model: nn.Module, options: InitOptions) -> dict[str, Any]:
    return {"method": "scratch"}


def _nothing_stored(path: Path | None, options: InitOptions) -> int:
    return 0


def _learngene_params(path: Path | None, options: InitOptions) -> int:
    return load_learngene(path).num_params


def _ancestry_params(path: Path | None, options: InitOptions) -> int:
    return sum(p.numel() for p in load_ancestry(path).parameters())


def _checkpoint_params(path: Path | None, options: InitOptions) -> int:
    return sum(p.numel() for p in model_from_checkpoint(load_checkpoint(path)).parameters())


def _inherited_params(path: Path | None, options: InitOptions) -> int:
    ancestry = load_ancestry(path)
    blocks = sum(p.numel() for block in ancestry.blocks[-options.k :] for p in block.parameters())
    return blocks + sum(p.numel() for p in ancestry.norm.parameters())


METHODS: dict[str, InitMethod] = {
    method.name: method
    for method in (
        InitMethod(
            name="sws",
            label="SWS (learngene)",
            style="C0",
            source="learngene",
            stores="the learngene",
            apply=_apply_learngene("sws"),
            stored_params=_learngene_params,
        ),
        InitMethod(
            name="sws-per-width",
            label="SWS, one Aux-Net per width",
            style="C9",
            source="width_learngene",
            stores="one learngene per width",
            apply=_apply_learngene("sws"),
            stored_params=_learngene_params,
        ),
        InitMethod(
            name="tleg",
            label="TLEG (linear expansion)",
            style="C2",
            source="tleg_learngene",
            stores="base and slope",
            apply=_apply_learngene("tleg"),
            stored_params=_learngene_params,
        ),
        InitMethod(
            name="select",
            label="layer selection",
            style="C4",
            source="ancestry",
            stores="the whole ancestry",
            apply=_apply_select,
            stored_params=_ancestry_params,
        ),
        InitMethod(
            name="inherit",
            label="last-layer inheritance",
            style="C5",
            source="ancestry",
            stores="the ancestry's last layers",
            apply=_apply_inherit,
            stored_params=_inherited_params,
        ),
        InitMethod(
            name="pretrain-finetune",
            label="pre-trained at every size",
            style="C7",
            source="pretrained",
            stores="one pre-trained model per size",
            apply=_apply_pretrained,
            stored_params=_checkpoint_params,
        ),
        InitMethod(
            name="scratch",
            label="from scratch",
            style="C3",
            source=None,
            stores="nothing (trains every size)",
            apply=_apply_scratch,
            stored_params=_nothing_stored,
        ),
        InitMethod(
            name="scratch-kd",
            label="from scratch, distilled from the teacher",
            style="C1",
            source=None,
            stores="nothing (trains every size, with the teacher)",
            apply=_apply_scratch,
            stored_params=_nothing_stored,
            distills=True,
        ),
    )
}


def check_methods(names: Iterable[str], where: str = "--methods") -> list[str]:
    """The method names, refused with the known ones unless all are in ``METHODS``."""
    names = list(names)
    unknown = [name for name in names if name not in METHODS]
    if unknown:
        raise ConfigError(f"{where} names unknown methods {unknown}; choose from {','.join(METHODS)}")
    if not names:
        raise ConfigError(f"{where} names no method; choose from {','.join(METHODS)}")
    return names


def initialize_model(
    model: nn.Module,
    method: str = "auto",
    options: InitOptions | None = None,
    finetune: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Initialize ``model`` in place by ``method`` (a ``METHODS`` name, or ``auto``: the learngene's own
    kind when ``options.load_gene`` is given, else scratch) or from a whole ``finetune`` checkpoint."""
    options = options or InitOptions()
    if method == "pretrain-finetune":
        return METHODS[method].apply(model, InitOptions(**{**vars(options), "finetune": finetune}))
    if finetune and (options.load_gene or method not in ("auto", "scratch")):
        raise ConfigError("--finetune starts from a whole model; do not combine it with --load-gene or --init")
    if finetune:
        return load_finetune_weights(model, finetune, options.new_head)
    if method == "auto":
        return _apply_learngene(None)(model, options) if options.load_gene else {"method": "scratch"}
    check_methods([method], "--init")
    return METHODS[method].apply(model, options)


def load_ancestry(path: str | os.PathLike[str] | None) -> VisionTransformer:
    """A full pre-trained ViT: an ``sws train`` checkpoint or a timm hub folder (``model.safetensors``)."""
    if not path:
        raise ConfigError("this initialization copies a pre-trained model: give --ancestry")
    path = Path(path)
    if path.is_dir():
        hub_weights_file(path)  # refuses a folder of pickled weights before timm would unpickle them
        try:
            model = timm.create_model(f"local-dir:{path}", pretrained=True)
        except (RuntimeError, ValueError, KeyError, TypeError, OSError) as error:
            raise CheckpointError(
                f"--ancestry {path} is not a timm hub folder that builds a model ({type(error).__name__}: "
                f"{first_line(error)}); give a folder with config.json and model.safetensors, or a checkpoint"
            ) from None
    else:
        model = model_from_checkpoint(load_checkpoint(path), where=path)
    if not isinstance(model, VisionTransformer):
        raise IncompatibleModelError(f"the ancestry {path} holds a {type(model).__name__}, not a ViT")
    return model


def _check_ancestry_fits(model: nn.Module, ancestry: VisionTransformer) -> None:
    ViTArchitecture.of(ancestry).check_fits(ViTArchitecture.of(model), "the Des-Net (from the ancestry)")


def select_layers(model: nn.Module, ancestry: VisionTransformer, new_head: bool = False) -> dict[str, Any]:
    """Evenly spaced ancestry layers, plus embeddings, final norm and (same classes, unless
    ``new_head``) head."""
    _check_ancestry_fits(model, ancestry)
    depth, ancestry_depth = len(model.blocks), len(ancestry.blocks)
    chosen = [i * ancestry_depth // depth for i in range(depth)]
    with torch.no_grad():
        for layer, source in enumerate(chosen):
            model.blocks[layer].load_state_dict(ancestry.blocks[source].state_dict())
        outer = _copy_outer(model, ancestry, embeddings=True, new_head=new_head)
    return {"layers": chosen, **outer}


def inherit_last_layers(
    model: nn.Module, ancestry: VisionTransformer, k: int, new_head: bool = False
) -> dict[str, Any]:
    """The ancestry's last ``k`` layers (and final norm) on top of randomly initialized ones."""
    _check_ancestry_fits(model, ancestry)
    depth, ancestry_depth = len(model.blocks), len(ancestry.blocks)
    if not 1 <= k <= min(depth, ancestry_depth):
        raise ConfigError(f"--inherit-layers {k} must be between 1 and {min(depth, ancestry_depth)}")
    pairs = list(zip(range(depth - k, depth), range(ancestry_depth - k, ancestry_depth), strict=True))
    with torch.no_grad():
        for layer, source in pairs:
            model.blocks[layer].load_state_dict(ancestry.blocks[source].state_dict())
        outer = _copy_outer(model, ancestry, embeddings=False, new_head=new_head)
    return {"layers": {str(layer): source for layer, source in pairs}, **outer}


def _copy_outer(model: nn.Module, ancestry: VisionTransformer, embeddings: bool, new_head: bool) -> dict[str, str]:
    model.norm.load_state_dict(ancestry.norm.state_dict())
    record = {"head": "new", "pos_embed": "new"}
    if embeddings:
        weight, channels = fit_patch_embed(ancestry.patch_embed.proj.weight, model.patch_embed.proj.in_channels)
        model.patch_embed.proj.weight.copy_(weight)
        model.patch_embed.proj.bias.copy_(ancestry.patch_embed.proj.bias)
        model.pos_embed.copy_(fit_pos_embed(ancestry.pos_embed, tuple(model.patch_embed.grid_size), _prefix(model))[0])
        record["pos_embed"] = "copied"
        if channels != "kept":
            record["channels"] = channels
    heads = (model.head, ancestry.head)
    same = all(isinstance(h, nn.Linear) for h in heads) and heads[0].weight.shape == heads[1].weight.shape
    if same and not new_head:
        model.head.load_state_dict(ancestry.head.state_dict())
        record["head"] = "copied"
    return record


def _prefix(model: nn.Module) -> int:
    """A ViT's class and register token slots before its patches in the position embedding."""
    return model.pos_embed.shape[1] - math.prod(model.patch_embed.grid_size)


def load_finetune_weights(model: nn.Module, path: str | os.PathLike[str], new_head: bool = False) -> dict[str, Any]:
    """DeiT's ``--finetune``: load a checkpoint's weights, dropping a classifier of another size (or any,
    with ``new_head``: other data's classes), resampling the position embedding and fitting the patch
    embedding to the images' channels. Reads sws checkpoints, DeiT ``{'model': ...}`` files, bare
    state dicts (weights-only), safetensors files and timm hub folders."""
    state = _read_weights(Path(path))
    own = model.state_dict()
    heads = [k for k in ("head.weight", "head.bias") if k in state and k in own]
    dropped = [k for k in heads if new_head or state[k].shape != own[k].shape]
    for key in dropped:
        del state[key]
    note = "copied"
    saved, wanted = state.get("pos_embed"), own.get("pos_embed")
    if saved is not None and wanted is not None and saved.shape != wanted.shape and _resamplable(saved, wanted):
        state["pos_embed"] = fit_pos_embed(saved, tuple(model.patch_embed.grid_size), _prefix(model))[0]
        note = "resampled"
    channels = _fit_channels(model, state)
    fit = StateFit.of(model, state)
    fit = dataclasses.replace(fit, missing=[k for k in fit.missing if not k.startswith("head.")])  # a new head
    problem = fit.problem(unknown=False)
    if problem is not None:
        raise IncompatibleModelError(
            f"--finetune {path} does not fit the model ({problem}); it holds another architecture or width: "
            "give the --model and --model-kwargs it was trained with"
        )
    model.load_state_dict(state, strict=False)
    if fit.unknown:
        warnings.warn(
            f"--finetune ignored {len(fit.unknown)} tensors the model does not have (first: {fit.unknown[0]})",
            stacklevel=caller_stacklevel(),
        )
    record = {"method": "finetune", "checkpoint": str(path), "head": "new" if dropped else "copied", "pos_embed": note}
    return {**record, "channels": channels} if channels != "kept" else record


def _fit_channels(model: nn.Module, state: dict[str, torch.Tensor]) -> str:
    """A patch projection trained on other channels, fitted to the model's where it can be."""
    saved = state.get("patch_embed.proj.weight")
    proj = getattr(getattr(model, "patch_embed", None), "proj", None)
    if saved is None or proj is None or saved.ndim != 4 or saved.shape[1] == proj.in_channels:
        return "kept"
    state["patch_embed.proj.weight"], note = fit_patch_embed(saved, proj.in_channels)
    return note


def _resamplable(saved: torch.Tensor, wanted: torch.Tensor) -> bool:
    """A position embedding for another grid at the same width (one of another width is a misfit)."""
    return saved.ndim == 3 and saved.shape[0] == 1 and saved.shape[2] == wanted.shape[2]


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if path.is_dir():
        path = hub_weights_file(path)
    loaded = read_weights_file(path)
    if is_sws_checkpoint(loaded):
        check_checkpoint(loaded, path, "weights")
    state = loaded.get("model", loaded) if isinstance(loaded, dict) else loaded
    if not ENTRIES["model"].fits(state):
        raise CheckpointError(
            f"{path} holds {show(state)}, not a state dict of weights; give a checkpoint of weights (sws train's, "
            "a DeiT-style {'model': ...} file, a state dict, safetensors or a timm folder)"
        )
    return dict(state)
