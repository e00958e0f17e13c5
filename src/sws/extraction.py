"""Where learngenes come from: taking a trained Aux-Net apart, and reading one from any file.

``extract`` turns a trained Aux-Net (a model, or an ``sws train`` checkpoint of one) into its
learngene. ``load_learngene`` accepts every file a user may hold and returns a learngene: a
learngene file, an official SWS or TLEG Aux-Net checkpoint, or an ``sws train`` checkpoint of an
Aux-Net. Files are told apart by their first bytes (``sws.fileio.sniff_format``); pickled files
are read weights-only, so no pickled code runs.

This module sits above the file format (``sws.learngene``), the Aux-Nets, checkpoints and the
official importer, which know nothing of each other.

Example:
    >>> extract("runs/aux/checkpoint.pth").save("aux.learngene.safetensors")
    >>> load_learngene("official_aux_s.pth").layout
    StageLayout(layers_per_stage=(3, 3, 4, 3, 3))
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch.nn as nn

from sws.aux_net import AuxNet
from sws.checkpoint import (
    check_checkpoint,
    is_sws_checkpoint,
    load_checkpoint,
    model_from_checkpoint,
    read_torch_file,
)
from sws.errors import CheckpointError, IncompatibleModelError, LearngeneFileError
from sws.fileio import sniff_format
from sws.learngene import Learngene, SWSLearngene, training_record
from sws.official import import_official
from sws.tleg import TLEGAuxNet, TLEGLearngene


def extract(source: nn.Module | dict[str, Any] | str | os.PathLike[str], use_ema: bool = False) -> Learngene:
    """Take a trained Aux-Net (a model, or an ``sws train`` checkpoint of one: its path or its loaded
    dict) apart into its learngene.

    Example:
        >>> extract("runs/aux/checkpoint.pth").save("aux.learngene.safetensors")
    """
    if isinstance(source, nn.Module):
        return _learngene_of(source, {}, "sws extract")
    if isinstance(source, dict):
        return _extract_checkpoint(source, use_ema, "the checkpoint", "sws extract")
    checkpoint = load_checkpoint(source, "learngene")
    return _extract_checkpoint(checkpoint, use_ema, source, f"sws extract {Path(source).name}")


def _extract_checkpoint(
    checkpoint: dict[str, Any], use_ema: bool, where: str | os.PathLike[str], origin: str
) -> Learngene:
    """The learngene of an ``sws train`` checkpoint, checked entry by entry (``where`` names it)."""
    check_checkpoint(checkpoint, where, "learngene")
    model = model_from_checkpoint(checkpoint, use_ema=use_ema, where=where)
    return _learngene_of(model, checkpoint_training_record(checkpoint, use_ema), origin)


def _learngene_of(model: nn.Module, training: dict[str, Any], origin: str) -> Learngene:
    if isinstance(model, TLEGAuxNet):
        return TLEGLearngene.from_aux_net(model, training=training, source=origin)
    if isinstance(model, AuxNet):
        return SWSLearngene.from_aux_net(model, training=training, source=origin)
    raise IncompatibleModelError(
        f"the checkpoint holds a {type(model).__name__}, not an Aux-Net, so it has no learngene; "
        "extract from a run of `sws train --model aux_deit_small_patch16_224_L16_33433`"
    )


def checkpoint_training_record(checkpoint: dict[str, Any], use_ema: bool = False) -> dict[str, Any]:
    """How the Aux-Net in an ``sws train`` checkpoint was trained, as its learngene records it."""
    args = checkpoint.get("args") or {}
    training = training_record(args)
    training["epochs_completed"] = int(checkpoint.get("epoch", -1)) + 1
    if checkpoint.get("best_top1") is not None:
        training["best_top1"] = float(checkpoint["best_top1"])
    data = checkpoint.get("data") or {}
    for key in ("mean", "std"):  # the training data's normalization, for the Des-Nets' config.json
        if data.get(key) is not None:
            training[key] = [float(v) for v in data[key]]
    training["weights"] = "ema" if use_ema else "model"
    return training


def load_learngene(path: str | os.PathLike[str], **official_options: Any) -> Learngene:
    """A learngene from any file users hold: a learngene file, an official SWS or TLEG Aux-Net
    checkpoint (``official_options`` go to ``import_official``), or an ``sws train`` checkpoint of
    an Aux-Net. Pickled files are read weights-only.
    """
    path = Path(path)
    if not path.exists():
        raise LearngeneFileError(f"no learngene or checkpoint at {path}; check the path")
    if not path.is_file():
        raise LearngeneFileError(f"{path} is not a file; give a learngene (.safetensors) or a checkpoint (.pth)")
    kind = sniff_format(path)
    if kind == "safetensors":
        return Learngene.load(path)
    if kind == "unknown":
        raise LearngeneFileError(
            f"{path} is neither a learngene (safetensors) nor a PyTorch checkpoint; "
            "it may be truncated or another kind of file"
        )
    checkpoint = read_torch_file(path)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"{path} holds a {type(checkpoint).__name__}, not a checkpoint dict; give a learngene, an official "
            "SWS/TLEG checkpoint or an sws train checkpoint of an Aux-Net"
        )
    if is_sws_checkpoint(checkpoint):
        return _extract_checkpoint(checkpoint, bool(official_options.get("use_ema")), path, "sws extract")
    return import_official(checkpoint, name=path.name, **official_options)


__all__ = ["checkpoint_training_record", "extract", "load_learngene"]
