"""Device-resident data: decode a split once to uint8 on the training device, augment it there in batches.

The loader path (:mod:`sws.data`) decodes and transforms every image one by one in PIL, every epoch,
which dominates training on small images. When a split fits in memory and its images share one
size, this module holds it as one ``uint8 (N, C, H, W)`` tensor on the device and applies DeiT's
transforms to whole batches there, each image drawing its own random parameters (kornia). It takes
the *same sampler object* as the loader path, so batches have the same images and labels in the
same order, sharded across processes the same way::

    train = decode_to_device(train_set, spec, device, max_bytes=device_memory_budget(device))
    loader = DeviceLoader(train, sampler, 128, drop_last=True, augment=DeviceAugment(spec, aug, True), seed=0)
    for images, targets in loader: ...   # float (B, C, S, S) normalized, int64 (B,), both on `device`

``decode_to_device`` raises :class:`DeviceDataRefused` (a :class:`~sws.errors.DataError`) whose
message says in one line why a split cannot live on the device (too many bytes, images of different
sizes, an unsupported image mode); :class:`DeviceAugment` raises it for settings it cannot batch.
A caller in ``auto`` mode falls back to the loader path; in ``on`` mode it reports the message.

**Randomness.** :class:`DeviceAugment` draws from torch's global random generators (CPU for kornia's
parameters, the device for noise). :class:`DeviceLoader` runs it inside :func:`torch.random.fork_rng`
with the generators seeded from ``(seed, epoch, rank, batch index)``: an epoch's augmentation
depends on nothing else (not on the model, its initialization or dropout), so the same seed gives
identical batches, a resumed run continues exactly even under DDP, and two models compared on the
same seed see the same augmented images. The training loop's own random state is left untouched.

**Evaluation** uses torchvision's tensor functions (the library of the loader path) and matches the
loader path exactly where no resize happens (the built-in data: ``ToTensor`` then ``Normalize``,
the same float operations). Where it resizes, both use an antialiased bicubic filter rounded to
uint8, but torch's and PIL's arithmetic differ: under 1% of pixels differ, by at most 2/255 in [0, 1]
(2/255/std after normalization; tested), on the built-in and test data.

**Training** follows timm's ``create_transform`` as :func:`sws.data.build_transform` configures it
(padded random crop at 32 px or less, random resized crop above; flip; RandAugment, or colour jitter
when RandAugment is off; normalize; random erasing). Differences from the loader path:

=================  ==========================================  ============================================
op                 timm / torchvision (loader path)            here (kornia, batched)
=================  ==========================================  ============================================
all ops            PIL, rounds to uint8 after every op         float in [0, 1] throughout, rounded nowhere
RandomCrop (pad)   zero pad, integer offset in [0, 2p]         same (``K.RandomCrop``, slice mode): exact
RandomResizedCrop  ``interpolation``, antialiased (PIL)        ``K.RandomResizedCrop``, no antialias when
                                                               shrinking; ``random`` interpolation refused
ColorJitter        per image: random order of b/c/s            kornia ``ColorJitter`` (torchvision formulas)
                                                               draws one order per batch
RandAugment        per image: ``n`` ops, with replacement,     the same, per image: kornia's RandAugment
ops choice         each applied with probability ``p``         draws one op set per call, so
                                                               ``TimmRandAugment`` runs each kornia op on
                                                               the images that chose it
RA magnitude       level ~ N(m, mstd) per image and op,        the same level per image and op, mapped to
                   clipped to [0, mmax=10]                     kornia's arguments by timm's level-to-arg
                                                               formulas (kornia's own: one fixed m for all)
RA fill/resample   geometric ops fill with the mean colour,    fill 0 (black), bilinear
                   ``interpolation`` (bicubic)
RA Shear           PIL affine about the top-left corner,       kornia shears about the centre by the same
                   factor 0.3 * level/10                       factor (angle atan(factor))
RA SolarizeAdd     adds to pixels < 0.5 only, others kept      kornia adds to every pixel, clamps, then
                                                               inverts pixels >= 0.5 (threshold fixed here)
RA Brightness      PIL: multiplies by the factor               kornia: adds factor - 1
RA Contrast        PIL: blends with the mean grey              kornia: multiplies by the factor
RA Color           PIL: blends with the greyscale image        kornia: scales HSV saturation
RA Sharpness       PIL smoothing kernel blend                  kornia's port of it (same formula)
RandomErasing      area (0.02, 1/3), log-uniform aspect in     kornia's boxes: area (0.02, 1/3), aspect
                   (0.3, 3.3), up to 10 tries for a box that   uniform in (0.3, 1) or (1, 3.3) by a coin
                   fits, else no erase; ``recount`` boxes      flip, clamped to the image; filled here with
                                                               timm's ``pixel``/``rand``/``const`` values;
                                                               ``recount`` > 1 refused
1-channel images   PIL ops on "L" images (Color is identity)   colour stages run on the image replicated to
                                                               3 channels and averaged back: the same op,
                                                               Color and saturation become the identity
=================  ==========================================  ============================================

Resizes before a padded crop (input size unlike the native size) use torchvision's antialiased
bicubic on uint8, like the loader path.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import kornia.augmentation as K
import numpy as np
import torch
from kornia.augmentation.auto import RandAugment
from kornia.augmentation.auto.operations import ops as kops
from kornia.geometry.bbox import bbox_generator, bbox_to_mask
from PIL import Image
from torch.utils.data import Dataset, Sampler
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as tvF

from sws.data import ArrayImageDataset, AugmentConfig, DataSpec
from sws.errors import DataError


class DeviceDataRefused(DataError):
    """A split or a setting that the device path cannot take; the message says why in one line."""


@dataclass
class DeviceImages:
    """A whole split, decoded once: ``images`` uint8 ``(N, C, H, W)`` and ``labels`` int64 ``(N,)``, on one device.

    >>> DeviceImages(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.arange(4)).nbytes
    288
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def nbytes(self) -> int:
        return self.images.numel() * self.images.element_size() + self.labels.numel() * self.labels.element_size()


def device_memory_budget(device: torch.device | str, fraction: float = 0.25) -> int:
    """Bytes a caller may give to data on ``device``: ``fraction`` of its free memory (CPU: available RAM).

    >>> device_memory_budget("cpu") > 0
    True
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * fraction)
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not every platform reports it
        free = 4 * 2**30
    return int(free * fraction)


def decode_to_device(dataset: Dataset, spec: DataSpec, device: torch.device | str, max_bytes: int) -> DeviceImages:
    """Decode ``dataset`` once into uint8 on ``device``; raise :class:`DeviceDataRefused` saying why when it
    would take more than ``max_bytes``, its images differ in size, or they are not ``spec.in_chans`` channels.

    An :class:`~sws.data.ArrayImageDataset` is read straight from its array; any other data set must return
    ``(PIL image, label)`` when its ``transform`` is None (its transform is restored afterwards).

    >>> data = decode_to_device(train_set, spec, "cuda", max_bytes=2**30)
    """
    if isinstance(dataset, ArrayImageDataset):
        images = torch.from_numpy(np.ascontiguousarray(dataset.images))
        images = images[:, None] if images.ndim == 3 else images.permute(0, 3, 1, 2)
        _check_fits(tuple(images.shape), images.numel() + 8 * len(images), spec, max_bytes)
        labels = torch.from_numpy(dataset.labels.astype(np.int64))
    else:
        images, labels = _decode_pil(dataset, spec, max_bytes)
    device = torch.device(device)
    return DeviceImages(images.contiguous().to(device), labels.to(device))


def _check_fits(shape: tuple[int, ...], nbytes: int, spec: DataSpec, max_bytes: int) -> None:
    count, channels, height, width = shape
    if channels != spec.in_chans:
        raise DeviceDataRefused(f"the images have {channels} channels, the data set's spec says {spec.in_chans}")
    if nbytes > max_bytes:
        raise DeviceDataRefused(
            f"{count} images of {channels}x{height}x{width} take {nbytes / 2**20:.1f} MiB, over the "
            f"{max_bytes / 2**20:.1f} MiB allowed on the device"
        )


def _decode_pil(dataset: Dataset, spec: DataSpec, max_bytes: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise DeviceDataRefused(f"{type(dataset).__name__} cannot be indexed; the device path needs a map-style set")
    count = len(dataset)
    if count == 0:
        raise DeviceDataRefused("the data set is empty")
    saved = getattr(dataset, "transform", None)
    dataset.transform = None  # the raw image: decoding happens once, the transform on the device
    try:
        first = _pixels(dataset[0][0], 0)
        shape = (count, *first.shape)
        _check_fits(shape, first.numel() * count + 8 * count, spec, max_bytes)
        images = torch.empty(shape, dtype=torch.uint8)
        labels = torch.empty(count, dtype=torch.int64)
        for index in range(count):
            image, label = dataset[index]
            pixels = first if index == 0 else _pixels(image, index)
            if pixels.shape != first.shape:
                raise DeviceDataRefused(
                    f"image {index} is {_size(pixels)}, image 0 is {_size(first)}; the device path needs one size "
                    "(resize the data set once, or keep the data in the loader)"
                )
            images[index] = pixels
            labels[index] = int(label)
    finally:
        dataset.transform = saved
    return images, labels


def _pixels(image: Any, index: int) -> torch.Tensor:
    """A PIL image as uint8 ``(C, H, W)``, the layout ``ToTensor`` gives."""
    if not isinstance(image, Image.Image):
        raise DeviceDataRefused(f"item {index} is a {type(image).__name__}, not a PIL image, with no transform set")
    if image.mode not in ("L", "RGB"):
        raise DeviceDataRefused(f"image {index} has mode {image.mode}; the device path reads L and RGB images")
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True))
    return pixels[None] if pixels.ndim == 2 else pixels.permute(2, 0, 1)


def _size(pixels: torch.Tensor) -> str:
    return f"{pixels.shape[-1]}x{pixels.shape[-2]} px with {pixels.shape[0]} channel(s)"


# ----------------------------------------------------------------------------------------------------------
# RandAugment with timm's magnitudes


@dataclass(frozen=True)
class RandAugmentSpec:
    """timm's ``rand-...`` string, parsed: ``num_ops`` per image, ``magnitude`` level (0-10) and its per-image
    ``magnitude_std`` (``inf``: uniform in [0, magnitude]), ``increasing`` ops, per-op probability ``prob``.

    >>> RandAugmentSpec.parse("rand-m9-mstd0.5-inc1")
    RandAugmentSpec(num_ops=2, magnitude=9.0, magnitude_std=0.5, magnitude_max=10.0, increasing=True, prob=0.5)
    """

    num_ops: int = 2
    magnitude: float = 10.0
    magnitude_std: float = 0.0
    magnitude_max: float = 10.0
    increasing: bool = False
    prob: float = 0.5

    @classmethod
    def parse(cls, config: str) -> RandAugmentSpec:
        sections = config.split("-")
        if sections[0] != "rand":
            raise DeviceDataRefused(f"auto-augment {config!r} has no batched version here; only rand-... (RandAugment)")
        values: dict[str, Any] = {}
        keys = {"n": "num_ops", "m": "magnitude", "mstd": "magnitude_std", "mmax": "magnitude_max", "p": "prob"}
        for section in sections[1:]:
            match = re.fullmatch(r"([a-z]+)(\d+(?:\.\d*)?)", section)
            if match is None or match.group(1) not in (*keys, "inc"):  # e.g. t... (other op lists), weights
                raise DeviceDataRefused(f"auto-augment section {section!r} of {config!r} has no batched version here")
            key, number = match.group(1), float(match.group(2))
            if key == "inc":
                values["increasing"] = bool(number)
            elif key == "n":
                values["num_ops"] = int(number)
            else:  # timm reads an mstd over 100 as uniform sampling
                values[keys[key]] = math.inf if key == "mstd" and number > 100 else number
        return cls(**values)


def _timm_arguments(
    op: kops.OperationBase, fraction: torch.Tensor, increasing: bool, width: int, height: int
) -> torch.Tensor | None:
    """timm's level-to-argument formulas (``timm.data.auto_augment``), per image, in kornia's units; None for
    ops without a magnitude. ``fraction`` is level / 10."""
    if isinstance(op, kops.Rotate):
        return 30.0 * fraction  # degrees; kornia draws the sign (symmetric op)
    if isinstance(op, (kops.ShearX, kops.ShearY)):
        return torch.atan(0.3 * fraction) / math.pi  # kornia multiplies by 180 and reads degrees
    if isinstance(op, kops.TranslateX):
        return 0.45 * fraction * width
    if isinstance(op, kops.TranslateY):
        return 0.45 * fraction * height
    if isinstance(op, kops.Posterize):
        bits = torch.floor(4 * fraction)
        return 4 - bits if increasing else bits
    if isinstance(op, kops.SolarizeAdd):
        return torch.clamp(torch.floor(110 * fraction), max=128) / 255
    if isinstance(op, kops.Solarize):
        threshold = torch.clamp(torch.floor(256 * fraction), max=256)
        return (torch.clamp(256 - threshold if increasing else threshold, max=255)) / 255
    if isinstance(op, (kops.Saturate, kops.Contrast, kops.Brightness, kops.Sharpness)):
        if not increasing:
            return 1.8 * fraction + 0.1
        sign = torch.where(torch.rand(fraction.shape) < 0.5, -1.0, 1.0)  # kornia's enhance ops are one-sided
        return torch.clamp(1 + sign * 0.9 * fraction, min=0.1)
    return None


class TimmRandAugment(RandAugment):
    """kornia's RandAugment ops (timm's 15, as kornia's default policy lists them) chosen and sized as timm does:
    every image draws its own ``num_ops`` ops (with replacement), applies each with probability ``prob``, at a
    level drawn per image from N(magnitude, magnitude_std) and mapped to kornia's arguments by timm's formulas.

    kornia's own ``forward`` applies one op set to the whole call; this one runs each op on the images that
    chose it, so the cost is one kornia call per (layer, op) that some image chose (at most 2 x 15).

    >>> TimmRandAugment(RandAugmentSpec.parse("rand-m9-mstd0.5-inc1"))(torch.rand(8, 3, 32, 32)).shape
    torch.Size([8, 3, 32, 32])
    """

    def __init__(self, spec: RandAugmentSpec) -> None:
        super().__init__(n=1, m=15, transformation_matrix_mode="skip")  # n, m unused: forward chooses and sizes
        self.spec = spec

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        spec, count = self.spec, images.shape[0]
        ops = [subpolicy[0] for subpolicy in self.children()]
        choice = torch.randint(len(ops), (spec.num_ops, count))
        choice[torch.rand(spec.num_ops, count) >= spec.prob] = -1  # timm skips each chosen op with 1 - prob
        output = images.clone()
        for layer in range(spec.num_ops):
            for index, op in enumerate(ops):
                rows = (choice[layer] == index).nonzero().flatten()
                if len(rows):
                    rows = _to_device(rows, images.device)
                    output.index_copy_(0, rows, self._apply(op, output.index_select(0, rows)))
        return output

    def _apply(self, op: kops.OperationBase, images: torch.Tensor) -> torch.Tensor:
        level = self._levels(images.shape[0])
        mag = _timm_arguments(op, level / 10, self.spec.increasing, images.shape[-1], images.shape[-2])
        params = op.forward_parameters(images.shape, mag=mag)
        if isinstance(op, kops.SolarizeAdd):
            params["thresholds"] = torch.full_like(params["thresholds"], 0.5)  # timm's fixed threshold, 128
        return op(images, params)

    def _levels(self, count: int) -> torch.Tensor:
        spec = self.spec
        if spec.magnitude_std == math.inf:
            level = torch.rand(count) * spec.magnitude
        elif spec.magnitude_std > 0:
            level = spec.magnitude + spec.magnitude_std * torch.randn(count)
        else:
            level = torch.full((count,), float(spec.magnitude))
        return level.clamp(0.0, spec.magnitude_max)


# ----------------------------------------------------------------------------------------------------------
# The batched transform


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small CPU tensor (random parameters drawn on the host) on ``device``; to a GPU through pinned
    memory without blocking, so the host does not wait for the GPU's queue to drain."""
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def _to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 to float in [0, 1] by ToTensor's own operations (convert, then divide by 255)."""
    return images.to(torch.float32).div(255)


_RESAMPLE = ("bicubic", "bilinear", "nearest")  # timm's names that kornia also knows


class DeviceAugment:
    """DeiT's training or evaluation transform (as :func:`sws.data.build_transform` builds it) on batches:
    uint8 ``(B, C, H, W)`` in, float ``(B, C, S, S)`` normalized by ``spec.mean``/``spec.std`` out, on the
    images' device. Training draws every random parameter per image from torch's global generators.

    >>> DeviceAugment(spec, AugmentConfig(28), is_training=True)(images_uint8).shape
    torch.Size([128, 1, 28, 28])
    """

    def __init__(self, spec: DataSpec, aug: AugmentConfig, is_training: bool) -> None:
        self.spec, self.aug, self.is_training = spec, aug, is_training
        self.size = aug.input_size
        small = aug.input_size <= 32
        self.resize_to: int | None = None  # a deterministic resize of the short side, first
        if not small:
            self.resize_to = None if is_training else math.floor(aug.input_size / aug.eval_crop_ratio)
        elif spec.native_size != aug.input_size:
            self.resize_to = aug.input_size
        if is_training:
            self._build_training(small)

    @property
    def is_random(self) -> bool:
        return self.is_training

    def _build_training(self, small: bool) -> None:
        aug, size = self.aug, self.aug.input_size
        if small:  # DeiT: a padded random crop instead of a random resized crop for tiny images
            padding = max(1, round(size / 8)) if aug.crop_padding is None else aug.crop_padding
            self.crop = K.RandomCrop((size, size), padding=padding, fill=0) if padding else None
        else:
            if aug.interpolation not in _RESAMPLE:
                raise DeviceDataRefused(
                    f"--train-interpolation {aug.interpolation} has no batched version; use bicubic or bilinear"
                )
            self.crop = K.RandomResizedCrop(
                (size, size),
                scale=(0.08, 1.0),
                ratio=(3 / 4, 4 / 3),
                resample=aug.interpolation,
                align_corners=False,
            )
        self.flip = K.RandomHorizontalFlip(p=aug.hflip) if aug.hflip > 0 else None
        self.colour: torch.nn.Module | None = None
        if aug.auto_augment and aug.auto_augment.lower() != "none":
            self.colour = TimmRandAugment(RandAugmentSpec.parse(aug.auto_augment))  # timm drops jitter here
        elif aug.color_jitter and aug.color_jitter > 0:
            jitter = float(aug.color_jitter)
            self.colour = K.ColorJitter(jitter, jitter, jitter, 0.0, p=1.0)
        if aug.recount != 1 and aug.reprob > 0:
            raise DeviceDataRefused(f"--recount {aug.recount}: the device path erases one box per image; use 1")
        if aug.remode not in ("pixel", "rand", "const"):
            raise DeviceDataRefused(f"--remode {aug.remode} is not one of timm's pixel, rand, const")
        self.erase = K.RandomErasing(scale=(0.02, 1 / 3), ratio=(0.3, 1 / 0.3), p=aug.reprob) if aug.reprob else None

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"DeviceAugment takes uint8 (B, C, H, W) images, not {images.dtype} {tuple(images.shape)}")
        if self.resize_to is not None:  # antialiased bicubic on uint8, as the loader path's PIL Resize
            images = tvF.resize(images, [self.resize_to], InterpolationMode.BICUBIC, antialias=True)
        if not self.is_training:
            return self._normalize(_to_unit(tvF.center_crop(images, [self.size, self.size])))
        x = _to_unit(images)
        if self.crop is not None:
            x = self.crop(x)
        if self.flip is not None:
            x = self.flip(x)
        if self.colour is not None:
            x = self._colour(x)
        x = self._normalize(x)
        return self._erase(x) if self.erase is not None else x

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        # torchvision's Normalize: the same float32 subtraction and division as the loader path
        return tvF.normalize(x, list(self.spec.mean), list(self.spec.std))

    def _colour(self, x: torch.Tensor) -> torch.Tensor:
        grey = x.shape[1] == 1
        if grey:  # colour ops need RGB; identical channels stay identical, so the mean is the grey result
            x = x.repeat(1, 3, 1, 1)
        x = self.colour(x)
        return x.mean(dim=1, keepdim=True) if grey else x

    def _erase(self, x: torch.Tensor) -> torch.Tensor:
        # kornia draws the boxes and the per-image gate; the fill is timm's, in normalized units
        params = self.erase.forward_parameters(x.shape)
        boxes = _to_device(bbox_generator(params["xs"], params["ys"], params["widths"], params["heights"]), x.device)
        mask = bbox_to_mask(boxes, x.shape[-1], x.shape[-2]).unsqueeze(1).bool()
        mask &= _to_device(params["batch_prob"], x.device).view(-1, 1, 1, 1) > 0.5
        if self.aug.remode == "pixel":
            fill = torch.randn(x.shape, device=x.device, dtype=x.dtype)
        elif self.aug.remode == "rand":
            fill = torch.randn((*x.shape[:2], 1, 1), device=x.device, dtype=x.dtype)
        else:
            fill = torch.zeros((), device=x.device, dtype=x.dtype)
        return torch.where(mask, fill, x)


# ----------------------------------------------------------------------------------------------------------
# The loader


def _batch_seed(seed: int, epoch: int, rank: int, step: int) -> int:
    return int(np.random.SeedSequence([seed % 2**63, epoch, rank, step]).generate_state(1, dtype=np.uint64)[0])


@contextlib.contextmanager
def _seeded(device: torch.device, seed: int) -> Iterator[None]:
    """Run the body on generators seeded with ``seed`` (CPU and ``device``), restoring them afterwards."""
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda, device_type="cuda"):
        torch.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(cuda[0]):
                torch.cuda.manual_seed(seed)
        yield


class DeviceLoader:
    """What the training loop iterates instead of a DataLoader: batches of ``data`` in the order of
    ``sampler`` (the same sampler object the loader path uses), transformed by ``augment``.

    The caller calls ``sampler.set_epoch(epoch)``; the loader reads ``sampler.epoch`` and ``sampler.rank``
    (0 when absent) to seed each batch's augmentation from ``(seed, epoch, rank, batch index)``.

    >>> for images, targets in DeviceLoader(data, sampler, 128, drop_last=True, augment=augment, seed=0): ...
    """

    def __init__(
        self,
        data: DeviceImages,
        sampler: Sampler[int],
        batch_size: int,
        drop_last: bool,
        augment: DeviceAugment,
        seed: int = 0,
    ) -> None:
        self.dataset = data
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.augment = augment
        self.seed = seed

    def __len__(self) -> int:
        count = len(self.sampler)
        return count // self.batch_size if self.drop_last else math.ceil(count / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        device = self.dataset.images.device
        order = torch.as_tensor(list(iter(self.sampler)), dtype=torch.long).to(device)
        epoch, rank = int(getattr(self.sampler, "epoch", 0)), int(getattr(self.sampler, "rank", 0))
        for step in range(len(self)):
            index = order[step * self.batch_size : (step + 1) * self.batch_size]
            images = self.dataset.images.index_select(0, index)
            targets = self.dataset.labels.index_select(0, index)
            if self.augment.is_random:
                with _seeded(device, _batch_seed(self.seed, epoch, rank, step)):
                    images = self.augment(images)
            else:
                images = self.augment(images)
            yield images, targets


__all__: Sequence[str] = (
    "DeviceAugment",
    "DeviceDataRefused",
    "DeviceImages",
    "DeviceLoader",
    "RandAugmentSpec",
    "TimmRandAugment",
    "decode_to_device",
    "device_memory_budget",
)
