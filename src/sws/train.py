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
import os
import random
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
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

from sws.checkpoint import BEST_NAME, LAST_NAME, capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from sws.cost import peak_memory_mb, reset_peak_memory
from sws.data import (
    AugmentConfig,
    DataSpec,
    ShardSampler,
    batch_to_device,
    build_datasets,
    build_loader,
    build_train_sampler,
    build_transform,
    check_not_empty,
)
from sws.distill import DistillationLoss, load_teacher
from sws.distributed import Processes, all_finite, all_reduce_sum, barrier, init_processes, shutdown
from sws.errors import CheckpointError, ConfigError, TrainingError
from sws.fileio import write_json_atomic, write_text_atomic
from sws.initialization import initialize_model
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
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Data:
    train_loader: torch.utils.data.DataLoader
    val_loader: torch.utils.data.DataLoader
    train_sampler: Any
    spec: DataSpec
    input_size: int


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


def main(argv: Sequence[str] | None = None) -> int:
    train(parse_args(argv))
    return 0


def train(args: argparse.Namespace) -> TrainResult:
    """Run ``sws train`` with parsed ``args`` (see ``sws.train_config``)."""
    processes = init_processes(args.device)
    try:
        return _train(args, processes)
    finally:
        shutdown(processes)


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


def build_data(args: argparse.Namespace, processes: Processes) -> Data:
    """Data sets, DeiT's transforms and the loaders (training sharded across processes; evaluation
    sharded without repeats)."""
    train_set, val_set, spec = build_datasets(args.data_set, args.data_path, num_classes=args.num_classes)
    input_size = args.input_size or spec.native_size or 224
    aug = AugmentConfig(
        input_size=input_size,
        color_jitter=args.color_jitter,
        auto_augment=args.aa,
        interpolation=args.train_interpolation,
        reprob=args.reprob,
        remode=args.remode,
        recount=args.recount,
        hflip=spec.hflip if args.hflip is None else args.hflip,
        eval_crop_ratio=args.eval_crop_ratio,
        crop_padding=args.crop_pad,
    )
    train_set.transform = build_transform(True, spec, aug)
    val_set.transform = build_transform(False, spec, aug)
    check_not_empty(train_set, "training", args.batch_size, processes.world_size, drop_last=not args.eval)
    check_not_empty(val_set, "validation", 1, 1, drop_last=False)
    workers = min(args.num_workers, os.cpu_count() or 1)
    pin = args.pin_mem and processes.device.type == "cuda"
    sampler = build_train_sampler(train_set, processes.world_size, processes.rank, args.seed, args.repeated_aug)
    train_loader = build_loader(train_set, sampler, args.batch_size, workers, drop_last=True, pin_memory=pin)
    shards = ShardSampler(len(val_set), processes.world_size, processes.rank)
    val_loader = build_loader(val_set, shards, int(1.5 * args.batch_size), workers, drop_last=False, pin_memory=pin)
    return Data(train_loader, val_loader, sampler, spec, input_size)


def build_teacher(args: argparse.Namespace, data: Data, device: torch.device) -> nn.Module | None:
    if args.distillation_type == "none":
        return None
    teacher = load_teacher(
        args.teacher_model,
        args.teacher_path or None,
        data.spec.num_classes,
        data.spec.in_chans,
        dict(args.teacher_model_kwargs),
        img_size=data.input_size,
    )
    return teacher.to(device)


def build_optimization(
    args: argparse.Namespace, model: nn.Module, teacher: nn.Module | None, data: Data, processes: Processes
) -> Optimization:
    """timm's optimizer (AdamW by default, no decay on norms, biases and pos_embed), its schedule
    (cosine with warmup), mixup and cutmix, the loss with distillation, EMA and autocast."""
    global_batch = args.batch_size * processes.world_size * args.accumulation_step
    lr = args.lr if args.unscale_lr else args.lr * global_batch / 512.0
    optimizer_args: dict[str, Any] = {"eps": args.opt_eps, "momentum": args.momentum}
    if args.opt_betas:
        optimizer_args["betas"] = tuple(args.opt_betas)
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
    amp_dtype = _amp_dtype(args.amp, processes.device)
    mixup = None
    if args.mixup > 0 or args.cutmix > 0 or args.cutmix_minmax is not None:
        if args.batch_size % 2:
            raise ConfigError(
                "mixup and cutmix pair images within a batch: use an even --batch-size (or --mixup 0 --cutmix 0)"
            )
        mixup = Mixup(
            mixup_alpha=args.mixup,
            cutmix_alpha=args.cutmix,
            cutmix_minmax=args.cutmix_minmax,
            prob=args.mixup_prob,
            switch_prob=args.mixup_switch_prob,
            mode=args.mixup_mode,
            label_smoothing=args.smoothing,
            num_classes=data.spec.num_classes,
        )
    if mixup is not None:
        base_criterion: nn.Module = SoftTargetCrossEntropy()
    elif args.smoothing > 0:
        base_criterion = LabelSmoothingCrossEntropy(smoothing=args.smoothing)
    else:
        base_criterion = nn.CrossEntropyLoss()
    return Optimization(
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=torch.amp.GradScaler(processes.device.type, enabled=amp_dtype == torch.float16),
        criterion=DistillationLoss(
            base_criterion, teacher, args.distillation_type, args.distillation_alpha, args.distillation_tau
        ),
        mixup=mixup,
        ema=create_model_ema(model, args.model_ema_decay) if args.model_ema else None,
        amp_dtype=amp_dtype,
        lr=lr,
        global_batch=global_batch,
        updates_per_epoch=updates_per_epoch,
    )


def resume(
    path: Path, model: nn.Module, opt: Optimization, args: argparse.Namespace, processes: Processes
) -> tuple[int, list[dict[str, Any]], float | None]:
    """Restore a run from its checkpoint: weights, optimizer, schedule, EMA, scaler, random state.
    Returns the next epoch, the epoch records so far and the best top-1."""
    checkpoint = load_checkpoint(path)
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        raise CheckpointError(
            f"{path} holds another model ({checkpoint.get('model_name')}: {str(error).splitlines()[0]}); "
            "resume with the --model and model flags of the run that wrote it"
        ) from None
    if args.eval:
        return 0, [], None
    opt.optimizer.load_state_dict(checkpoint["optimizer"])
    opt.scheduler.load_state_dict(checkpoint["lr_scheduler"])
    if opt.ema is not None and checkpoint.get("model_ema"):
        opt.ema.module.load_state_dict(checkpoint["model_ema"])
    if checkpoint.get("scaler"):
        opt.scaler.load_state_dict(checkpoint["scaler"])
    start_epoch = int(checkpoint["epoch"]) + 1
    if "rng" in checkpoint and processes.world_size == 1:  # one process saves one random state
        restore_rng_state(checkpoint["rng"])
    if args.sched_on_updates:
        opt.scheduler.step_update(start_epoch * opt.updates_per_epoch)
    else:
        opt.scheduler.step(start_epoch)
    return start_epoch, list(checkpoint.get("history", [])), checkpoint.get("best_top1")


def _train(args: argparse.Namespace, processes: Processes) -> TrainResult:
    device = processes.device
    seed_everything(args.seed + processes.rank)
    output_dir = Path(args.output_dir) if args.output_dir else None
    writes_files = processes.is_main and output_dir is not None
    if writes_files:
        output_dir.mkdir(parents=True, exist_ok=True)
    say = print if processes.is_main else (lambda *a, **k: None)

    data = build_data(args, processes)
    name, model_kwargs = model_spec(args, data.spec.num_classes, data.spec.in_chans, data.input_size)
    model = create_model(name, drop_rate=args.drop, drop_path_rate=args.drop_path, **model_kwargs)
    init_record = initialize_model(
        model,
        method=args.init,
        load_gene=args.load_gene or None,
        layers_source=args.layers_source,
        ancestry=args.ancestry or None,
        inherit_layers=args.inherit_layers,
        finetune=args.finetune or None,
    )
    model.to(device)
    teacher = build_teacher(args, data, device)
    opt = build_optimization(args, model, teacher, data, processes)

    run_log = RunLog(output_dir, processes.is_main, args.tensorboard)
    start_epoch, history, best_top1 = 0, [], None
    resume_path = _resume_path(args, output_dir)
    if resume_path is not None:
        start_epoch, history, best_top1 = resume(resume_path, model, opt, args, processes)
        if not args.eval:
            run_log.rewrite(history)  # every epoch exactly once, whatever the log held at the crash
            say(f"resumed from {resume_path}: epoch {start_epoch} of {args.epochs}")

    train_model: nn.Module = torch.compile(model) if args.compile else model
    if processes.distributed:
        train_model = DistributedDataParallel(train_model, device_ids=[device.index] if device.type == "cuda" else None)

    params = sum(p.numel() for p in model.parameters())
    say(
        f"sws train: {name} ({params / 1e6:.2f}M params, init {init_record['method']}) on {data.spec.name} "
        f"({len(data.train_loader.dataset)} train / {len(data.val_loader.dataset)} val, {data.input_size}px), "
        f"{processes.world_size} process(es) on {device}, global batch {opt.global_batch}, lr {opt.lr:.2e}"
    )
    if args.eval:
        stats = evaluate(model, data.val_loader, device, opt.amp_dtype, processes)
        say(
            f"eval: top-1 {stats['top1']:.2f}%  top-5 {stats['top5']:.2f}%  loss {stats['loss']:.4f}  "
            f"{stats['images_per_sec']:.0f} img/s"
        )
        return TrainResult(model, history, {"eval": stats}, output_dir)
    if writes_files:
        write_text_atomic(output_dir / "args.yaml", yaml.safe_dump(_plain_args(args), sort_keys=False))

    # ---- the loop: train an epoch, evaluate, checkpoint, log -------------------------------------
    for epoch in range(start_epoch, args.epochs):
        if hasattr(data.train_sampler, "set_epoch"):
            data.train_sampler.set_epoch(epoch)
        epoch_start = time.perf_counter()
        reset_peak_memory(device)
        train_stats = train_one_epoch(train_model, data.train_loader, opt, epoch, args, processes)
        eval_stats = evaluate(model, data.val_loader, device, opt.amp_dtype, processes)
        record: dict[str, Any] = {
            "epoch": epoch,
            **{f"train_{k}": v for k, v in train_stats.items()},
            **{f"eval_{k}": v for k, v in eval_stats.items()},
        }
        if opt.ema is not None and args.model_ema_eval:
            ema_stats = evaluate(opt.ema.module, data.val_loader, device, opt.amp_dtype, processes)
            record.update({f"ema_{k}": v for k, v in ema_stats.items()})
        record["epoch_seconds"] = time.perf_counter() - epoch_start
        record["peak_memory_mb"] = peak_memory_mb(device)
        history.append(record)
        improved = best_top1 is None or eval_stats["top1"] > best_top1
        best_top1 = eval_stats["top1"] if improved else best_top1
        if writes_files:
            state = {
                "model": model.state_dict(),
                "model_ema": opt.ema.module.state_dict() if opt.ema is not None else None,
                "optimizer": opt.optimizer.state_dict(),
                "lr_scheduler": opt.scheduler.state_dict(),
                "scaler": opt.scaler.state_dict() if opt.scaler.is_enabled() else None,
                "epoch": epoch,
                "model_name": name,
                "model_kwargs": model_kwargs,
                "args": _plain_args(args),
                "rng": capture_rng_state(),
                "history": history,
                "best_top1": best_top1,
                "init": init_record,
            }
            save_checkpoint(output_dir / LAST_NAME, state)
            if improved:
                shutil.copyfile(output_dir / LAST_NAME, output_dir / f".{BEST_NAME}.tmp")
                os.replace(output_dir / f".{BEST_NAME}.tmp", output_dir / BEST_NAME)
            run_log.append(record)
        say(
            f"epoch {epoch + 1}/{args.epochs}: train loss {train_stats['loss']:.4f}  top-1 {eval_stats['top1']:.2f}%  "
            f"top-5 {eval_stats['top5']:.2f}%  {train_stats['images_per_sec']:.0f} img/s  "
            f"{record['epoch_seconds']:.1f}s"
        )
    barrier(processes)
    run_log.close()

    summary = _summary(name, model, teacher, history, best_top1, init_record, args, data)
    if writes_files:
        _save_final_artifacts(model, output_dir, data.spec, args, init_record)
        write_json_atomic(output_dir / "summary.json", summary)
    barrier(processes)  # the next step of a pipeline may read what rank 0 just wrote
    if history:
        say(
            f"done: {len(history)} epochs, final top-1 {history[-1]['eval_top1']:.2f}%, best {best_top1:.2f}%"
            + (f"; outputs in {output_dir}" if output_dir else "")
        )
    extra = {"optimizer": opt.optimizer, "teacher": teacher, "criterion": opt.criterion, "ema": opt.ema}
    return TrainResult(model, history, summary, output_dir, extra=extra)


def train_one_epoch(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    opt: Optimization,
    epoch: int,
    args: argparse.Namespace,
    processes: Processes,
) -> dict[str, float]:
    """One pass over the training data. Every ``args.accumulation_step`` micro-batches make one
    optimizer step whose gradient is the mean over all of them (the same update as one step on the
    larger batch)."""
    model.train()
    device = processes.device
    steps = len(loader)
    accumulation = args.accumulation_step
    progress = EpochProgress(steps, f"epoch {epoch + 1}/{args.epochs}", processes.is_main, lines=args.print_freq or 10)
    loss_sum, images_seen, start = 0.0, 0, time.perf_counter()
    opt.optimizer.zero_grad(set_to_none=True)
    for step, batch in enumerate(loader):
        images, targets = batch_to_device(batch, device)
        if opt.mixup is not None:
            images, targets = opt.mixup(images, targets)
        group_start = step - step % accumulation
        group_size = min(accumulation, steps - group_start)  # the last group may be shorter
        last_in_group = step == group_start + group_size - 1
        # DDP averages gradients only on the last micro-batch of a group
        sync = contextlib.nullcontext() if last_in_group or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            with torch.autocast(device.type, dtype=opt.amp_dtype, enabled=opt.amp_dtype is not None):
                outputs = model(images)
                loss = opt.criterion(images, outputs, targets)
            loss_value = loss.item()  # the one host sync per step, shared by the NaN check and the log
            if not all_finite(loss_value, processes):
                raise TrainingError(
                    f"the training loss became {loss_value} at epoch {epoch + 1}, step {step + 1}; stopped without "
                    "saving, so the last good checkpoint is intact: lower --lr, set --clip-grad, or use --amp none, "
                    "then --resume"
                )
            opt.scaler.scale(loss / group_size).backward()
        if last_in_group:
            if args.clip_grad is not None:
                opt.scaler.unscale_(opt.optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
            opt.scaler.step(opt.optimizer)
            opt.scaler.update()
            opt.optimizer.zero_grad(set_to_none=True)
            if opt.ema is not None:
                opt.ema.update(_unwrap(model))
            if args.sched_on_updates:
                opt.scheduler.step_update(epoch * opt.updates_per_epoch + step // accumulation + 1)
        loss_sum += loss_value * images.shape[0]
        images_seen += images.shape[0]
        progress.update(loss_value, opt.optimizer.param_groups[0]["lr"], images.shape[0])
    progress.close()
    if not args.sched_on_updates:
        opt.scheduler.step(epoch + 1)
    seconds = time.perf_counter() - start
    loss_total, images_total = all_reduce_sum([loss_sum, float(images_seen)], processes)
    return {
        "loss": loss_total / max(images_total, 1),
        "lr": opt.optimizer.param_groups[0]["lr"],
        "images": int(images_total),
        "images_per_sec": images_total / max(seconds, 1e-9),
        "seconds": seconds,
    }


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    processes: Processes,
) -> dict[str, float]:
    """Top-1, top-5 and loss over the validation set, each image counted once across processes."""
    was_training = model.training
    model.eval()
    loss_sum, correct1, correct5, count = 0.0, 0.0, 0.0, 0
    start = time.perf_counter()
    for batch in loader:
        images, targets = batch_to_device(batch, device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            outputs = model(images)
        outputs = outputs.float()
        loss_sum += nn.functional.cross_entropy(outputs, targets, reduction="sum").item()
        # counts, not timm's percentages, so that top-1 is an exact fraction of the images
        hits = outputs.topk(min(5, outputs.shape[1]), dim=1).indices.eq(targets[:, None])
        correct1 += hits[:, 0].sum().item()
        correct5 += hits.any(dim=1).sum().item()
        count += images.shape[0]
    seconds = time.perf_counter() - start
    loss_sum, correct1, correct5, count = all_reduce_sum([loss_sum, correct1, correct5, float(count)], processes)
    model.train(was_training)
    return {
        "top1": 100.0 * correct1 / count,
        "top5": 100.0 * correct5 / count,
        "loss": loss_sum / count,
        "images": int(count),
        "images_per_sec": count / max(seconds, 1e-9),
    }


def _unwrap(model: nn.Module) -> nn.Module:
    model = model.module if isinstance(model, DistributedDataParallel) else model
    return getattr(model, "_orig_mod", model)


def _amp_dtype(choice: str, device: torch.device) -> torch.dtype | None:
    if choice == "auto":
        return torch.float16 if device.type == "cuda" else None
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[choice]


def _resume_path(args: argparse.Namespace, output_dir: Path | None) -> Path | None:
    if not args.resume:
        return None
    if args.resume == "auto":
        candidate = output_dir / LAST_NAME if output_dir else None
        return candidate if candidate is not None and candidate.is_file() else None
    return Path(args.resume)


def _plain_args(args: argparse.Namespace) -> dict[str, Any]:
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
    data: Data,
) -> dict[str, Any]:
    from sws.cost import forward_flops, training_flops

    sample = (1, data.spec.in_chans, data.input_size, data.input_size)
    student_flops = forward_flops(_unwrap(model), sample)
    teacher_flops = forward_flops(teacher, sample) if teacher is not None else 0
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


def _save_final_artifacts(
    model: nn.Module, output_dir: Path, spec: Any, args: argparse.Namespace, init_record: dict[str, Any]
) -> None:
    """An Aux-Net run leaves its learngene; a plain ViT run leaves a timm hub folder."""
    from sws.expansion import is_sws_shaped, save_des_net
    from sws.learngene import extract

    model = _unwrap(model)
    if is_aux_net(model):
        gene = extract(load_checkpoint(output_dir / LAST_NAME))
        gene.save(output_dir / "learngene.safetensors")
    elif is_sws_shaped(model):
        save_des_net(
            model,
            output_dir / "model",
            mean=spec.mean,
            std=spec.std,
            crop_pct=args.eval_crop_ratio,
            provenance={"init": init_record, "data_set": spec.name},
        )


if __name__ == "__main__":
    sys.exit(main())
