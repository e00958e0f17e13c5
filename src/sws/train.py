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

timm does the models' layers, data sets, transforms, mixup, optimizers, schedules and EMA; this
file builds them from the flags and runs one loop over epochs: ``sws.engine`` trains and evaluates
an epoch (follow a batch from the loader to the optimizer step there), ``sws.run_files`` writes the
run's folder (``checkpoint.pth`` every epoch, ``best_checkpoint.pth``, ``log.jsonl``, ``args.yaml``,
the learngene or timm folder, ``summary.json``), refuses a folder that holds another run, and
resumes.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import yaml
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3, random_seed, unwrap_model
from torch.nn.parallel import DistributedDataParallel

from sws.cost import forward_flops, peak_memory_mb, reset_peak_memory, training_flops
from sws.distill import DistillationLoss, load_teacher
from sws.distributed import Processes, barrier, broadcast_module, run_processes
from sws.engine import Optimization, evaluate, train_one_epoch
from sws.errors import ConfigError, first_line
from sws.fileio import run_folder
from sws.initialization import InitOptions, initialize_model
from sws.loaders import TrainingData, build_training_data
from sws.models import create_model, is_vit_family
from sws.run_files import (
    Progress,
    RunFiles,
    TrainResult,
    check_run_folder,
    read_resume_checkpoint,
    resume,
    resume_path,
)
from sws.train_config import parse_args, plain_args

__all__ = ["TrainResult", "build_model", "build_optimization", "build_teacher", "main", "plain_args", "train"]

# timm optimizer names that are torch's Adam/AdamW, which have a fused implementation
FUSED_OPTIMIZERS = ("adam", "adamw")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.print_config:  # the settings every flag, --config file and default resolved to; nothing runs
        print(yaml.safe_dump(plain_args(args), sort_keys=False), end="")
        return 0
    train(args)
    return 0


def train(args: argparse.Namespace) -> TrainResult:
    """Run ``sws train`` with parsed ``args`` (see ``sws.train_config``): build the run, then one loop
    over epochs that trains, evaluates and saves.

    Example:
        >>> train(parse_args(["--model", "aux_net", "--layout", "1,1", "--data-set", "MNIST5K", "--epochs", "1"]))
    """
    output_dir = Path(args.output_dir) if args.output_dir else None
    with run_processes(args.device) as processes, run_folder(output_dir, enabled=processes.is_main):
        finished = check_run_folder(output_dir, args, processes)  # refuses a folder that holds another run
        if finished is not None:
            return finished
        run = build_run(args, processes, output_dir)
        if run.opt is None:  # --eval
            return _evaluate_only(run, args, processes, output_dir)
        data, model, opt, progress, device = run.data, run.model, run.opt, run.progress, processes.device
        train_model = _wrap_for_training(model, args, processes)
        with RunFiles(output_dir, args, run.spec, data.spec, processes, run.resumed_from) as files:
            files.start(progress.history)
            for epoch in range(progress.start_epoch, args.epochs):
                if hasattr(data.train_sampler, "set_epoch"):
                    data.train_sampler.set_epoch(epoch)
                started = time.perf_counter()
                reset_peak_memory(device)
                stats = train_one_epoch(train_model, data.train_loader, opt, epoch, processes, args.print_freq or 10)
                record = {"epoch": epoch, **_prefixed("train", stats)}
                record.update(_prefixed("eval", evaluate(model, data.val_loader, device, opt.amp_dtype, processes)))
                if opt.ema is not None and args.model_ema_eval:
                    ema_stats = evaluate(opt.ema.module, data.val_loader, device, opt.amp_dtype, processes)
                    record.update(_prefixed("ema", ema_stats))
                record.update(epoch_seconds=time.perf_counter() - started, peak_memory_mb=peak_memory_mb(device))
                improved = progress.best_top1 is None or record["eval_top1"] > progress.best_top1
                progress.history.append(record)
                progress.best_top1 = record["eval_top1"] if improved else progress.best_top1
                files.end_epoch(model, opt, progress, improved, processes)
                processes.print(
                    f"epoch {epoch + 1}/{args.epochs}: train loss {record['train_loss']:.4f}  "
                    f"top-1 {record['eval_top1']:.2f}%  top-5 {record['eval_top5']:.2f}%  "
                    f"{record['train_images_per_sec']:.0f} img/s  {record['epoch_seconds']:.1f}s"
                )
            barrier(processes)
            summary = _summary(run, args)
            files.save_final(model, progress.init_record, summary)
        barrier(processes)  # the next step of a pipeline may read what rank 0 just wrote
        if progress.history:
            processes.print(
                f"done: {len(progress.history)} epochs, final top-1 {progress.history[-1]['eval_top1']:.2f}%, "
                f"best {progress.best_top1:.2f}%" + (f"; outputs in {output_dir}" if output_dir else "")
            )
        return TrainResult(
            model, progress.history, summary, output_dir, opt.ema.module if opt.ema is not None else None
        )


def _prefixed(prefix: str, stats: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}_{key}": value for key, value in stats.items()}


@dataclass
class Run:
    """What the loop needs, built from the flags (``opt`` and ``teacher`` are ``None`` for ``--eval``)."""

    data: TrainingData
    model: nn.Module
    spec: tuple[str, dict[str, Any]]  # the model's name and the keyword arguments that rebuild it
    teacher: nn.Module | None
    opt: Optimization | None
    progress: Progress
    resumed_from: Path | None = None  # the checkpoint the run continues


def build_run(args: argparse.Namespace, processes: Processes, output_dir: Path | None) -> Run:
    """Seed, then build the data, the model, the teacher and the optimization, and resume them from
    ``--resume``'s checkpoint (read and checked before anything is built). ``--eval`` builds the
    model alone, with the checkpoint's weights."""
    path = resume_path(args, output_dir)
    checkpoint = read_resume_checkpoint(path, args) if path is not None else None
    random_seed(args.seed, processes.rank)
    data = build_training_data(args, processes)
    model, spec, init_record = build_model(args, data, processes.device)
    broadcast_module(model, processes)  # every rank starts from rank 0's weights, EMA copies included
    teacher = build_teacher(args, data, processes.device) if not args.eval else None
    opt = build_optimization(args, model, teacher, data, processes) if not args.eval else None
    progress = Progress(0, [], None, init_record)
    if checkpoint is not None:
        progress = resume(checkpoint, path, model, spec, opt, processes)
        progress.init_record = progress.init_record or init_record  # checkpoints of sws 0.1 lack it
        if opt is not None:
            processes.print(f"resumed from {path}: epoch {progress.start_epoch} of {args.epochs}")
    _announce(spec[0], model, progress.init_record, data, processes, opt)
    if opt is not None and args.eval_init and "top1" not in progress.init_record:
        stats = evaluate(model, data.val_loader, processes.device, opt.amp_dtype, processes)
        progress.init_record = {**progress.init_record, "top1": stats["top1"], "loss": stats["loss"]}
        processes.print(f"before training: top-1 {stats['top1']:.2f}%  loss {stats['loss']:.4f}")
    return Run(data, model, spec, teacher, opt, progress, resumed_from=path if checkpoint is not None else None)


def _evaluate_only(run: Run, args: argparse.Namespace, processes: Processes, output_dir: Path | None) -> TrainResult:
    """``--eval``: top-1, top-5 and loss of the model's weights; nothing is written."""
    amp_dtype = amp_dtype_for(args.amp, processes.device)
    stats = evaluate(run.model, run.data.val_loader, processes.device, amp_dtype, processes)
    processes.print(
        f"eval: top-1 {stats['top1']:.2f}%  top-5 {stats['top5']:.2f}%  loss {stats['loss']:.4f}  "
        f"{stats['images_per_sec']:.0f} img/s"
    )
    return TrainResult(run.model, run.progress.history, {"eval": stats}, output_dir)


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
) -> tuple[nn.Module, tuple[str, dict[str, Any]], dict[str, Any]]:
    """The model, initialized by ``--init`` / ``--load-gene`` / ``--finetune``; returns it with its
    name and rebuild arguments, and the initialization record."""
    name, model_kwargs = model_spec(args, data.spec.num_classes, data.spec.in_chans, data.input_size)
    model = create_model(name, drop_rate=args.drop, drop_path_rate=args.drop_path, **model_kwargs)
    options = InitOptions(
        load_gene=args.load_gene or None,
        layers_source=args.layers_source,
        ancestry=args.ancestry or None,
        inherit_layers=args.inherit_layers,
        new_head=args.new_head,
    )
    init_record = initialize_model(model, args.init, options, finetune=args.finetune or None)
    return model.to(device), (name, model_kwargs), init_record


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


def amp_dtype_for(choice: str, device: torch.device) -> torch.dtype | None:
    """``auto``: bfloat16 on GPUs that have it (no loss scaling, so no host sync per step), else
    float16; no autocast on the CPU."""
    if choice == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[choice]


def _wrap_for_training(model: nn.Module, args: argparse.Namespace, processes: Processes) -> nn.Module:
    """``torch.compile`` (``--compile``) and DDP around the model; checkpoints and evaluation use the
    plain model, which shares the weights."""
    train_model: nn.Module = torch.compile(model) if args.compile else model
    if processes.distributed:
        device = processes.device
        train_model = DistributedDataParallel(train_model, device_ids=[device.index] if device.type == "cuda" else None)
    return train_model


def _announce(
    name: str,
    model: nn.Module,
    init_record: dict[str, Any],
    data: TrainingData,
    processes: Processes,
    opt: Optimization | None,
) -> None:
    params = sum(p.numel() for p in model.parameters())
    where = "on the device" if data.on_device else "through a DataLoader"
    batch = f", global batch {opt.global_batch}, lr {opt.lr:.2e}" if opt is not None else ""
    processes.print(
        f"sws train: {name} ({params / 1e6:.2f}M params, init {init_record['method']}) on {data.spec.name} "
        f"({len(data.train_loader.dataset)} train / {len(data.val_loader.dataset)} val, {data.input_size}px, "
        f"{where}), {processes.world_size} process(es) on {processes.device}{batch}"
    )


def _summary(run: Run, args: argparse.Namespace) -> dict[str, Any]:
    """The run's ``summary.json``: what it trained, how well, and what it cost."""
    history, data = run.progress.history, run.data
    sample = (1, data.spec.in_chans, data.input_size, data.input_size)
    student_flops = forward_flops(unwrap_model(run.model), sample)
    teacher_flops = forward_flops(unwrap_model(run.teacher), sample) if run.teacher is not None else 0
    images = sum(r["train_images"] for r in history)
    return {
        "model": run.spec[0],
        "params": sum(p.numel() for p in run.model.parameters()),
        "init": run.progress.init_record,
        "data_set": data.spec.name,
        "epochs": len(history),
        "train_images": images,
        "forward_flops_per_image": student_flops,
        "teacher_forward_flops_per_image": teacher_flops,
        "train_flops": training_flops(student_flops, images, teacher_flops),
        "train_seconds": sum(r["epoch_seconds"] for r in history),  # resumed runs included
        "top1": [r["eval_top1"] for r in history],
        "final_top1": history[-1]["eval_top1"] if history else None,
        "best_top1": run.progress.best_top1,
        "distillation": args.distillation_type,
        "teacher": args.teacher_model or None,
    }


if __name__ == "__main__":
    sys.exit(main())
