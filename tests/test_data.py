"""Data: DeiT's augmentation runs on the installed Pillow, Fashion-MNIST's idx files, subsets, and the
flag values timm takes."""

from __future__ import annotations

import gzip
import random

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import auto_augment, create_transform
from timm.data.random_erasing import RandomErasing

from sws.augmentation import (
    RANDOM_ERASING_MODES,
    AugmentConfig,
    TransformPlan,
    check_auto_augment,
    check_random_erasing_mode,
    check_train_interpolation,
    train_interpolations,
)
from sws.data import DataSpec, build_datasets, read_idx
from sws.errors import ConfigError, DataError
from sws.loaders import build_transform, make_pillow_safe, posterize, stratified_subset

GRAY = DataSpec("gray", 10, 1, 28, (0.5,), (0.25,), hflip=0.0)
RGB = DataSpec("rgb", 3, 3, 32, hflip=0.5)


def _images(mode: str, count: int = 4, size: int = 28) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    channels = 3 if mode == "RGB" else 1
    return [
        Image.fromarray(
            rng.integers(0, 256, (size, size, channels), dtype=np.uint8).squeeze(-1 if channels == 1 else ())
        )
        for _ in range(count)
    ]


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("name", sorted(auto_augment.NAME_TO_OP))
def test_every_augment_op_works_at_its_extreme_magnitudes_on_the_installed_pillow(name, mode) -> None:
    hparams = {**auto_augment._HPARAMS_DEFAULT, "img_mean": 128 if mode == "L" else (124, 116, 104)}
    for magnitude in (0, 10):
        op = auto_augment.AugmentOp(name, prob=1.0, magnitude=magnitude, hparams=hparams)
        policy = auto_augment.RandAugment([op], num_layers=1)
        make_pillow_safe(type("Pipeline", (), {"transforms": [policy]})())
        for image in _images(mode, 2):
            for sign in range(4):  # the random sign of signed ops, and the random interpolation
                random.seed(sign)
                out = policy(image.convert(mode))
                assert out.size == image.size and out.mode == mode


def test_posterize_to_zero_bits_gives_a_black_image_as_older_pillow_did() -> None:
    image = _images("RGB", 1)[0]
    assert not np.asarray(posterize(image, 0)).any()
    assert np.array_equal(np.asarray(posterize(image, 8)), np.asarray(image))
    assert np.array_equal(np.asarray(posterize(image, 4)), np.asarray(image) & 0xF0)


@pytest.mark.parametrize("spec", [GRAY, RGB], ids=["gray", "rgb"])
def test_deits_default_randaugment_runs_over_many_images(spec) -> None:
    """The recipe that crashed in its first epoch with Pillow 13 (posterize keeping 0 bits)."""
    config = AugmentConfig(input_size=spec.native_size, auto_augment="rand-m9-mstd0.5-inc1", reprob=0.25)
    transform = build_transform(TransformPlan.of(spec, config), is_training=True)
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    mode = "L" if spec.in_chans == 1 else "RGB"
    zero_bit_posterizes = 0
    original = posterize

    def counting(image, bits, **kwargs):
        nonlocal zero_bit_posterizes
        zero_bit_posterizes += bits <= 0
        return original(image, bits, **kwargs)

    for step in transform.transforms:
        for op in getattr(step, "ops", []):
            if op.aug_fn is posterize:
                op.aug_fn = counting
    for image in _images(mode, 1500, spec.native_size):
        out = transform(image)
        assert out.shape == (spec.in_chans, spec.native_size, spec.native_size) and torch.isfinite(out).all()
    assert zero_bit_posterizes > 0  # the case that crashed did come up, and passed


def _write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)


def write_fashion_mnist(root, train: int = 60, val: int = 20, layout: str = "flat", compress: bool = True):
    """Fashion-MNIST's four idx files with generated images (flat, or torchvision's FashionMNIST/raw)."""
    folder = root / "FashionMNIST" / "raw" if layout == "torchvision" else root
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("t10k", val)):
        labels = np.arange(count) % 10
        images = rng.integers(0, 256, (count, 28, 28)) // 4 + labels[:, None, None] * 16
        _write_idx(folder / f"{split}-images-idx3-ubyte", images, compress)
        _write_idx(folder / f"{split}-labels-idx1-ubyte", labels, compress)
    return root


@pytest.mark.parametrize(("layout", "compress"), [("flat", True), ("torchvision", False)])
def test_fashion_mnist_reads_the_original_idx_files(tmp_path, layout, compress) -> None:
    root = write_fashion_mnist(tmp_path, layout=layout, compress=compress)
    train, val, spec = build_datasets("FASHION_MNIST", root, download=False)
    assert (len(train), len(val), spec.num_classes, spec.in_chans, spec.native_size) == (60, 20, 10, 1, 28)
    assert spec.class_names[0] == "T-shirt/top" and spec.class_names[9] == "Ankle boot"
    image, label = train[13]
    assert image.size == (28, 28) and label == 3
    assert train.images.flags.writeable  # torch warns on (and may not write) tensors over read-only memory


def test_missing_fashion_mnist_names_both_ways_to_get_it(tmp_path) -> None:
    with pytest.raises(DataError) as raised:
        build_datasets("FASHION_MNIST", tmp_path, download=False)
    message = str(raised.value)
    assert "apt-get install dataset-fashion-mnist" in message and "download=True" in message
    assert "\n" not in message


def test_a_damaged_idx_file_is_refused(tmp_path) -> None:
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\0" * 100)
    with pytest.raises(DataError, match="header says"):
        read_idx(path)


def test_a_stratified_subset_keeps_every_class_in_its_share() -> None:
    labels = np.repeat(np.arange(10), [100, 200, 50, 50, 100, 100, 100, 100, 100, 100])
    chosen = stratified_subset(labels, 90, seed=3)
    assert len(chosen) == 90 and len(set(chosen)) == 90
    counts = np.bincount(labels[chosen], minlength=10)
    assert counts[1] == 2 * counts[0] and abs(counts[2] - 4.5) <= 1
    assert np.array_equal(chosen, stratified_subset(labels, 90, seed=3))
    assert not np.array_equal(chosen, stratified_subset(labels, 90, seed=4))
    with pytest.raises(DataError, match="--train-subset"):
        stratified_subset(labels, 0)


@pytest.mark.parametrize(
    "text", ["rand-m9-mstd0.5-inc1", "rand-n3-m7-mstd101-mmax12-p0.7", "rand-tweights", "augmix-m5-w4-d2", "v0", "3a"]
)
def test_every_augmentation_timm_parses_passes_the_aa_check(text) -> None:
    assert check_auto_augment(text) == text
    assert check_auto_augment("none") is None and check_auto_augment("") is None and check_auto_augment(None) is None


@pytest.mark.parametrize("text", ["rand-x9", "rand-m9.5", "randaugment-m9", "augmix-z3", "original-n2"])
def test_what_timm_cannot_parse_is_refused_by_the_aa_check_in_one_line(text) -> None:
    with pytest.raises(ConfigError) as raised:
        check_auto_augment(text)
    message = str(raised.value)
    assert message.startswith(f"--aa {text!r}") and "rand-m9-mstd0.5-inc1" in message and "\n" not in message


def test_the_interpolations_are_those_timms_training_transform_takes() -> None:
    names = train_interpolations()
    assert {"random", "nearest", "bilinear", "bicubic", "box", "hamming", "lanczos"} == set(names)
    for name in names:
        create_transform(input_size=16, is_training=True, interpolation=name, auto_augment="rand-m9")
        assert check_train_interpolation(name) == name
    with pytest.raises(KeyError):  # a torchvision mode timm has no name for
        create_transform(input_size=16, is_training=True, interpolation="nearest-exact")
    with pytest.raises(ConfigError, match="--train-interpolation 'nearest-exact' is not one of timm's random, "):
        check_train_interpolation("nearest-exact")


def test_the_random_erasing_modes_are_those_timms_random_erasing_takes() -> None:
    for mode in RANDOM_ERASING_MODES:
        RandomErasing(mode=mode.upper(), device="cpu")
        assert check_random_erasing_mode(mode.upper()) == mode
    with pytest.raises(AssertionError):
        RandomErasing(mode="gauss", device="cpu")
    with pytest.raises(ConfigError, match="--remode 'gauss' is not one of timm's random-erasing modes: pixel, rand"):
        check_random_erasing_mode("gauss")
