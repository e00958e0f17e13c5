"""Training: distill an Aux-Net from a teacher, or fine-tune a Des-Net. One explicit loop.

The paper's two phases, on one process or many::

    # Aux-S: learn the learngene (paper: 4 GPUs, 150 epochs on ImageNet-1K)
    torchrun --nproc_per_node=4 -m sws train --model aux_deit_small_patch16_224_L16_33433 \\
        --batch-size 128 --epochs 150 --warmup-epochs 5 --data-path /data/imagenet --output_dir runs/aux_s \\
        --weight-decay 0.05 --lr 5e-4 --teacher-model levit_384 --teacher-path levit_384.pth \\
        --distillation-type soft --distillation-alpha 1.0

    # Des-S, 12 layers: initialize from the learngene, fine-tune 10 epochs
    torchrun --nproc_per_node=4 -m sws train --model deit_small_patch16_224_L12 --batch-size 128 \\
        --epochs 10 --warmup-epochs 0 --weight-decay 0.05 --lr 5e-5 --min-lr 1e-6 \\
        --data-path /data/imagenet --data-set IMNET --seed 123 --output_dir runs/des_s_l12 \\
        --load-gene runs/aux_s/learngene.safetensors --layers-source 0,0,0,1,1,1,2,2,3,3,4,4

    # on a laptop CPU, built-in data
    sws train --model aux_net --layout 3,3,4,3,3 --model-kwargs embed_dim=64 num_heads=2 patch_size=7 \\
        --data-set MNIST5K --epochs 5 --batch-size 128 --output_dir runs/aux_mnist

A run's folder gets ``checkpoint.pth`` (every epoch, atomically), ``best_checkpoint.pth``,
``log.jsonl`` (one record per epoch), ``args.yaml`` and ``summary.json``; an Aux-Net run also gets
``learngene.safetensors``, a Des-Net run ``model/`` (timm hub format). timm does the models'
layers, data sets, transforms, mixup, optimizers, schedules and EMA; this file wires them into one
loop that you can read from the data loader to the optimizer step.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import random
import shutil
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import yaml
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3
from torch.nn.parallel import DistributedDataParallel

from sws.checkpoint import (
    BEST_NAME,
    LAST_NAME,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
    training_checkpoint,
)
from sws.cost import forward_flops, peak_memory_mb, reset_peak_memory, training_flops
from sws.data import DataSpec
from sws.distill import DistillationLoss, load_teacher
from sws.distributed import (
    Processes,
    all_reduce_min,
    all_reduce_sum,
    barrier,
    broadcast_module,
    gather_objects,
    run_processes,
)
from sws.errors import CheckpointError, ConfigError, TrainingError, first_line
from sws.expansion import is_sws_shaped, save_des_net
from sws.extraction import extract
from sws.fileio import atomic_path, run_folder, write_json_atomic, write_text_atomic
from sws.initialization import InitOptions, initialize_model
from sws.loaders import TrainingData, build_training_data
from sws.models import create_model, is_aux_net, is_vit_family
from sws.progress import EpochProgress, RunLog
from sws.train_config import parse_args


@dataclass
class TrainResult:
    """What a run returns to code that calls it (the pipeline, notebooks, tests)."""

    model: nn.Module
    history: list[dict[str, Any]]
    summary: dict[str, Any]
    output_dir: Path | None = None
    ema: nn.Module | None = None  # the EMA weights, with --model-ema


# timm optimizer names that are torch's Adam/AdamW, which have a fused implementation
FUSED_OPTIMIZERS = ("adam", "adamw")


@dataclass
class Optimization:
    """Everything that changes the weights, in one place: the loop reads it, checkpoints save it."""

    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    criterion: DistillationLoss
    mixup: Mixup | None
    ema: ModelEmaV3 | None
    amp_dtype: torch.dtype | None
    lr: float
    global_batch: int
    updates_per_epoch: int
    epochs: int
    accumulation_step: int = 1
    clip_grad: float | None = None
    sched_on_updates: bool = False

    def schedule_after_epoch(self, epoch: int) -> None:
        """Step a per-epoch schedule at the end of ``epoch`` (a per-update one steps in the loop)."""
        if not self.sched_on_updates:
            self.scheduler.step(epoch + 1)

    def schedule_from(self, start_epoch: int) -> None:
        """Put the schedule where it stands at the start of ``start_epoch`` (on resume)."""
        if self.sched_on_updates:
            self.scheduler.step_update(start_epoch * self.updates_per_epoch)
        else:
            self.scheduler.step(start_epoch)


def main(argv: Sequence[str] | None = None) -> int:
    train(parse_args(argv))
    return 0


def train(args: argparse.Namespace) -> TrainResult:
    """Run ``sws train`` with parsed ``args`` (see ``sws.train_config``)."""
    with run_processes(args.device) as processes:
        output_dir = Path(args.output_dir) if args.output_dir else None
        with run_folder(output_dir, enabled=processes.is_main):
            return _train(args, processes, output_dir)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def create_model_ema(model: nn.Module, decay: float) -> ModelEmaV3:
    """timm's EMA, updating each *parameter* once per step: with its default settings it walks the
    state dict, where a shared Aux-Net tensor appears once per layer position and would be moved
    several times (1 - decay**3 for a 3-layer stage instead of 1 - decay)."""
    return ModelEmaV3(model, decay=decay, exclude_buffers=True)


def model_spec(
    args: argparse.Namespace, num_classes: int, in_chans: int, input_size: int
) -> tuple[str, dict[str, Any]]:
    """The model name and the keyword arguments that rebuild it (saved in every checkpoint)."""
    kwargs: dict[str, Any] = dict(args.model_kwargs)
    kwargs.update(num_classes=num_classes, in_chans=in_chans)
    if args.layout:
        kwargs["layout"] = args.layout
    if is_vit_family(args.model):
        kwargs.setdefault("img_size", input_size)
    return args.model, kwargs


def build_model(
    args: argparse.Namespace, data: TrainingData, device: torch.device
) -> tuple[nn.Module, str, dict[str, Any], dict[str, Any]]:
    """The model, initialized by ``--init`` / ``--load-gene`` / ``--finetune``; returns it with its
    name, rebuild arguments and the initialization record."""
    name, model_kwargs = model_spec(args, data.spec.num_classes, data.spec.in_chans, data.input_size)
    model = create_model(name, drop_rate=args.drop, drop_path_rate=args.drop_path, **model_kwargs)
    options = InitOptions(
        load_gene=args.load_gene or None,
        layers_source=args.layers_source,
        ancestry=args.ancestry or None,
        inherit_layers=args.inherit_layers,
    )
    init_record = initialize_model(model, args.init, options, finetune=args.finetune or None)
    return model.to(device), name, model_kwargs, init_record


def build_teacher(args: argparse.Namespace, data: TrainingData, device: torch.device) -> nn.Module | None:
    """The frozen teacher, checked on one batch of the data's shape before any training."""
    if args.distillation_type == "none":
        return None
    teacher = load_teacher(
        args.teacher_model,
        args.teacher_path or None,
        data.spec.num_classes,
        data.spec.in_chans,
        dict(args.teacher_model_kwargs),
        img_size=data.input_size,
    ).to(device)
    check_teacher_fits(teacher, data, device)
    return torch.compile(teacher) if args.compile else teacher


def check_teacher_fits(teacher: nn.Module, data: TrainingData, device: torch.device) -> None:
    """Run the teacher once on zeros shaped like the data, so that a teacher for other images or
    classes is refused before training rather than at its first step."""
    shape = (2, data.spec.in_chans, data.input_size, data.input_size)
    try:
        with torch.no_grad():
            outputs = teacher(torch.zeros(shape, device=device))
    except RuntimeError as error:
        raise ConfigError(
            f"the teacher cannot read this data's {shape[1]}-channel {shape[2]}x{shape[3]} images "
            f"({first_line(error)}); give a teacher trained on this data"
        ) from None
    classes = outputs.shape[-1] if outputs.ndim == 2 else None
    if classes != data.spec.num_classes:
        raise ConfigError(
            f"the teacher predicts {classes} classes but the data has {data.spec.num_classes}; "
            "give a teacher trained on this data's classes"
        )


def build_optimization(
    args: argparse.Namespace, model: nn.Module, teacher: nn.Module | None, data: TrainingData, processes: Processes
) -> Optimization:
    """timm's optimizer (AdamW by default, no decay on norms, biases and pos_embed), its schedule
    (cosine with warmup), mixup and cutmix, the loss with distillation, EMA and autocast."""
    global_batch = args.batch_size * processes.world_size * args.accumulation_step
    lr = args.lr if args.unscale_lr else args.lr * global_batch / 512.0
    optimizer_args: dict[str, Any] = {"eps": args.opt_eps, "momentum": args.momentum}
    if args.opt_betas:
        optimizer_args["betas"] = tuple(args.opt_betas)
    if args.opt.lower() in FUSED_OPTIMIZERS and processes.device.type in ("cpu", "cuda"):
        # one kernel for every parameter: 4.6x faster than the per-tensor loop for a 12-layer Des-Net's
        # AdamW step on a 2-core CPU (0.94 ms against 4.32), a tenth of that run's time
        optimizer_args["fused"] = True
    optimizer = create_optimizer_v2(model, opt=args.opt, lr=lr, weight_decay=args.weight_decay, **optimizer_args)
    updates_per_epoch = math.ceil(len(data.train_loader) / args.accumulation_step)
    scheduler, _ = create_scheduler_v2(
        optimizer,
        sched=args.sched,
        num_epochs=args.epochs,
        decay_epochs=args.decay_epochs,
        decay_rate=args.decay_rate,
        min_lr=args.min_lr,
        warmup_lr=args.warmup_lr,
        warmup_epochs=args.warmup_epochs,
        cooldown_epochs=0,
        step_on_epochs=not args.sched_on_updates,
        updates_per_epoch=updates_per_epoch,
    )
    amp_dtype = amp_dtype_for(args.amp, processes.device)
    mixup = build_mixup(args, data.spec.num_classes)
    return Optimization(
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=torch.amp.GradScaler(processes.device.type, enabled=amp_dtype == torch.float16),
        criterion=DistillationLoss(
            label_criterion(args, mixup),
            teacher,
            args.distillation_type,
            args.distillation_alpha,
            args.distillation_tau,
        ),
        mixup=mixup,
        ema=create_model_ema(model, args.model_ema_decay) if args.model_ema else None,
        amp_dtype=amp_dtype,
        lr=lr,
        global_batch=global_batch,
        updates_per_epoch=updates_per_epoch,
        epochs=args.epochs,
        accumulation_step=args.accumulation_step,
        clip_grad=args.clip_grad,
        sched_on_updates=args.sched_on_updates,
    )


def build_mixup(args: argparse.Namespace, num_classes: int) -> Mixup | None:
    """timm's mixup/cutmix with label smoothing, or ``None`` when both are off."""
    if not (args.mixup > 0 or args.cutmix > 0 or args.cutmix_minmax is not None):
        return None
    if args.batch_size % 2:
        raise ConfigError(
            "mixup and cutmix pair images within a batch: use an even --batch-size (or --mixup 0 --cutmix 0)"
        )
    return Mixup(
        mixup_alpha=args.mixup,
        cutmix_alpha=args.cutmix,
        cutmix_minmax=args.cutmix_minmax,
        prob=args.mixup_prob,
        switch_prob=args.mixup_switch_prob,
        mode=args.mixup_mode,
        label_smoothing=args.smoothing,
        num_classes=num_classes,
    )


def label_criterion(args: argparse.Namespace, mixup: Mixup | None) -> nn.Module:
    """The loss on the labels: soft targets after mixup, else label smoothing or cross-entropy."""
    if mixup is not None:
        return SoftTargetCrossEntropy()
    if args.smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=args.smoothing)
    return nn.CrossEntropyLoss()


@dataclass
class Progress:
    """Where a run stands: the next epoch, the epoch records so far, the best top-1 and how the model
    was initialized (with its top-1 before training, under ``--eval-init``)."""

    start_epoch: int
    history: list[dict[str, Any]]
    best_top1: float | None
    init_record: dict[str, Any]


def resume(
    path: Path, model: nn.Module, opt: Optimization, processes: Processes, weights_only: bool = False
) -> Progress:
    """Restore a run from its checkpoint: weights, optimizer, schedule, EMA, scaler and this
    process's random state (``weights_only``: the weights alone, for ``--eval``)."""
    checkpoint = load_checkpoint(path)
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        raise CheckpointError(
            f"{path} holds another model ({checkpoint.get('model_name')}: {first_line(error)}); "
            "resume with the --model and model flags of the run that wrote it"
        ) from None
    history, best_top1, init_record = (
        list(checkpoint.get("history", [])),
        checkpoint.get("best_top1"),
        checkpoint["init"],
    )
    if weights_only:
        return Progress(0, history, best_top1, init_record)
    try:
        opt.optimizer.load_state_dict(checkpoint["optimizer"])
    except ValueError as error:
        raise CheckpointError(
            f"{path} holds the state of another optimizer ({first_line(error)}); resume with the --opt, "
            "--weight-decay and model flags of the run that wrote it"
        ) from None
    opt.scheduler.load_state_dict(checkpoint["lr_scheduler"])
    if opt.ema is not None and checkpoint.get("model_ema"):
        opt.ema.module.load_state_dict(checkpoint["model_ema"])
    if checkpoint.get("scaler"):
        opt.scaler.load_state_dict(checkpoint["scaler"])
    start_epoch = int(checkpoint["epoch"]) + 1
    restore_process_rng(checkpoint.get("rng"), processes)
    opt.schedule_from(start_epoch)
    return Progress(start_epoch, history, best_top1, init_record)


def restore_process_rng(states: Any, processes: Processes) -> None:
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
    restore_rng_state(states[processes.rank])


def _train(args: argparse.Namespace, processes: Processes, output_dir: Path | None) -> TrainResult:
    device = processes.device
    seed_everything(args.seed + processes.rank)
    writes_files = processes.is_main and output_dir is not None
    data = build_training_data(args, processes)
    model, name, model_kwargs, init_record = build_model(args, data, device)
    broadcast_module(model, processes)  # every rank starts from rank 0's weights, EMA copies included
    teacher = build_teacher(args, data, device)
    opt = build_optimization(args, model, teacher, data, processes)
    run_log = RunLog(output_dir, writes_files, args.tensorboard)
    progress = Progress(0, [], None, init_record)
    resume_path = _resume_path(args, output_dir)
    if resume_path is not None:
        progress = resume(resume_path, model, opt, processes, weights_only=args.eval)
        progress.init_record = progress.init_record or init_record  # checkpoints of sws 0.1 lack it
        if not args.eval:
            run_log.rewrite(progress.history)  # every epoch exactly once, whatever the log held at the crash
            processes.print(f"resumed from {resume_path}: epoch {progress.start_epoch} of {args.epochs}")
    _announce(name, model, progress.init_record, data, opt, processes)
    if args.eval:
        stats = _evaluate_once(model, data, opt, processes)
        return TrainResult(model, progress.history, {"eval": stats}, output_dir)
    if args.eval_init and "top1" not in progress.init_record:
        stats = evaluate(model, data.val_loader, device, opt.amp_dtype, processes)
        progress.init_record = {**progress.init_record, "top1": stats["top1"], "loss": stats["loss"]}
        processes.print(f"before training: top-1 {stats['top1']:.2f}%  loss {stats['loss']:.4f}")
    if writes_files:
        write_text_atomic(output_dir / "args.yaml", yaml.safe_dump(plain_args(args), sort_keys=False))
    train_model = _wrap_for_training(model, args, processes)
    run = _RunFiles(output_dir if writes_files else None, name, model_kwargs, progress.init_record, args, data.spec)
    history, best_top1 = progress.history, progress.best_top1
    try:
        for epoch in range(progress.start_epoch, args.epochs):
            record = train_and_evaluate_epoch(train_model, model, data, opt, epoch, processes, args)
            history.append(record)
            improved = best_top1 is None or record["eval_top1"] > best_top1
            best_top1 = record["eval_top1"] if improved else best_top1
            run.save_epoch(model, opt, epoch, history, best_top1, improved, processes)
            run_log.append(record)
            processes.print(
                f"epoch {epoch + 1}/{args.epochs}: train loss {record['train_loss']:.4f}  "
                f"top-1 {record['eval_top1']:.2f}%  top-5 {record['eval_top5']:.2f}%  "
                f"{record['train_images_per_sec']:.0f} img/s  {record['epoch_seconds']:.1f}s"
            )
    finally:
        run_log.close()  # the TensorBoard writer, also when a NaN or a kill interrupts the loop
    barrier(processes)
    summary = _summary(name, model, teacher, history, best_top1, progress.init_record, args, data)
    run.save_final(model, summary)
    barrier(processes)  # the next step of a pipeline may read what rank 0 just wrote
    if history:
        processes.print(
            f"done: {len(history)} epochs, final top-1 {history[-1]['eval_top1']:.2f}%, best {best_top1:.2f}%"
            + (f"; outputs in {output_dir}" if output_dir else "")
        )
    return TrainResult(model, history, summary, output_dir, ema=opt.ema.module if opt.ema is not None else None)


def _announce(
    name: str,
    model: nn.Module,
    init_record: dict[str, Any],
    data: TrainingData,
    opt: Optimization,
    processes: Processes,
) -> None:
    params = sum(p.numel() for p in model.parameters())
    where = "on the device" if data.on_device else "through a DataLoader"
    processes.print(
        f"sws train: {name} ({params / 1e6:.2f}M params, init {init_record['method']}) on {data.spec.name} "
        f"({len(data.train_loader.dataset)} train / {len(data.val_loader.dataset)} val, {data.input_size}px, "
        f"{where}), {processes.world_size} process(es) on {processes.device}, global batch {opt.global_batch}, "
        f"lr {opt.lr:.2e}"
    )


def _evaluate_once(model: nn.Module, data: TrainingData, opt: Optimization, processes: Processes) -> dict[str, float]:
    stats = evaluate(model, data.val_loader, processes.device, opt.amp_dtype, processes)
    processes.print(
        f"eval: top-1 {stats['top1']:.2f}%  top-5 {stats['top5']:.2f}%  loss {stats['loss']:.4f}  "
        f"{stats['images_per_sec']:.0f} img/s"
    )
    return stats


def _wrap_for_training(model: nn.Module, args: argparse.Namespace, processes: Processes) -> nn.Module:
    """``torch.compile`` (``--compile``) and DDP around the model; checkpoints and evaluation use the
    plain model, which shares the weights."""
    train_model: nn.Module = torch.compile(model) if args.compile else model
    if processes.distributed:
        device = processes.device
        train_model = DistributedDataParallel(train_model, device_ids=[device.index] if device.type == "cuda" else None)
    return train_model


def train_and_evaluate_epoch(
    train_model: nn.Module,
    model: nn.Module,
    data: TrainingData,
    opt: Optimization,
    epoch: int,
    processes: Processes,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One epoch of training, then evaluation (and of the EMA with ``--model-ema-eval``): the epoch's
    log record."""
    if hasattr(data.train_sampler, "set_epoch"):
        data.train_sampler.set_epoch(epoch)
    epoch_start = time.perf_counter()
    reset_peak_memory(processes.device)
    train_stats = train_one_epoch(train_model, data.train_loader, opt, epoch, processes, args.print_freq or 10)
    eval_stats = evaluate(model, data.val_loader, processes.device, opt.amp_dtype, processes)
    record: dict[str, Any] = {
        "epoch": epoch,
        **{f"train_{k}": v for k, v in train_stats.items()},
        **{f"eval_{k}": v for k, v in eval_stats.items()},
    }
    if opt.ema is not None and args.model_ema_eval:
        ema_stats = evaluate(opt.ema.module, data.val_loader, processes.device, opt.amp_dtype, processes)
        record.update({f"ema_{k}": v for k, v in ema_stats.items()})
    record["epoch_seconds"] = time.perf_counter() - epoch_start
    record["peak_memory_mb"] = peak_memory_mb(processes.device)
    return record


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[Any],
    opt: Optimization,
    epoch: int,
    processes: Processes,
    print_lines: int = 10,
) -> dict[str, float]:
    """One pass over the training data. Every ``opt.accumulation_step`` micro-batches make one
    optimizer step whose gradient is the mean over all of them (the same update as one step on the
    larger batch).

    The host never waits for the device inside the loop except on the progress steps (a few per
    epoch) and at the end: the loss is summed on the device, and the first non-finite loss is
    remembered there and checked on those steps, so that a NaN stops the run (on every process at
    once) within one progress interval, before anything is saved.
    """
    model.train()
    device = processes.device
    steps = len(loader)
    progress = EpochProgress(steps, f"epoch {epoch + 1}/{opt.epochs}", processes.is_main, lines=print_lines)
    loss_sum = torch.zeros((), device=device, dtype=accumulator_dtype(device))
    first_bad = torch.full((), steps, device=device, dtype=torch.long)  # ``steps`` means none so far
    bad_loss = torch.zeros((), device=device)
    images_seen, start = 0, time.perf_counter()
    opt.optimizer.zero_grad(set_to_none=True)
    try:
        for step, (images, targets) in enumerate(loader):
            images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            if opt.mixup is not None:
                images, targets = opt.mixup(images, targets)
            group_start = step - step % opt.accumulation_step
            group_size = min(opt.accumulation_step, steps - group_start)  # the last group may be shorter
            last_in_group = step == group_start + group_size - 1
            loss = _forward_backward(model, images, targets, opt, group_size, last_in_group)
            is_new_bad = ~torch.isfinite(loss) & (first_bad == steps)
            first_bad = torch.where(is_new_bad, step, first_bad)
            bad_loss = torch.where(is_new_bad, loss, bad_loss)
            if last_in_group:
                _optimizer_step(model, opt, epoch * opt.updates_per_epoch + step // opt.accumulation_step + 1)
            loss_sum += loss * images.shape[0]
            images_seen += images.shape[0]
            if progress.due(step):
                _stop_if_not_finite(first_bad, bad_loss, steps, epoch, step, processes)
                mean_loss = (loss_sum / images_seen).item()
                progress.update(images.shape[0], mean_loss, opt.optimizer.param_groups[0]["lr"])
            else:
                progress.update(images.shape[0])
    finally:
        progress.close()
    opt.schedule_after_epoch(epoch)
    seconds = time.perf_counter() - start
    loss_total, images_total = all_reduce_sum([loss_sum.item(), float(images_seen)], processes)
    return {
        "loss": loss_total / max(images_total, 1),
        "lr": opt.optimizer.param_groups[0]["lr"],
        "images": int(images_total),
        "images_per_sec": images_total / max(seconds, 1e-9),
        "seconds": seconds,
    }


def accumulator_dtype(device: torch.device) -> torch.dtype:
    """float64 for sums over an epoch (float32 drifts over ImageNet's million images), except on
    Apple's MPS, which has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def _forward_backward(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    opt: Optimization,
    group_size: int,
    last_in_group: bool,
) -> torch.Tensor:
    """Forward, loss and backward of one micro-batch of a group of ``group_size``; returns the
    detached loss."""
    # DDP averages gradients only on the last micro-batch of a group
    sync = contextlib.nullcontext() if last_in_group or not hasattr(model, "no_sync") else model.no_sync()
    with sync:
        with torch.autocast(images.device.type, dtype=opt.amp_dtype, enabled=opt.amp_dtype is not None):
            outputs = model(images)
            loss = opt.criterion(images, outputs, targets)
        opt.scaler.scale(loss / group_size).backward()
    return loss.detach().float()


def _optimizer_step(model: nn.Module, opt: Optimization, update: int) -> None:
    """Clip, step, zero the gradients, update the EMA and a per-update schedule."""
    if opt.clip_grad is not None:
        opt.scaler.unscale_(opt.optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), opt.clip_grad)
    opt.scaler.step(opt.optimizer)
    opt.scaler.update()
    opt.optimizer.zero_grad(set_to_none=True)
    if opt.ema is not None:
        opt.ema.update(_unwrap(model))
    if opt.sched_on_updates:
        opt.scheduler.step_update(update)


def _stop_if_not_finite(
    first_bad: torch.Tensor, bad_loss: torch.Tensor, none: int, epoch: int, step: int, processes: Processes
) -> None:
    """Raise on every process when any of them has seen a non-finite loss (one host sync)."""
    earliest = int(all_reduce_min(first_bad, processes).item())
    if earliest == none:
        return
    value = bad_loss.item() if int(first_bad.item()) == earliest else float("nan")
    raise TrainingError(
        f"the training loss became {value} at epoch {epoch + 1}, step {earliest + 1} (seen at step {step + 1}); "
        "stopped without saving, so the last good checkpoint is intact: lower --lr, set --clip-grad, or use "
        "--amp none, then --resume"
    )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[Any],
    device: torch.device,
    amp_dtype: torch.dtype | None,
    processes: Processes,
) -> dict[str, float]:
    """Top-1, top-5 and loss over the validation set, each image counted once across processes; the
    counts stay on the device until the end."""
    was_training = model.training
    model.eval()
    totals = torch.zeros(3, dtype=accumulator_dtype(device), device=device)  # loss, top-1 hits, top-5 hits
    count, start = 0, time.perf_counter()
    for images, targets in loader:
        images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            outputs = model(images)
        outputs = outputs.float()
        # counts, not timm's percentages, so that top-1 is an exact fraction of the images
        hits = outputs.topk(min(5, outputs.shape[1]), dim=1).indices.eq(targets[:, None])
        loss = nn.functional.cross_entropy(outputs, targets, reduction="sum")
        totals += torch.stack([loss, hits[:, 0].sum(), hits.any(dim=1).sum()]).to(totals.dtype)
        count += images.shape[0]
    loss_sum, correct1, correct5, count = all_reduce_sum([*totals.tolist(), float(count)], processes)
    seconds = time.perf_counter() - start
    model.train(was_training)
    return {
        "top1": 100.0 * correct1 / count,
        "top5": 100.0 * correct5 / count,
        "loss": loss_sum / count,
        "images": int(count),
        "images_per_sec": count / max(seconds, 1e-9),
    }


class _RunFiles:
    """What a run writes into its output folder: checkpoints every epoch, the final artifacts. Every
    process calls it (gathering the random states is collective); rank 0 alone writes."""

    def __init__(
        self,
        output_dir: Path | None,
        name: str,
        model_kwargs: dict[str, Any],
        init_record: dict[str, Any],
        args: argparse.Namespace,
        spec: DataSpec,
    ) -> None:
        self.output_dir = output_dir
        self.name = name
        self.model_kwargs = model_kwargs
        self.init_record = init_record
        self.args = args
        self.spec = spec
        self.last_state: dict[str, Any] | None = None

    def save_epoch(
        self,
        model: nn.Module,
        opt: Optimization,
        epoch: int,
        history: list[dict[str, Any]],
        best_top1: float | None,
        improved: bool,
        processes: Processes,
    ) -> None:
        rng = gather_objects(capture_rng_state(), processes)  # each process's own, for exact resume
        if self.output_dir is None:
            return
        state = training_checkpoint(
            model=model,
            ema=opt.ema.module if opt.ema is not None else None,
            optimizer=opt.optimizer,
            scheduler=opt.scheduler,
            scaler=opt.scaler,
            epoch=epoch,
            model_name=self.name,
            model_kwargs=self.model_kwargs,
            args=plain_args(self.args),
            rng=rng,
            history=history,
            best_top1=best_top1,
            init=self.init_record,
            data=self.spec.record(),
        )
        save_checkpoint(self.output_dir / LAST_NAME, state)
        self.last_state = state  # the final artifacts come from it, without reading the file back
        if improved:
            with atomic_path(self.output_dir / BEST_NAME) as tmp:
                shutil.copyfile(self.output_dir / LAST_NAME, tmp)

    def save_final(self, model: nn.Module, summary: dict[str, Any]) -> None:
        """An Aux-Net run leaves its learngene; a plain ViT run leaves a timm hub folder; every run its
        summary (written last: a pipeline takes it to mean the step is done)."""
        if self.output_dir is None:
            return
        model = _unwrap(model)
        if is_aux_net(model):
            checkpoint = self.last_state or load_checkpoint(self.output_dir / LAST_NAME)  # resumed at its end
            extract(checkpoint).save(self.output_dir / "learngene.safetensors")
        elif is_sws_shaped(model):
            save_des_net(
                model,
                self.output_dir / "model",
                mean=self.spec.mean,
                std=self.spec.std,
                crop_pct=self.args.eval_crop_ratio,
                provenance={"init": self.init_record, "data_set": self.spec.name},
                overwrite=True,
            )
        write_json_atomic(self.output_dir / "summary.json", summary)


def _unwrap(model: nn.Module) -> nn.Module:
    model = model.module if isinstance(model, DistributedDataParallel) else model
    return getattr(model, "_orig_mod", model)


def amp_dtype_for(choice: str, device: torch.device) -> torch.dtype | None:
    """``auto``: bfloat16 on GPUs that have it (no loss scaling, so no host sync per step), else
    float16; no autocast on the CPU."""
    if choice == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[choice]


def _resume_path(args: argparse.Namespace, output_dir: Path | None) -> Path | None:
    if not args.resume:
        return None
    if args.resume == "auto":
        candidate = output_dir / LAST_NAME if output_dir else None
        return candidate if candidate is not None and candidate.is_file() else None
    return Path(args.resume)


def plain_args(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings as plain values (for YAML and weights-only checkpoints)."""
    values = dict(vars(args))
    for key in ("model_kwargs", "teacher_model_kwargs"):
        values[key] = dict(values.get(key) or [])
    return values


def _summary(
    name: str,
    model: nn.Module,
    teacher: nn.Module | None,
    history: list[dict[str, Any]],
    best_top1: float | None,
    init_record: dict[str, Any],
    args: argparse.Namespace,
    data: TrainingData,
) -> dict[str, Any]:
    sample = (1, data.spec.in_chans, data.input_size, data.input_size)
    student_flops = forward_flops(_unwrap(model), sample)
    teacher_flops = forward_flops(_unwrap(teacher), sample) if teacher is not None else 0
    images = sum(r["train_images"] for r in history)
    return {
        "model": name,
        "params": sum(p.numel() for p in model.parameters()),
        "init": init_record,
        "data_set": data.spec.name,
        "epochs": len(history),
        "train_images": images,
        "forward_flops_per_image": student_flops,
        "teacher_forward_flops_per_image": teacher_flops,
        "train_flops": training_flops(student_flops, images, teacher_flops),
        "train_seconds": sum(r["epoch_seconds"] for r in history),  # resumed runs included
        "top1": [r["eval_top1"] for r in history],
        "final_top1": history[-1]["eval_top1"] if history else None,
        "best_top1": best_top1,
        "distillation": args.distillation_type,
        "teacher": args.teacher_model or None,
    }


if __name__ == "__main__":
    sys.exit(main())
