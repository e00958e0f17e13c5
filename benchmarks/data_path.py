"""Training-data throughput: the DataLoader path (PIL, one image at a time) against the device path
(:mod:`sws.device_data`, batches augmented on the device), data time only, no model.

MNIST5K at 28 px, batch 128, one epoch of 4,000 images per repeat, the two paths alternating inside
one process; medians over repeats. Two recipes: the study's default (padded random crop, pad 1,
nothing else) and DeiT's full recipe (RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25, colour
jitter 0.3, which timm drops under RandAugment; flip 0.5, pad 4).

    OMP_NUM_THREADS=1 python benchmarks/data_path.py [--repeats 5] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterable

import torch

from sws.augmentation import AugmentConfig, TransformPlan
from sws.data import build_datasets
from sws.device_data import DeviceAugment, DeviceLoader, decode_to_device
from sws.loaders import build_loader, build_train_sampler, build_transform

RECIPES = {
    "study default (pad-1 crop)": AugmentConfig(
        28, color_jitter=0.0, auto_augment=None, reprob=0.0, hflip=0.0, crop_padding=1
    ),
    "DeiT full (RandAugment, erasing, jitter)": AugmentConfig(28),
}


def epoch_seconds(batches: Iterable, device: torch.device) -> float:
    start = time.perf_counter()
    for images, _ in batches:
        images = images.to(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    train_set, _, spec = build_datasets("MNIST5K")
    data = decode_to_device(train_set, spec, device, max_bytes=2**30)
    sampler = build_train_sampler(train_set, world_size=1, rank=0, seed=0, repeated_aug=False)
    print(f"MNIST5K, {len(train_set)} images at 28 px, batch {args.batch_size}, {args.threads} thread(s), {device}")
    for name, aug in RECIPES.items():
        plan = TransformPlan.of(spec, aug)
        train_set.transform = build_transform(plan, is_training=True)
        loader = build_loader(train_set, sampler, args.batch_size, num_workers=0, drop_last=True)
        on_device = DeviceLoader(data, sampler, args.batch_size, True, DeviceAugment(plan, True), seed=0)
        images = len(loader) * args.batch_size
        epoch_seconds(on_device, device)  # warm-up: kornia's first calls, allocator
        times: dict[str, list[float]] = {"DataLoader": [], "device": []}
        for repeat in range(args.repeats):
            sampler.set_epoch(repeat)
            times["DataLoader"].append(epoch_seconds(loader, device))
            times["device"].append(epoch_seconds(on_device, device))
        rates = {path: images / statistics.median(seconds) for path, seconds in times.items()}
        print(
            f"{name:42s} DataLoader {rates['DataLoader']:9.0f} img/s   device {rates['device']:9.0f} img/s   "
            f"x{rates['device'] / rates['DataLoader']:.1f}"
        )


if __name__ == "__main__":
    main()
