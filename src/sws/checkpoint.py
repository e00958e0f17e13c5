"""Training checkpoints: written atomically, read without unpickling code.

A checkpoint is a ``torch.save`` dict of tensors and plain values only, so ``torch.load`` reads it
with ``weights_only=True``:

``model``, ``model_ema``      state dicts
``optimizer``, ``lr_scheduler``, ``scaler``   their state dicts
``epoch``                     the last completed epoch (0-based)
``model_name``, ``model_kwargs``  how to rebuild the model (``sws.models.create_model``)
``args``                      the run's settings, as a plain dict
``rng``                       Python, NumPy and torch random states at the end of ``epoch``
``history``                   every completed epoch's log record
``best_top1``                 the best evaluation top-1 so far
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

from sws.errors import CheckpointError
from sws.fileio import atomic_path

LAST_NAME = "checkpoint.pth"
BEST_NAME = "best_checkpoint.pth"


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` atomically: a crash leaves the previous checkpoint intact."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def read_torch_file(path: str | os.PathLike[str]) -> Any:
    """``torch.load`` with ``weights_only=True``, admitting ``argparse.Namespace`` (the only object
    official checkpoints hold) and nothing else: no pickled code runs."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; check the path")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).splitlines()[0]
        raise CheckpointError(
            f"{path} holds pickled objects that weights-only loading refuses, so sws will not run them "
            f"({reason}); re-save its weights with torch.save(model.state_dict()) from the code that wrote it"
        ) from None
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(f"cannot read {path} as a PyTorch checkpoint ({error}); it may be truncated") from None


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
    from sws.models import create_model

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
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    python_state = state["python"]
    random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
