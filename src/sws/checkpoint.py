"""Training checkpoints: written atomically, read without unpickling code.

A checkpoint is a ``torch.save`` dict of tensors and plain values only, so ``torch.load`` reads it
with ``weights_only=True``. ``training_checkpoint`` builds it; its entries:

==================================  ===========================================================
``model``, ``model_ema``            state dicts (``model_ema`` is ``None`` without EMA)
``optimizer``, ``lr_scheduler``,    their state dicts (``scaler`` is ``None`` unless fp16)
``scaler``
``epoch``                           the last completed epoch (0-based)
``model_name``, ``model_kwargs``    how to rebuild the model (``sws.models.create_model``)
``args``                            the run's settings, as a plain dict
``rng``                             every process's Python, NumPy and torch (CPU and CUDA) random
                                    states at the end of ``epoch``, one entry per rank
``history``                         every completed epoch's log record
``best_top1``                       the best evaluation top-1 so far
``init``                            how the model was initialized (``sws.initialization``)
``data``                            the training data: name, classes, channels, mean and std
==================================  ===========================================================
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file

from sws.errors import CheckpointError
from sws.fileio import atomic_path, sniff_format
from sws.models import create_model

LAST_NAME = "checkpoint.pth"
BEST_NAME = "best_checkpoint.pth"


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` atomically: a crash leaves the previous checkpoint intact."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def training_checkpoint(
    *,
    model: nn.Module,
    ema: nn.Module | None,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    epoch: int,
    model_name: str,
    model_kwargs: dict[str, Any],
    args: dict[str, Any],
    rng: list[dict[str, Any]],
    history: list[dict[str, Any]],
    best_top1: float | None,
    init: dict[str, Any],
    data: dict[str, Any],
) -> dict[str, Any]:
    """The checkpoint of a training run after ``epoch`` (the entries of the module docstring)."""
    return {
        "model": model.state_dict(),
        "model_ema": ema.state_dict() if ema is not None else None,
        "optimizer": optimizer.state_dict(),
        "lr_scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else None,
        "epoch": epoch,
        "model_name": model_name,
        "model_kwargs": model_kwargs,
        "args": args,
        "rng": rng,
        "history": history,
        "best_top1": best_top1,
        "init": init,
        "data": data,
    }


def is_sws_checkpoint(checkpoint: Any) -> bool:
    """Whether a loaded checkpoint was written by ``sws train`` (it names its model)."""
    return isinstance(checkpoint, dict) and "model_name" in checkpoint and "model" in checkpoint


def read_torch_file(path: str | os.PathLike[str]) -> Any:
    """``torch.load`` with ``weights_only=True``, admitting ``argparse.Namespace`` (the only object
    official checkpoints hold) and nothing else: no pickled code runs."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}; check the path")
    if not path.is_file():
        raise CheckpointError(f"{path} is not a file; give the path of a checkpoint (.pth)")
    kind = sniff_format(path)
    if kind == "safetensors":
        raise CheckpointError(
            f"{path} is a safetensors file, not a PyTorch checkpoint; "
            "a learngene goes to --load-gene / `sws expand`, weights to --finetune or --teacher-path"
        )
    if kind == "unknown":
        raise CheckpointError(
            f"{path} is not a PyTorch checkpoint (torch.save writes a zip archive or a pickle); "
            "it may be truncated or another kind of file"
        )
    try:
        # an open file, not the path: torch.load hands paths ending in .safetensors to safetensors
        with torch.serialization.safe_globals([argparse.Namespace]), path.open("rb") as handle:
            return torch.load(handle, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).splitlines()[0]
        raise CheckpointError(
            f"{path} holds pickled objects that weights-only loading refuses, so sws will not run them "
            f"({reason}); re-save its weights with torch.save(model.state_dict()) from the code that wrote it"
        ) from None
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(f"cannot read {path} as a PyTorch checkpoint ({error}); it may be truncated") from None


def read_weights_file(path: str | os.PathLike[str]) -> Any:
    """A weights file of either kind, told apart by content rather than name: a safetensors file's
    tensors, or what a torch file holds (read weights-only)."""
    path = Path(path)
    if path.is_file() and sniff_format(path) == "safetensors":
        try:
            return dict(load_file(str(path)))
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f"cannot read {path} ({error}); it may be truncated: copy it again") from None
    return read_torch_file(path)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by ``sws train`` (weights-only: no pickled code runs)."""
    checkpoint = read_torch_file(path)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise CheckpointError(f"{path} is not a checkpoint with a 'model' entry")
    if "model_name" not in checkpoint and isinstance(checkpoint.get("args"), argparse.Namespace):
        raise CheckpointError(f"{path} was written by the official SWS code; convert it with `sws import-official`")
    return checkpoint


def state_dict_of(checkpoint: dict[str, Any], use_ema: bool = False) -> dict[str, torch.Tensor]:
    """The model (or EMA) weights of a checkpoint; a bare state dict is accepted too."""
    key = "model_ema" if use_ema else "model"
    if use_ema and not checkpoint.get(key):
        raise CheckpointError("the checkpoint has no EMA weights; train with --model-ema or drop --ema")
    return checkpoint[key]


def model_from_checkpoint(checkpoint: dict[str, Any], use_ema: bool = False) -> nn.Module:
    """Rebuild the model that an ``sws train`` checkpoint holds and load its weights."""
    if "model_name" not in checkpoint:
        raise CheckpointError(
            "the checkpoint does not say which model it holds (no 'model_name'); it was not written by sws train"
        )
    model = create_model(checkpoint["model_name"], **dict(checkpoint.get("model_kwargs") or {}))
    model.load_state_dict(state_dict_of(checkpoint, use_ema))
    return model


def capture_rng_state() -> dict[str, Any]:
    """Random states as tensors and plain values (weights-only loadable)."""
    numpy_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "pos": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()  # this process's GPU only: resume may see fewer GPUs
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    python_state = state["python"]
    random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        if isinstance(cuda, (list, tuple)):  # sws 0.1 saved every GPU's state: take this process's
            cuda = cuda[torch.cuda.current_device()] if torch.cuda.current_device() < len(cuda) else None
        if cuda is not None:
            torch.cuda.set_rng_state(cuda)
