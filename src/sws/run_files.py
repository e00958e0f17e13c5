"""A run's folder: what ``sws train`` writes into it, what it finds there, and resume.

A run's folder holds ``args.yaml`` (its flags), ``log.jsonl`` (one record per epoch),
``checkpoint.pth`` (every epoch, atomically) and ``best_checkpoint.pth``; at the end an Aux-Net
run adds ``learngene.safetensors``, a Des-Net run ``model/`` (timm hub format), and every run
``summary.json``, written last: it means "done".

A folder that already holds a run (``args.yaml`` and a checkpoint or a summary) is never
overwritten by accident. ``check_run_folder`` decides:

==========================  =================================================================
finished, same flags        nothing to do: says so, and ``train`` returns what the folder holds
finished, other flags       refused, naming each flag then and now (``--overwrite`` replaces it)
interrupted, no --resume    refused: ``--resume auto`` continues it, ``--overwrite`` restarts it
interrupted, other flags    refused, naming them: a resumed run keeps one recipe
==========================  =================================================================

"Same flags" is ``changed_settings``: flags that change how a run goes but not what it learns
(``HOW_NOT_WHAT``) never count, nor does a path that kept its file name (``PATH_FLAGS``) when a
folder was moved. ``sws.study`` asks it the same question of every step of a study.

Example:
    >>> changed_settings({"seed": 0, "device": "cpu"}, {"seed": 5, "device": "cuda"})
    {'seed': (0, 5)}
"""

from __future__ import annotations

import argparse
import json
import shutil
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.nn as nn
import yaml

from sws.checkpoint import (
    BEST_NAME,
    LAST_NAME,
    capture_rng_state,
    load_checkpoint,
    load_weights,
    model_from_checkpoint,
    restore_rng_state,
    save_checkpoint,
    show,
    training_checkpoint,
)
from sws.data import DataSpec
from sws.distributed import Processes, barrier, gather_objects
from sws.engine import Optimization
from sws.errors import CheckpointError, ConfigError, OutputError, first_line
from sws.expansion import is_sws_shaped, save_des_net
from sws.extraction import extract
from sws.fileio import atomic_path, write_json_atomic, write_text_atomic
from sws.models import is_aux_net
from sws.progress import RunLog
from sws.train_config import plain_args

ARGS_NAME = "args.yaml"
SUMMARY_NAME = "summary.json"

# flags that change how a run goes, not what it learns: a run made with other values is the same run
HOW_NOT_WHAT = frozenset(
    {
        "output_dir",
        "resume",
        "overwrite",
        "eval",  # an evaluation writes nothing into the folder
        "config",  # the file's values are compared one by one, as flags
        "num_workers",
        "pin_mem",
        "print_freq",
        "device",
        "tensorboard",
        "data_on_device",
        "compile",
        "print_config",
    }
)
# flags naming a file or folder, which keeps its name when a run folder is moved or copied
PATH_FLAGS = frozenset({"load_gene", "teacher_path", "ancestry", "finetune", "data_path"})


@dataclass
class TrainResult:
    """What a run returns to code that calls it (the pipeline, notebooks, tests)."""

    model: nn.Module
    history: list[dict[str, Any]]
    summary: dict[str, Any]
    output_dir: Path | None = None
    ema: nn.Module | None = None  # the EMA weights, with --model-ema


def saved_form(settings: argparse.Namespace | Mapping[str, Any]) -> dict[str, Any]:
    """Settings in the form ``args.yaml`` holds them (YAML's round trip), so that flags given now
    compare equal to the same flags saved then."""
    values = plain_args(settings) if isinstance(settings, argparse.Namespace) else dict(settings)
    return yaml.safe_load(yaml.safe_dump(values)) or {}


def changed_settings(saved: Mapping[str, Any], now: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The settings of a run made earlier (``saved``) that differ from ``now``, as ``{flag: (then,
    now)}``, both in ``saved_form``. ``HOW_NOT_WHAT`` flags never count, nor a ``PATH_FLAGS`` path
    that kept its file name; a flag missing from an older ``args.yaml`` cannot be compared."""
    changed = {}
    for key, value in now.items():
        if key in HOW_NOT_WHAT or key not in saved or saved[key] == value:
            continue
        then = saved[key]
        paths = key in PATH_FLAGS and isinstance(then, str) and isinstance(value, str) and then and value
        if not (paths and Path(then).name == Path(value).name):  # a path that kept its name: moved
            changed[key] = (then, value)
    return changed


def describe_changes(changed: Mapping[str, tuple[Any, Any]]) -> str:
    """``--seed 0 then, 5 now; ...`` (every comparable flag is spelled ``--dashed-name``)."""
    return "; ".join(
        f"--{key.replace('_', '-')} {show(then, 200)} then, {show(now, 200)} now"
        for key, (then, now) in changed.items()
    )


def _saved_settings(path: Path) -> dict[str, Any]:
    try:
        saved = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise OutputError(
            f"{path} is not the YAML that sws train writes ({first_line(error)}); --overwrite replaces the run"
        ) from None
    if not isinstance(saved, dict):
        raise OutputError(f"{path} holds {show(saved)}, not a mapping of flags; --overwrite replaces the run")
    return saved


def check_run_folder(output_dir: Path | None, args: argparse.Namespace, processes: Processes) -> TrainResult | None:
    """Refuse to train in a folder that holds another run (see the module docstring); return what
    the folder holds when it is this very run, finished; ``None`` to go on. With ``--overwrite`` the
    old ``summary.json`` goes first, so that a kill never leaves it beside a new checkpoint."""
    if args.overwrite and args.resume:
        raise ConfigError("--overwrite starts the run afresh and --resume continues it: give one of them")
    if output_dir is None or args.eval:
        return None  # an evaluation writes nothing into the folder
    has_checkpoint, has_summary = (output_dir / LAST_NAME).is_file(), (output_dir / SUMMARY_NAME).is_file()
    if not ((output_dir / ARGS_NAME).is_file() and (has_checkpoint or has_summary)):
        return None
    if args.overwrite:
        barrier(processes)  # every process has looked before rank 0 removes the summary
        if processes.is_main:
            (output_dir / SUMMARY_NAME).unlink(missing_ok=True)
        return None
    changed = changed_settings(_saved_settings(output_dir / ARGS_NAME), saved_form(args))
    if has_summary and changed:
        raise OutputError(
            f"{output_dir} holds a finished run made with other flags ({describe_changes(changed)}); give another "
            "--output_dir, or --overwrite to train afresh in it"
        )
    if has_summary:
        return finished_run(output_dir, processes)
    if not args.resume:
        raise OutputError(
            f"{output_dir} holds an interrupted run (a checkpoint.pth, no summary.json): --resume auto continues "
            "it, --overwrite starts it again"
        )
    if changed:
        raise OutputError(
            f"{output_dir} holds an interrupted run made with other flags ({describe_changes(changed)}); a resumed "
            "run keeps its recipe: resume with those flags, or --overwrite to start afresh"
        )
    return None


def finished_run(output_dir: Path, processes: Processes) -> TrainResult:
    """What a finished run's folder holds: its summary, history, model and EMA weights."""
    try:
        summary = json.loads((output_dir / SUMMARY_NAME).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise OutputError(
            f"{output_dir / SUMMARY_NAME} is not JSON ({error}); --overwrite trains the run again"
        ) from None
    path = output_dir / LAST_NAME
    if not path.is_file():
        raise OutputError(
            f"{output_dir} holds a finished run's summary.json but no {LAST_NAME}; --overwrite trains it again"
        )
    checkpoint = load_checkpoint(path, "evaluate")
    model = model_from_checkpoint(checkpoint, where=path)
    ema = model_from_checkpoint(checkpoint, use_ema=True, where=path) if checkpoint.get("model_ema") else None
    top1 = summary.get("final_top1") if isinstance(summary, dict) else None
    processes.print(
        f"{output_dir} holds this run, finished"
        + (f" at top-1 {top1:.2f}%" if isinstance(top1, (int, float)) else "")
        + f" ({output_dir / SUMMARY_NAME}): nothing to do; --overwrite trains it again"
    )
    return TrainResult(model, list(checkpoint.get("history", [])), summary, output_dir, ema)


def resume_path(args: argparse.Namespace, output_dir: Path | None) -> Path | None:
    """The checkpoint ``--resume`` names: ``auto`` is the output folder's, when it has one."""
    if not args.resume:
        return None
    if args.resume == "auto":
        candidate = output_dir / LAST_NAME if output_dir else None
        return candidate if candidate is not None and candidate.is_file() else None
    return Path(args.resume)


def read_resume_checkpoint(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The checkpoint to resume (or, with ``--eval``, to evaluate), checked entry by entry; one
    written with other flags is refused: a resumed run keeps its recipe."""
    checkpoint = load_checkpoint(path, "evaluate" if args.eval else "resume")
    if not args.eval and "args" in checkpoint:
        try:
            saved = saved_form(checkpoint["args"])
        except yaml.YAMLError as error:
            raise CheckpointError(
                f"{path}: entry 'args' holds values that are not flags ({first_line(error)})"
            ) from None
        changed = changed_settings(saved, saved_form(args))
        if changed:
            raise CheckpointError(
                f"{path} was written with other flags ({describe_changes(changed)}); a resumed run keeps its "
                "recipe: resume with those flags, or train afresh"
            )
    return checkpoint


@dataclass
class Progress:
    """Where a run stands: the next epoch, the epoch records so far, the best top-1 and how the model
    was initialized (with its top-1 before training, under ``--eval-init``)."""

    start_epoch: int
    history: list[dict[str, Any]]
    best_top1: float | None
    init_record: dict[str, Any]


def resume(
    checkpoint: dict[str, Any],
    path: Path,
    model: nn.Module,
    spec: tuple[str, dict[str, Any]],
    opt: Optimization | None,
    processes: Processes,
) -> Progress:
    """Restore a run from its checked checkpoint (``read_resume_checkpoint``) into ``model``, built
    as ``spec`` (name, rebuild arguments): weights, optimizer, schedule, EMA, scaler and this
    process's random state (``opt`` ``None``: the weights alone, for ``--eval``)."""
    if (checkpoint["model_name"], checkpoint["model_kwargs"]) != spec:
        raise CheckpointError(
            f"{path} holds model {checkpoint['model_name']} {show(checkpoint['model_kwargs'], 200)} but this run "
            f"builds {spec[0]} {show(spec[1], 200)}; resume with the --model and model flags of the run that wrote it"
        )
    load_weights(model, checkpoint["model"], f"{path}: entry 'model'", "the file is damaged")
    history, best_top1 = list(checkpoint.get("history", [])), checkpoint.get("best_top1")
    if opt is None:
        return Progress(0, history, best_top1, checkpoint.get("init") or {})
    _load_state(opt.optimizer, checkpoint["optimizer"], path, "optimizer", "--opt, --weight-decay and model flags")
    if set(checkpoint["lr_scheduler"]) != set(opt.scheduler.state_dict()):
        raise CheckpointError(f"{path}: entry 'lr_scheduler' holds another schedule's state; resume with its --sched")
    opt.scheduler.load_state_dict(checkpoint["lr_scheduler"])
    if opt.ema is not None and checkpoint.get("model_ema"):
        load_weights(opt.ema.module, checkpoint["model_ema"], f"{path}: entry 'model_ema'", "the file is damaged")
    if checkpoint.get("scaler"):
        _load_state(opt.scaler, checkpoint["scaler"], path, "scaler", "--amp")
    start_epoch = checkpoint["epoch"] + 1
    restore_process_rng(checkpoint.get("rng"), processes, path)
    opt.schedule_from(start_epoch)
    return Progress(start_epoch, history, best_top1, checkpoint["init"])


def _load_state(owner: Any, state: dict[str, Any], path: Path, entry: str, flags: str) -> None:
    """``owner.load_state_dict(state)``, a refusal naming the entry when it does not fit."""
    try:
        owner.load_state_dict(state)
    except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as error:
        raise CheckpointError(
            f"{path}: entry {entry!r} does not fit this run ({type(error).__name__}: {first_line(error)}); resume "
            f"with the {flags} of the run that wrote it"
        ) from None


def restore_process_rng(states: Any, processes: Processes, path: Path) -> None:
    """Give each process back its own random state; a run resumed with another number of processes
    carries on, but its random streams differ from an uninterrupted run's."""
    if states is None:
        return
    states = [states] if isinstance(states, dict) else list(states)  # one dict: sws 0.1 checkpoints
    if len(states) != processes.world_size:
        warnings.warn(
            f"the checkpoint was written by {len(states)} process(es) and this run has {processes.world_size}: "
            "training resumes, but augmentation and dropout draw other random numbers than an uninterrupted run",
            stacklevel=2,
        )
        return
    try:
        restore_rng_state(states[processes.rank])
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as error:
        raise CheckpointError(
            f"{path}: entry 'rng' does not hold random states ({type(error).__name__}: {first_line(error)}); "
            "the file is damaged"
        ) from None


class RunFiles:
    """What a run writes into its output folder: its flags and log at the start, a checkpoint every
    epoch, the final artifacts. Every process calls it (gathering the random states is collective);
    rank 0 alone writes. Closing it closes the log (and TensorBoard), also when a run fails."""

    def __init__(
        self,
        output_dir: Path | None,
        args: argparse.Namespace,
        spec: tuple[str, dict[str, Any]],
        data: DataSpec,
        processes: Processes,
        resumed_from: Path | None = None,
    ) -> None:
        writes = processes.is_main and output_dir is not None
        self.output_dir = output_dir if writes else None
        self.args = args
        self.name, self.model_kwargs = spec
        self.data = data
        self.log = RunLog(output_dir, writes, args.tensorboard)
        self.last_state: dict[str, Any] | None = None
        self.resumed_from = resumed_from  # the checkpoint the run continues

    def __enter__(self) -> RunFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.log.close()  # the TensorBoard writer, also when a NaN or a kill interrupts the loop

    def start(self, history: list[dict[str, Any]]) -> None:
        """``args.yaml``, and the log rewritten from ``history`` (the resumed checkpoint's records;
        none on a fresh start), so that every epoch appears exactly once whatever the log held."""
        if self.output_dir is not None:
            write_text_atomic(self.output_dir / ARGS_NAME, yaml.safe_dump(plain_args(self.args), sort_keys=False))
        self.log.rewrite(history)

    def end_epoch(
        self, model: nn.Module, opt: Optimization, progress: Progress, improved: bool, processes: Processes
    ) -> None:
        """The checkpoint after the epoch ``progress.history[-1]`` (and the best one), then its log record."""
        rng = gather_objects(capture_rng_state(), processes)  # each process's own, for exact resume
        record = progress.history[-1]
        if self.output_dir is not None:
            state = training_checkpoint(
                model=model,
                ema=opt.ema.module if opt.ema is not None else None,
                optimizer=opt.optimizer,
                scheduler=opt.scheduler,
                scaler=opt.scaler,
                epoch=record["epoch"],
                model_name=self.name,
                model_kwargs=self.model_kwargs,
                args=plain_args(self.args),
                rng=rng,
                history=progress.history,
                best_top1=progress.best_top1,
                init=progress.init_record,
                data=self.data.record(),
            )
            save_checkpoint(self.output_dir / LAST_NAME, state)
            self.last_state = state  # the final artifacts come from it, without reading the file back
            if improved:
                with atomic_path(self.output_dir / BEST_NAME) as tmp:
                    shutil.copyfile(self.output_dir / LAST_NAME, tmp)
        self.log.append(record)

    def save_final(self, model: nn.Module, init_record: dict[str, Any], summary: dict[str, Any]) -> None:
        """An Aux-Net run leaves its learngene; a plain ViT run leaves a timm hub folder; every run its
        summary (written last: a pipeline takes it to mean the step is done)."""
        if self.output_dir is None:
            return
        if is_aux_net(model):
            # a run resumed at its end saved no epoch: its learngene is the resumed checkpoint's
            checkpoint = self.last_state or load_checkpoint(
                self.resumed_from or self.output_dir / LAST_NAME, "learngene"
            )
            extract(checkpoint).save(self.output_dir / "learngene.safetensors")
        elif is_sws_shaped(model):
            save_des_net(
                model,
                self.output_dir / "model",
                mean=self.data.mean,
                std=self.data.std,
                crop_pct=self.args.eval_crop_ratio,
                provenance={"init": init_record, "data_set": self.data.name},
                overwrite=True,
            )
        write_json_atomic(self.output_dir / SUMMARY_NAME, summary)
