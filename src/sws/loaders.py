"""The data of a training run: data sets, transforms and loaders, chosen from ``sws train``'s flags.

Two paths give the same batches (the same sampler, so the same images and labels in the same order,
sharded across processes the same way):

- **device-resident** (``sws.device_data``): a data set that fits is decoded once to uint8 on the
  training device and augmented there in whole batches (kornia), with no per-image work;
- **loader**: a torch ``DataLoader`` decoding and transforming image by image with timm's
  transforms (``sws.data``), with worker processes, pinned memory and non-blocking copies; the path
  for ImageNet-scale folders.

``--data-on-device auto`` (the default) takes the first when every process can hold both splits in a
quarter of its free device memory, every augmentation has a batched version, and, on a CPU, no
loader workers were asked for (they would overlap the data with the model on other cores); ``on``
insists (and says in one line why it cannot), ``off`` keeps the loader.

Example:
    >>> data = build_training_data(parse_args(["--data-set", "MNIST5K"]), Processes(torch.device("cpu")))
    >>> data.on_device
    True
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from sws.data import (
    AugmentConfig,
    DataSpec,
    ShardSampler,
    build_datasets,
    build_loader,
    build_train_sampler,
    build_transform,
    check_not_empty,
    stratified_subset,
)
from sws.device_data import (
    DeviceAugment,
    DeviceDataRefused,
    DeviceImages,
    DeviceLoader,
    decode_to_device,
    device_memory_budget,
)
from sws.distributed import Processes, all_reduce_min
from sws.errors import DataError

DEFAULT_WORKERS = 10  # DeiT's --num_workers, for the DataLoader path


@dataclass
class TrainingData:
    """The loaders of a training run (torch ``DataLoader``s, or ``DeviceLoader``s) and what they hold."""

    train_loader: Any
    val_loader: Any
    train_sampler: Any
    spec: DataSpec
    input_size: int
    on_device: bool = False


def augment_config(args: argparse.Namespace, spec: DataSpec, input_size: int) -> AugmentConfig:
    """DeiT's augmentation flags of ``sws train``, with the data's own flip rule by default."""
    return AugmentConfig(
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


def build_training_data(args: argparse.Namespace, processes: Processes) -> TrainingData:
    """The data sets of ``sws train``'s flags, DeiT's transforms, and the loaders: training sharded
    across processes (with DeiT's repeated augmentation when asked), evaluation sharded without
    repeats; on the device when ``--data-on-device`` allows."""
    train_set, val_set, spec = build_datasets(args.data_set, args.data_path, num_classes=args.num_classes)
    if args.holdout:
        train_set, val_set = _hold_out(train_set, args.holdout)
    if args.train_subset:
        train_set = _subset(train_set, args.train_subset, args.seed)
    input_size = args.input_size or spec.native_size or 224
    aug = augment_config(args, spec, input_size)
    check_not_empty(train_set, "training", args.batch_size, processes.world_size, drop_last=not args.eval)
    check_not_empty(val_set, "validation", 1, 1, drop_last=False)
    sampler = build_train_sampler(train_set, processes.world_size, processes.rank, args.seed, args.repeated_aug)
    shards = ShardSampler(len(val_set), processes.world_size, processes.rank)
    val_batch = int(1.5 * args.batch_size)
    held = _hold_on_device(args, train_set, val_set, spec, aug, processes)
    if held is not None:
        train_images, val_images = held
        train_loader = DeviceLoader(
            train_images, sampler, args.batch_size, True, DeviceAugment(spec, aug, True), args.seed
        )
        val_loader = DeviceLoader(val_images, shards, val_batch, False, DeviceAugment(spec, aug, False), args.seed)
        return TrainingData(train_loader, val_loader, sampler, spec, input_size, on_device=True)
    train_set.transform = build_transform(True, spec, aug)
    val_set.transform = build_transform(False, spec, aug)
    workers = min(DEFAULT_WORKERS if args.num_workers is None else args.num_workers, os.cpu_count() or 1)
    pin = args.pin_mem and processes.device.type == "cuda"
    train_loader = build_loader(train_set, sampler, args.batch_size, workers, drop_last=True, pin_memory=pin)
    val_loader = build_loader(val_set, shards, val_batch, workers, drop_last=False, pin_memory=pin)
    return TrainingData(train_loader, val_loader, sampler, spec, input_size)


def _hold_on_device(
    args: argparse.Namespace,
    train_set: Dataset,
    val_set: Dataset,
    spec: DataSpec,
    aug: AugmentConfig,
    processes: Processes,
) -> tuple[DeviceImages, DeviceImages] | None:
    """Both splits decoded on the device, or ``None`` for the loader path (see the module docstring).
    Every process decides alike: if one cannot hold the data, none does."""
    mode, device = args.data_on_device, processes.device
    if mode == "off" or (mode == "auto" and device.type == "cpu" and (args.num_workers or 0) > 0):
        return None
    held, reason, failure = None, "", None
    try:
        DeviceAugment(spec, aug, is_training=True)  # settings without a batched version, before decoding
        budget = device_memory_budget(device)
        train = decode_to_device(train_set, spec, device, budget)
        held = train, decode_to_device(val_set, spec, device, budget - train.nbytes)
    except DeviceDataRefused as why:
        reason = str(why)
    except Exception as error:  # raised below, after every process has had its say
        failure = error
    everyone = int(all_reduce_min(torch.tensor(int(held is not None)), processes).item())
    if failure is not None:  # a bad image or a full device: every process stops, none hangs
        raise failure
    if everyone:
        return held
    reason = reason or "another process cannot hold the data"
    if mode == "on":
        raise DeviceDataRefused(f"--data-on-device on: {reason}; use --data-on-device auto or off")
    processes.print(f"sws train: data through the DataLoader ({reason})")
    return None


def _subset(dataset: Dataset, size: int, seed: int) -> Dataset:
    if not hasattr(dataset, "subset"):
        raise DataError("--train-subset needs a data set that lists its labels (built-in, idx or ImageFolder data)")
    return dataset.subset(stratified_subset(dataset.labels, size, seed))


def _hold_out(dataset: Dataset, size: int) -> tuple[Dataset, Dataset]:
    """``--holdout N``: a fixed, stratified ``N`` training images become the validation set (for
    tuning a recipe without ever looking at the real validation split), the rest the training set."""
    if not hasattr(dataset, "subset"):
        raise DataError("--holdout needs a data set that lists its labels (built-in, idx or ImageFolder data)")
    held = stratified_subset(dataset.labels, size, seed=12345, flag="--holdout")  # the same images in every run
    rest = np.setdiff1d(np.arange(len(dataset)), held)
    return dataset.subset(rest), dataset.subset(held)


__all__ = ["TrainingData", "augment_config", "build_training_data"]
