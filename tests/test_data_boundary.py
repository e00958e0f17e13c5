"""Every input is checked where it enters: a bad data file, folder or size ends in one line that names
the file or flag, the value and what is allowed, never in a traceback from deep inside torch or PIL.

These tests use only names that sws had before the checks, so each one can be run against an older
checkout to watch it fail."""

from __future__ import annotations

import argparse
import gzip

import numpy as np
import pytest
import torch
from PIL import Image

from sws.data import build_datasets
from sws.distributed import Processes
from sws.errors import ConfigError, DataError
from sws.loaders import build_training_data
from tests.conftest import write_image_folder

CPU = Processes(torch.device("cpu"))


def write_idx(path, array: np.ndarray, type_code: int = 0x08, compress: bool = False) -> None:
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.tobytes()
    if compress:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)


def write_fashion(root, train_images=None, train_labels=None, train_type: int = 0x08):
    """Fashion-MNIST's four idx files, small and valid unless a training array is given."""
    rng = np.random.default_rng(0)
    labels = (np.arange(20) % 10).astype(np.uint8)
    images = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    write_idx(root / "train-images-idx3-ubyte", images if train_images is None else train_images, train_type)
    write_idx(root / "train-labels-idx1-ubyte", labels if train_labels is None else train_labels)
    write_idx(root / "t10k-images-idx3-ubyte", images[:10])
    write_idx(root / "t10k-labels-idx1-ubyte", labels[:10])
    return root


def one_line_error(call, *args, **kwargs) -> str:
    with pytest.raises(DataError) as raised:
        call(*args, **kwargs)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_fashion_mnist_labels_beyond_its_ten_classes_are_refused_by_file_and_value(tmp_path) -> None:
    labels = (np.arange(20) % 10).astype(np.uint8)
    labels[7] = 200
    message = one_line_error(build_datasets, "FASHION_MNIST", write_fashion(tmp_path, train_labels=labels), False)
    assert "train-labels-idx1-ubyte" in message and "200" in message and "0 to 9" in message


@pytest.mark.parametrize("shape", [(20, 784), (20, 28, 28, 1)], ids=["2-D", "4-D"])
def test_fashion_mnist_images_must_be_n_by_h_by_w(tmp_path, shape) -> None:
    images = np.zeros(shape, dtype=np.uint8)
    message = one_line_error(build_datasets, "FASHION_MNIST", write_fashion(tmp_path, train_images=images), False)
    assert "train-images-idx3-ubyte" in message and str(shape) in message and "3-D" in message


def test_fashion_mnist_labels_must_be_one_number_per_image(tmp_path) -> None:
    labels = np.zeros((20, 1), dtype=np.uint8)
    message = one_line_error(build_datasets, "FASHION_MNIST", write_fashion(tmp_path, train_labels=labels), False)
    assert "train-labels-idx1-ubyte" in message and "1-D" in message


def test_fashion_mnist_image_and_label_counts_must_agree(tmp_path) -> None:
    labels = (np.arange(15) % 10).astype(np.uint8)
    message = one_line_error(build_datasets, "FASHION_MNIST", write_fashion(tmp_path, train_labels=labels), False)
    assert "15 labels for 20 images" in message and "train-labels-idx1-ubyte" in message


def test_an_idx_file_of_floats_is_refused_naming_its_type_code(tmp_path) -> None:
    floats = np.zeros((20, 28, 28), dtype=np.float32)
    root = write_fashion(tmp_path, train_images=floats, train_type=0x0D)
    message = one_line_error(build_datasets, "FASHION_MNIST", root, False)
    assert "train-images-idx3-ubyte" in message and "0x0d" in message and "0x08" in message


def test_a_data_path_that_is_a_file_is_named_as_one(tmp_path) -> None:
    path = tmp_path / "fashion.tar"
    path.write_bytes(b"x")
    assert "is a file" in one_line_error(build_datasets, "FASHION_MNIST", path, False)
    assert "is a file" in one_line_error(build_datasets, "FOLDER", path)


def test_a_validation_class_the_training_set_lacks_is_refused(tmp_path) -> None:
    root = write_image_folder(tmp_path, train_per_class=2, val_per_class=1)
    (root / "val" / "purple").mkdir()
    Image.new("RGB", (16, 16)).save(root / "val" / "purple" / "000.png")
    message = one_line_error(build_datasets, "FOLDER", root)
    assert "purple" in message and str(root / "val") in message


def test_an_image_too_large_to_decode_safely_names_its_file(tmp_path, monkeypatch) -> None:
    root = write_image_folder(tmp_path, train_per_class=2, val_per_class=1)
    train, _, _ = build_datasets("FOLDER", root)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 16 * 16 // 4)  # PIL's decompression-bomb guard, at 2x this
    message = one_line_error(train.__getitem__, 0)
    assert "000.png" in message and "cannot read image" in message


def train_args(**flags) -> argparse.Namespace:
    """``sws train``'s data flags with the attribute names its parser gives them: MNIST5K, no augmentation."""
    values = {
        "data_set": "MNIST5K", "data_path": None, "num_classes": None, "holdout": None, "train_subset": None,
        "seed": 0, "input_size": None, "batch_size": 32, "eval": False, "repeated_aug": True,
        "color_jitter": 0.0, "aa": "none", "train_interpolation": "bicubic", "reprob": 0.0, "remode": "pixel",
        "recount": 1, "hflip": None, "eval_crop_ratio": 0.875, "crop_pad": None, "data_on_device": "auto",
        "num_workers": 0, "pin_mem": False,
    }  # fmt: skip
    return argparse.Namespace(**{**values, **flags})


@pytest.mark.parametrize("on_device", ["on", "off"])
def test_an_input_size_whose_batch_cannot_fit_in_memory_is_refused_before_anything_is_built(on_device) -> None:
    message = one_line_error(build_training_data, train_args(input_size=1_000_000, data_on_device=on_device), CPU)
    assert "--input-size 1000000" in message and "32 x 1 x 1000000 x 1000000 float32" in message
    assert "GiB available on cpu" in message and "--batch-size" in message


def test_synthetic_images_that_cannot_fit_in_memory_are_refused_before_allocation() -> None:
    message = one_line_error(build_datasets, "SYNTHETIC-1000000")
    assert "SYNTHETIC-1000000" in message and "GiB available" in message


def write_torchvision_mnist(root, count: int = 40):
    """torchvision's MNIST files (grey digits), so that timm's ``torch/mnist`` opens them offline."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split in ("train", "t10k"):
        write_idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (count, 28, 28), dtype=np.uint8))
        write_idx(raw / f"{split}-labels-idx1-ubyte", (np.arange(count) % 10).astype(np.uint8))
    return root


def test_grey_images_of_a_timm_data_set_are_served_in_rgb_and_train(tmp_path) -> None:
    args = train_args(data_set="torch/mnist", data_path=str(write_torchvision_mnist(tmp_path)), input_size=16)
    args.batch_size, args.data_on_device = 8, "off"  # the loader path: timm's transforms on each image
    data = build_training_data(args, CPU)
    assert data.spec.in_chans == 3
    images, labels = next(iter(data.train_loader))
    assert images.shape == (8, 3, 16, 16) and labels.shape == (8,)
    assert next(iter(data.val_loader))[0].shape[1:] == (3, 16, 16)


def test_fewer_classes_than_a_timm_data_set_lists_are_refused(tmp_path) -> None:
    message = one_line_error(build_datasets, "torch/mnist", write_torchvision_mnist(tmp_path), False, 5)
    assert "--num-classes 5" in message and "10 classes" in message


@pytest.mark.parametrize(
    ("flags", "start"),
    [
        ({"aa": "rand-x9"}, "--aa 'rand-x9' is not an augmentation timm reads"),
        ({"train_interpolation": "cubic", "input_size": 40}, "--train-interpolation 'cubic' is not one of timm's"),
        ({"remode": "gauss", "reprob": 0.5}, "--remode 'gauss' is not one of timm's random-erasing modes"),
    ],
)
def test_augmentation_flags_timm_cannot_read_are_refused_in_one_line(flags, start) -> None:
    with pytest.raises(ConfigError) as raised:
        build_training_data(train_args(**flags), CPU)
    assert str(raised.value).startswith(start) and "\n" not in str(raised.value)
