"""The data of a training run: data sets, transforms and loaders, chosen from ``sws train``'s flags.

Both paths read one :class:`~sws.augmentation.TransformPlan` (every decision of DeiT's recipe for this data)
and give the same batches (the same sampler, so the same images and labels in the same order,
sharded across processes the same way):

- **device-resident** (``sws.device_data``): a data set that fits is decoded once to uint8 on the
  training device and augmented there in whole batches (kornia), with no per-image work;
- **loader** (here): a torch ``DataLoader`` decoding and transforming image by image with timm's
  PIL transforms (:func:`build_transform`), with worker processes, pinned memory and non-blocking
  copies; the path for ImageNet-scale folders.

``--data-on-device auto`` (the default) takes the first when every process can hold both splits in a
quarter of its free device memory, every augmentation has a batched version, and, on a CPU, no
loader workers were asked for (they would overlap the data with the model on other cores); ``on``
insists (and says in one line why it cannot), ``off`` keeps the loader. Before either is built, an
input size whose batches cannot fit in memory is refused in one line (:func:`check_batches_fit`).

Example:
    >>> data = build_training_data(parse_args(["--data-set", "MNIST5K"]), Processes(torch.device("cpu")))
    >>> data.on_device
    True
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from timm.data import auto_augment as timm_aa
from timm.data.distributed_sampler import RepeatAugSampler
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from torchvision import transforms

from sws.augmentation import AugmentConfig, TransformPlan, timm_training_transform
from sws.data import DataSpec, build_datasets, check_memory
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
EVAL_BATCH_SCALE = 1.5  # DeiT evaluates in batches of 1.5 x --batch-size


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
    plan = TransformPlan.of(spec, augment_config(args, spec, input_size))
    val_batch = int(EVAL_BATCH_SCALE * args.batch_size)
    check_batches_fit(plan, args.batch_size, val_batch, processes.device)  # before any decode or transform
    check_not_empty(train_set, "training", args.batch_size, processes.world_size, drop_last=not args.eval)
    check_not_empty(val_set, "validation", 1, 1, drop_last=False)
    sampler = build_train_sampler(train_set, processes.world_size, processes.rank, args.seed, args.repeated_aug)
    shards = ShardSampler(len(val_set), processes.world_size, processes.rank)
    held = _hold_on_device(args, train_set, val_set, spec, plan, processes)
    if held is not None:
        train_images, val_images = held
        train_loader = DeviceLoader(train_images, sampler, args.batch_size, True, DeviceAugment(plan, True), args.seed)
        val_loader = DeviceLoader(val_images, shards, val_batch, False, DeviceAugment(plan, False), args.seed)
        return TrainingData(train_loader, val_loader, sampler, spec, input_size, on_device=True)
    train_set.transform = build_transform(plan, is_training=True)
    val_set.transform = build_transform(plan, is_training=False)
    workers = min(DEFAULT_WORKERS if args.num_workers is None else args.num_workers, os.cpu_count() or 1)
    pin = args.pin_mem and processes.device.type == "cuda"
    train_loader = build_loader(train_set, sampler, args.batch_size, workers, drop_last=True, pin_memory=pin)
    val_loader = build_loader(val_set, shards, val_batch, workers, drop_last=False, pin_memory=pin)
    return TrainingData(train_loader, val_loader, sampler, spec, input_size)


def check_batches_fit(plan: TransformPlan, batch_size: int, val_batch: int, device: torch.device) -> None:
    """Refuse in one line, before anything is decoded or allocated, an input size whose batches cannot fit in
    the memory available (:func:`sws.cost.available_memory`: the host's, and a GPU's too): one batch as float32,
    B x C x S x S x 4 bytes, plus the uint8 batch that a resize to R px makes first, B x C x R x R bytes.

    >>> check_batches_fit(plan, 64, 96, torch.device("cpu"))  # None, or a DataError saying what and how much
    """
    devices = ["cpu", device] if device.type == "cuda" else ["cpu"]
    train_resize = plan.size if plan.crop_padding is None else plan.train_resize  # a random resized crop resizes
    for what, count, resize in (("training", batch_size, train_resize), ("evaluation", val_batch, plan.eval_resize)):
        nbytes = count * plan.in_chans * (4 * plan.size**2 + (resize or 0) ** 2)
        after = f", after a uint8 resize to {resize} px" if resize else ""
        batch = f"one {what} batch ({count} x {plan.in_chans} x {plan.size} x {plan.size} float32{after})"
        check_memory(nbytes, f"--input-size {plan.size}: {batch}", "lower --input-size or --batch-size", devices)


def _hold_on_device(
    args: argparse.Namespace,
    train_set: Dataset,
    val_set: Dataset,
    spec: DataSpec,
    plan: TransformPlan,
    processes: Processes,
) -> tuple[DeviceImages, DeviceImages] | None:
    """Both splits decoded on the device, or ``None`` for the loader path (see the module docstring).
    Every process decides alike: if one cannot hold the data, none does."""
    mode, device = args.data_on_device, processes.device
    if mode == "off" or (mode == "auto" and device.type == "cpu" and (args.num_workers or 0) > 0):
        return None
    held, reason, failure = None, "", None
    try:
        DeviceAugment(plan, is_training=True)  # settings without a batched version, before decoding
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


# ----------------------------------------------------------------------------------------------------------
# Subsets


def stratified_subset(labels: np.ndarray, size: int, seed: int = 0, flag: str = "--train-subset") -> np.ndarray:
    """``size`` indices with every class in its share (rounded), in a seeded choice, sorted."""
    if not 1 <= size < len(labels) + (flag == "--train-subset"):
        raise DataError(f"{flag} must be between 1 and the {len(labels)} training images, not {size}")
    rng = np.random.RandomState(seed)
    classes, counts = np.unique(labels, return_counts=True)
    shares = np.floor(counts * size / len(labels)).astype(int)
    for i in np.argsort(-(counts * size / len(labels) - shares))[: size - shares.sum()]:
        shares[i] += 1  # largest remainders first, so that the shares add up to size
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:share] for c, share in zip(classes, shares, strict=True)]
    return np.sort(np.concatenate(chosen))


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


# ----------------------------------------------------------------------------------------------------------
# The loader path: timm's PIL transforms, image by image, in a DataLoader

BICUBIC = transforms.InterpolationMode.BICUBIC


def build_transform(plan: TransformPlan, is_training: bool) -> Callable:
    """The plan as PIL transforms: timm's ``create_transform`` for training, its random resized crop replaced
    by the plan's padded crop on small images; a resize and centre crop (where the plan has them) for evaluation.

    >>> build_transform(TransformPlan.of(spec, AugmentConfig(28)), is_training=True)(image).shape
    torch.Size([1, 28, 28])
    """
    if not is_training:
        steps: list[Callable] = []
        if plan.eval_resize is not None:
            steps += [transforms.Resize(plan.eval_resize, interpolation=BICUBIC), transforms.CenterCrop(plan.size)]
        return transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize(plan.mean, plan.std)])
    transform = timm_training_transform(plan)
    if plan.crop_padding is not None:
        crop: list[Callable] = []
        if plan.crop_padding:
            crop.append(transforms.RandomCrop(plan.size, padding=plan.crop_padding))
        if plan.train_resize is not None:
            crop.insert(0, transforms.Resize(plan.train_resize, interpolation=BICUBIC))
        transform.transforms[0:1] = crop
    return make_pillow_safe(transform)


def posterize(image: Image.Image, bits_to_keep: int, **_: Any) -> Image.Image:
    """timm's posterize with its strongest setting kept working: Pillow 13 refuses to keep 0 bits,
    which older Pillow turned into a black image (every bit masked off); this does the same."""
    if bits_to_keep >= 8:
        return image
    if bits_to_keep <= 0:
        return Image.new(image.mode, image.size)  # all zeros: black, as masking off all bits gave
    return ImageOps.posterize(image, bits_to_keep)


def make_pillow_safe(transform: Any) -> Any:
    """Give the posterize ops of a timm transform's RandAugment / AutoAugment / AugMix the
    ``posterize`` above (in this transform only; timm itself is not changed)."""
    for step in getattr(transform, "transforms", []):
        for op in _augment_ops(step):
            if op.aug_fn is timm_aa.posterize:
                op.aug_fn = posterize
    return transform


def _augment_ops(step: Any) -> Iterable[Any]:
    ops = getattr(step, "ops", None)  # RandAugment, AugMixAugment
    if ops is not None:
        yield from ops
    for sub_policy in getattr(step, "policy", None) or []:  # AutoAugment
        yield from sub_policy


class ShardSampler(Sampler[int]):
    """Rank ``r`` of ``n`` evaluates samples ``r, r+n, ...``: every sample exactly once across ranks
    (unlike ``DistributedSampler``, which pads with repeats)."""

    def __init__(self, length: int, num_replicas: int, rank: int) -> None:
        self.indices = list(range(rank, length, num_replicas))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def build_train_sampler(dataset: Dataset, world_size: int, rank: int, seed: int, repeated_aug: bool) -> Sampler[int]:
    """DeiT's choice: repeated augmentation (3 repeats) across processes when asked and distributed,
    else a seeded shuffle split across processes (one process is the case ``world_size == 1``)."""
    if repeated_aug and world_size > 1:
        return RepeatAugSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True)
    return DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=False)


def build_loader(
    dataset: Dataset,
    sampler: Sampler[int],
    batch_size: int,
    num_workers: int,
    drop_last: bool,
    pin_memory: bool = False,
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=drop_last,
        persistent_workers=False,
    )


def check_not_empty(dataset: Dataset, what: str, batch_size: int, world_size: int, drop_last: bool) -> None:
    if len(dataset) == 0:
        raise DataError(f"the {what} set is empty; check --data-path")
    if drop_last and len(dataset) < batch_size * world_size:
        raise DataError(
            f"the {what} set has {len(dataset)} images, fewer than one batch ({batch_size} x {world_size} processes); "
            "lower --batch-size"
        )


__all__ = [
    "ShardSampler",
    "TrainingData",
    "augment_config",
    "build_loader",
    "build_train_sampler",
    "build_training_data",
    "build_transform",
    "check_batches_fit",
    "make_pillow_safe",
    "posterize",
    "stratified_subset",
]
