"""Training checkpoints: written atomically, read without unpickling code, checked entry by entry.

A checkpoint is a ``torch.save`` dict of tensors and plain values only, so ``torch.load`` reads it
with ``weights_only=True``. ``training_checkpoint`` builds it; its entries (``ENTRIES`` says what
each may hold):

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

Reading checks the file before its contents: the zip archive's CRCs (``torch.load`` ignores them,
so a flipped byte inside a tensor would load), then each entry that the use of the checkpoint
reads (``USES``: rebuilding its model, extracting a learngene, evaluating, resuming). A wrong
entry is refused in one line naming the file, the entry, its value and what is allowed.
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

from sws.errors import CheckpointError, SWSError, first_line
from sws.fileio import atomic_path, sniff_format
from sws.models import create_model

LAST_NAME = "checkpoint.pth"
BEST_NAME = "best_checkpoint.pth"


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` atomically: a crash leaves the previous checkpoint intact."""
    # an open file, not the name: torch hands names to C++, which cannot encode a non-UTF-8 one
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        torch.save(state, handle)
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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_state_dict(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
    )


def _is_keyed(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) for k in value)


def _is_optimizer_state(value: Any) -> bool:
    state = value.get("state") if isinstance(value, dict) else None
    if not (isinstance(state, dict) and all(isinstance(s, dict) for s in state.values())):
        return False
    groups = value.get("param_groups")
    return isinstance(groups, list) and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)


def _is_epoch(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_rng(value: Any) -> bool:
    """One dict per process (or one dict: sws 0.1 checkpoints)."""
    return isinstance(value, dict) or (isinstance(value, list) and all(isinstance(s, dict) for s in value))


def _is_init(value: Any) -> bool:
    return _is_keyed(value) and (not value or isinstance(value.get("method"), str))


# the fields of an epoch record that a resumed run adds up in its summary
HISTORY_FIELDS = ("epoch", "train_images", "eval_top1", "epoch_seconds")


def _is_history(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(record, dict) and all(_is_number(record.get(k)) for k in HISTORY_FIELDS) for record in value
    )


def _is_data(value: Any) -> bool:
    return _is_keyed(value) and all(
        value.get(k) is None or (isinstance(value[k], (list, tuple)) and all(map(_is_number, value[k])))
        for k in ("mean", "std")
    )


def _or_none(fits: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or fits(value)


@dataclass(frozen=True)
class Entry:
    """What one checkpoint entry may hold: in words, and as a test."""

    allowed: str
    fits: Callable[[Any], bool]


ENTRIES: dict[str, Entry] = {
    "model": Entry("a state dict (tensor names to tensors, not empty)", _is_state_dict),
    "model_ema": Entry("None or a state dict of the EMA weights", _or_none(_is_state_dict)),
    "optimizer": Entry("an optimizer state dict (with 'state' and 'param_groups')", _is_optimizer_state),
    "lr_scheduler": Entry("a schedule's state dict (names to values)", _is_keyed),
    "scaler": Entry("None or a GradScaler state dict", _or_none(_is_keyed)),
    "epoch": Entry("the last completed epoch, an int of 0 or more", _is_epoch),
    "model_name": Entry("a model name (a non-empty string)", lambda value: isinstance(value, str) and bool(value)),
    "model_kwargs": Entry("a dict of the model's keyword arguments", _is_keyed),
    "args": Entry("a dict of the run's flags", _is_keyed),
    "rng": Entry("None, or a list of each process's random states (dicts)", _or_none(_is_rng)),
    "history": Entry(f"a list of epoch records (dicts with numbers for {', '.join(HISTORY_FIELDS)})", _is_history),
    "best_top1": Entry("None or a number", _or_none(_is_number)),
    "init": Entry("a dict saying how the model was initialized (with a 'method')", _is_init),
    "data": Entry("a dict describing the data (mean and std lists of numbers)", _is_data),
}

_MODEL = ("model", "model_name", "model_kwargs")
# What each use of a checkpoint reads: the entries it needs, then those it reads when they are there.
USES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "weights": (_MODEL, ("model_ema",)),
    "learngene": (_MODEL, ("model_ema", "epoch", "args", "best_top1", "data")),
    "evaluate": (_MODEL, ("init", "history", "best_top1")),
    "resume": (
        (*_MODEL, "optimizer", "lr_scheduler", "epoch", "history", "init"),
        ("model_ema", "scaler", "rng", "best_top1", "args", "data"),
    ),
}
_USE_WORDS = {
    "weights": "rebuilding its model",
    "learngene": "extracting a learngene",
    "evaluate": "--eval",
    "resume": "--resume",
}


def show(value: Any, limit: int = 60) -> str:
    """A value in a few words, for messages: its ``repr``, or a long container's kind and size."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    text = repr(value)
    if len(text) <= limit:
        return text
    if isinstance(value, (dict, list, tuple)):
        return f"a {type(value).__name__} of {len(value)} items"
    return text[: limit - 3] + "..."


def check_checkpoint(checkpoint: Any, where: str | os.PathLike[str], use: str) -> dict[str, Any]:
    """Refuse a checkpoint that lacks an entry ``use`` (a ``USES`` key) needs, or holds one of the
    wrong kind, naming ``where`` (its file), the entry, its value and what is allowed."""
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"{where} holds {show(checkpoint)}, not a checkpoint dict; give a checkpoint of sws train"
        )
    needed, optional = USES[use]
    for name in (*needed, *optional):
        if name not in checkpoint:
            if name in needed:
                raise CheckpointError(
                    f"{where} has no {name!r} entry ({ENTRIES[name].allowed}), which {_USE_WORDS[use]} needs; "
                    "give a checkpoint that sws train wrote"
                )
            continue
        if not ENTRIES[name].fits(checkpoint[name]):
            raise CheckpointError(
                f"{where}: entry {name!r} is {show(checkpoint[name])}, where {ENTRIES[name].allowed} is allowed; "
                "the file is damaged or was not written by sws train"
            )
    return checkpoint


def is_sws_checkpoint(checkpoint: Any) -> bool:
    """Whether a loaded checkpoint was written by ``sws train`` (it names its model)."""
    return isinstance(checkpoint, dict) and "model_name" in checkpoint


def _check_zip(handle: IO[bytes], path: Path) -> None:
    """Read the whole zip archive that ``torch.save`` wrote and compare every record's CRC, which
    ``torch.load`` does not: a changed byte inside a tensor would otherwise load unnoticed."""
    try:
        with zipfile.ZipFile(handle) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as error:
        raise CheckpointError(
            f"{path} is damaged: its zip archive does not read ({first_line(error)}); it may be truncated: "
            "copy it again, or use an earlier checkpoint"
        ) from None
    if damaged is not None:
        raise CheckpointError(
            f"{path} is corrupt: the CRC of its record {damaged} does not match its contents (the file changed "
            "after it was written); copy it again, or use an earlier checkpoint"
        )


def read_torch_file(path: str | os.PathLike[str]) -> Any:
    """``torch.load`` with ``weights_only=True``, admitting ``argparse.Namespace`` (the only object
    official checkpoints hold) and nothing else: no pickled code runs. A zip archive's CRCs are
    checked first."""
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
    # an open file, not the path: torch.load hands paths ending in .safetensors to safetensors, and
    # names to C++, which cannot encode a non-UTF-8 one
    with path.open("rb") as handle:
        if kind == "torch-zip":
            _check_zip(handle, path)
            handle.seek(0)
        try:
            with torch.serialization.safe_globals([argparse.Namespace]):
                return torch.load(handle, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            reason = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).splitlines()[0]
            raise CheckpointError(
                f"{path} holds pickled objects that weights-only loading refuses, so sws will not run them "
                f"({reason}); re-save its weights with torch.save(model.state_dict()) from the code that wrote it"
            ) from None
        except (RuntimeError, EOFError, OSError) as error:
            raise CheckpointError(
                f"cannot read {path} as a PyTorch checkpoint ({error}); it may be truncated"
            ) from None


def read_weights_file(path: str | os.PathLike[str]) -> Any:
    """A weights file of either kind, told apart by content rather than name: a safetensors file's
    tensors, or what a torch file holds (read weights-only)."""
    path = Path(path)
    if path.is_file() and sniff_format(path) == "safetensors":
        try:
            return dict(load_safetensors(path.read_bytes()))  # bytes read here: any file name works
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f"cannot read {path} ({error}); it may be truncated: copy it again") from None
    return read_torch_file(path)


def hub_weights_file(folder: Path) -> Path:
    """The weights of a timm hub folder (``model.safetensors``). A folder holding only a pickled
    ``pytorch_model.bin`` is refused: sws does not unpickle files."""
    weights = folder / "model.safetensors"
    if weights.is_file():
        return weights
    if (folder / "pytorch_model.bin").is_file():
        raise CheckpointError(
            f"{folder} holds a pickled pytorch_model.bin, which sws does not load (unpickling can run code); "
            "give a folder with model.safetensors (timm's save_for_hf(..., safe_serialization=True))"
        )
    raise CheckpointError(f"{folder} holds no model.safetensors; give a timm hub folder or a checkpoint file")


def load_checkpoint(path: str | os.PathLike[str], use: str = "weights") -> dict[str, Any]:
    """Read a checkpoint written by ``sws train`` (weights-only: no pickled code runs), checked for
    ``use`` (a ``USES`` key)."""
    checkpoint = read_torch_file(path)
    official = isinstance(checkpoint, dict) and isinstance(checkpoint.get("args"), argparse.Namespace)
    if official and "model_name" not in checkpoint:
        raise CheckpointError(f"{path} was written by the official SWS code; convert it with `sws import-official`")
    return check_checkpoint(checkpoint, path, use)


@dataclass(frozen=True)
class StateFit:
    """How a state dict lines up with a model's own: tensors of other shapes (name, saved shape,
    the model's), tensors it lacks, and tensors the model does not have."""

    wrong_shape: list[tuple[str, tuple[int, ...], tuple[int, ...]]]
    missing: list[str]
    unknown: list[str]

    @classmethod
    def of(cls, model: nn.Module, state: Mapping[str, Any]) -> StateFit:
        own = model.state_dict()
        return cls(
            [
                (k, tuple(v.shape), tuple(own[k].shape))
                for k, v in state.items()
                if k in own and v.shape != own[k].shape
            ],
            [k for k in own if k not in state],
            [k for k in state if k not in own],
        )

    def problem(self, unknown: bool = True) -> str | None:
        """The first misfit in words (tensors the model lacks count only when ``unknown``)."""
        if self.wrong_shape:
            key, saved, own = self.wrong_shape[0]
            return f"its {key} is {saved} where the model's is {own}"
        if self.missing:
            return f"it lacks {len(self.missing)} of the model's tensors (first: {self.missing[0]})"
        if self.unknown and unknown:
            return f"it holds {len(self.unknown)} tensors the model does not have (first: {self.unknown[0]})"
        return None


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], what: str, fix: str) -> None:
    """Load ``state`` into ``model`` strictly; a misfit is refused naming ``what`` (the file and
    entry) and ``fix`` (what to do)."""
    problem = StateFit.of(model, state).problem()
    if problem is not None:
        raise CheckpointError(f"{what} does not fit {type(model).__name__}: {problem}; {fix}")
    model.load_state_dict(state)


# what building a model from a file's garbage values raises (besides sws's own errors)
_REBUILD_ERRORS = (SWSError, TypeError, ValueError, RuntimeError, AssertionError, ZeroDivisionError)


def rebuild_model(checkpoint: dict[str, Any], where: str | os.PathLike[str]) -> nn.Module:
    """The model that a checked checkpoint names, with fresh weights."""
    name, kwargs = checkpoint["model_name"], checkpoint["model_kwargs"]
    try:
        return create_model(name, **kwargs)
    except _REBUILD_ERRORS as error:
        raise CheckpointError(
            f"{where}: entries 'model_name' ({show(name)}) and 'model_kwargs' ({show(kwargs)}) do not build a "
            f"model ({type(error).__name__}: {first_line(error)}); the file is damaged or was not written by sws train"
        ) from None


def model_from_checkpoint(
    checkpoint: dict[str, Any], use_ema: bool = False, where: str | os.PathLike[str] = "the checkpoint"
) -> nn.Module:
    """Rebuild the model that an ``sws train`` checkpoint holds and load its weights (or its EMA's)."""
    check_checkpoint(checkpoint, where, "weights")
    entry = "model_ema" if use_ema else "model"
    if checkpoint.get(entry) is None:
        raise CheckpointError(f"{where} has no EMA weights; train with --model-ema or drop --ema")
    model = rebuild_model(checkpoint, where)
    load_weights(model, checkpoint[entry], f"{where}: entry {entry!r}", "the file is damaged")
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
