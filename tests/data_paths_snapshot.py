"""Seeded batches of both data paths, saved, to compare two checkouts bit for bit (not a pytest module).

For several recipes (the study's default on MNIST5K; DeiT's full recipe and other RandAugment strings on
an RGB ImageFolder at 32, 40 and 48 px), it saves three seeded training batches of two epochs from the
loader path (timm's PIL transforms) and the device path (kornia), one direct call of the device
augmentation, and one evaluation batch of each path::

    PYTHONPATH=/work/baseline/src python tests/data_paths_snapshot.py capture before.pt   # sws f7183e9
    PYTHONPATH=src python tests/data_paths_snapshot.py capture after.pt
    python tests/data_paths_snapshot.py compare before.pt after.pt   # torch.equal on every tensor

It runs on sws before the transform plan (f7183e9) and after it.
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import sws.data as data
import sws.device_data as device_data
from sws.augmentation import AugmentConfig
from sws.data import build_datasets

try:  # sws after the transform plan: the loader path lives in sws.loaders
    from sws.loaders import ShardSampler, build_loader, build_train_sampler, build_transform
except ImportError:  # sws f7183e9
    from sws.data import ShardSampler, build_loader, build_train_sampler, build_transform  # type: ignore

sys.path.insert(0, str(Path(__file__).parents[1]))
from tests.conftest import write_image_folder

CPU = torch.device("cpu")
DEIT = {"color_jitter": 0.3, "auto_augment": "rand-m9-mstd0.5-inc1", "reprob": 0.25}
RANDAUGMENTS = ("rand-m9-n3-mstd0.5", "rand-m7-mstd101-inc1", "rand-m10-p0.7-mmax12", "rand-n1-m5")


def _transforms(spec, aug):
    """(training or evaluation) -> the loader path's transform, and the device path's, in either API."""
    if hasattr(data, "TransformPlan"):
        plan = data.TransformPlan.of(spec, aug)
        return (lambda training: build_transform(plan, training)), (
            lambda training: device_data.DeviceAugment(plan, training)
        )
    return (lambda training: build_transform(training, spec, aug)), (
        lambda training: device_data.DeviceAugment(spec, aug, training)
    )


def _capture(name, train, val, spec, aug, out, batch=16, batches=3) -> None:
    pil, device = _transforms(spec, aug)
    sampler = build_train_sampler(train, world_size=1, rank=0, seed=7, repeated_aug=False)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        train.transform = pil(True)
        random.seed(epoch), np.random.seed(epoch), torch.manual_seed(epoch)
        pil_loader = build_loader(train, sampler, batch, 0, drop_last=True)
        for step, (images, labels) in zip(range(batches), pil_loader, strict=False):
            out[f"{name}/pil/train/e{epoch}/b{step}"], out[f"{name}/pil/labels/e{epoch}/b{step}"] = images, labels
        train.transform = None
        held = device_data.decode_to_device(train, spec, CPU, 2**30)
        loader = device_data.DeviceLoader(held, sampler, batch, True, device(True), seed=3)
        for step, (images, labels) in zip(range(batches), loader, strict=False):
            out[f"{name}/device/train/e{epoch}/b{step}"], out[f"{name}/device/labels/e{epoch}/b{step}"] = images, labels
    torch.manual_seed(11)
    out[f"{name}/device/train/direct"] = device(True)(held.images[:batch])
    val.transform = pil(False)
    out[f"{name}/pil/eval"] = next(iter(build_loader(val, ShardSampler(len(val), 1, 0), 24, 0, drop_last=False)))[0]
    val.transform = None
    out[f"{name}/device/eval"] = device(False)(device_data.decode_to_device(val, spec, CPU, 2**30).images[:24])


def capture(path: str) -> None:
    torch.set_num_threads(1)
    out: dict[str, torch.Tensor] = {}
    train, val, spec = build_datasets("MNIST5K")
    train = train.subset(np.arange(400))
    study = AugmentConfig(28, color_jitter=0.0, auto_augment=None, reprob=0.0, hflip=0.0, crop_padding=1)
    _capture("mnist5k-study", train, val, spec, study, out)
    _capture("mnist5k-jitter", train, val, spec, AugmentConfig(28, auto_augment=None, hflip=0.0), out)
    _capture("mnist5k-deit", train, val, spec, AugmentConfig(28, hflip=0.0), out)
    _capture("mnist5k-deit-32", train, val, spec, AugmentConfig(32, hflip=0.0, remode="rand"), out)
    with tempfile.TemporaryDirectory() as folder:
        train, val, spec = build_datasets(
            "FOLDER", write_image_folder(folder, train_per_class=16, val_per_class=8, size=36, seed=1)
        )
        for size in (32, 40):
            _capture(f"folder-deit-{size}", train, val, spec, AugmentConfig(size, **DEIT), out)
        for config in RANDAUGMENTS:
            _capture(
                f"folder-{config}-40", train, val, spec, AugmentConfig(40, auto_augment=config, remode="const"), out
            )
            aug = AugmentConfig(32, auto_augment=config, interpolation="bilinear")
            _capture(f"folder-{config}-32", train, val, spec, aug, out)
        aug = AugmentConfig(48, auto_augment=None, interpolation="bilinear")
        _capture("folder-jitter-48", train, val, spec, aug, out)
    torch.save(out, path)
    print(f"{len(out)} tensors saved to {path}")


def compare(before_path: str, after_path: str) -> int:
    before, after = torch.load(before_path), torch.load(after_path)
    if before.keys() != after.keys():
        print(f"the snapshots hold other tensors: {sorted(set(before) ^ set(after))}")
        return 1
    differ = [
        key for key in before if not (before[key].dtype == after[key].dtype and torch.equal(before[key], after[key]))
    ]
    print(f"{len(before)} tensors compared with torch.equal: {len(differ)} differ {differ[:10]}")
    return 1 if differ else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["capture"] and len(sys.argv) == 3:
        capture(sys.argv[2])
    elif sys.argv[1:2] == ["compare"] and len(sys.argv) == 4:
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
