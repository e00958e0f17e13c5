"""One epoch of training and one evaluation pass, on explicit objects (DeiT's ``engine.py``).

``train_one_epoch`` takes a model, a loader and an ``Optimization`` (the optimizer, schedule, loss,
mixup, EMA and autocast of a run) and returns the epoch's figures; ``evaluate`` returns top-1, top-5
and loss. Neither reads flags: ``sws.train`` builds the objects from them and calls both once per
epoch, so that one batch can be followed from the loader to the optimizer step here.

Example:
    >>> stats = train_one_epoch(model, data.train_loader, opt, epoch=0, processes=Processes(device))
    >>> evaluate(model, data.val_loader, device, opt.amp_dtype, Processes(device))["top1"]
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from timm.data import Mixup
from timm.utils import ModelEmaV3, unwrap_model

from sws.distill import DistillationLoss
from sws.distributed import Processes, all_reduce_min, all_reduce_sum
from sws.errors import TrainingError
from sws.progress import EpochProgress


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


def accumulator_dtype(device: torch.device) -> torch.dtype:
    """float64 for sums over an epoch (float32 drifts over ImageNet's million images), except on
    Apple's MPS, which has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


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
        opt.ema.update(unwrap_model(model))  # the plain model's weights, without DDP's or compile's wrapper
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
