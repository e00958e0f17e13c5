"""Device-resident data: decode a split once to uint8 on the training device, augment it there in batches.

The loader path (:mod:`sws.loaders`) decodes and transforms every image one by one in PIL, every epoch,
which dominates training on small images. When a split fits in memory and its images share one
size, this module holds it as one ``uint8 (N, C, H, W)`` tensor on the device and applies DeiT's
transforms to whole batches there, each image drawing its own random parameters (kornia). Both paths
read one :class:`~sws.augmentation.TransformPlan`, and RandAugment's ops, probabilities and magnitudes come
from the transform timm parses for the loader path. :class:`DeviceLoader` takes the *same sampler
object* as the loader path, so batches have the same images and labels in the same order, sharded
across processes the same way::

    plan = TransformPlan.of(spec, aug)
    train = decode_to_device(train_set, spec, device, max_bytes=device_memory_budget(device))
    loader = DeviceLoader(train, sampler, 128, drop_last=True, augment=DeviceAugment(plan, True), seed=0)
    for images, targets in loader: ...   # float (B, C, S, S) normalized, int64 (B,), both on `device`

``decode_to_device`` raises :class:`DeviceDataRefused` (a :class:`~sws.errors.DataError`) whose
message says in one line why a split cannot live on the device (too many bytes, images of different
sizes, an unsupported image mode); :class:`DeviceAugment` raises it for settings it cannot batch.
A caller in ``auto`` mode falls back to the loader path; in ``on`` mode it reports the message.

Each batch's augmentation is seeded from ``(seed, epoch, rank, batch index)`` alone, so the same seed
gives identical batches and a resumed run continues exactly. Evaluation equals the loader path's
tensors exactly where no resize happens, and within 2/255 where one does; training draws the same
distributions with float arithmetic. ``docs/device-augmentation.md`` compares the two paths op by op.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import kornia.augmentation as K
import numpy as np
import torch
from kornia.augmentation.auto.operations import ops as kops
from kornia.augmentation.auto.rand_augment import ops as kornia_rand_ops
from kornia.augmentation.auto.rand_augment.rand_augment import default_policy
from kornia.geometry.bbox import bbox_generator, bbox_to_mask
from PIL import Image
from timm.data import auto_augment as timm_aa
from torch.utils.data import Dataset, Sampler
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as tvF

from sws.augmentation import TransformPlan, timm_auto_augment
from sws.data import ArrayImageDataset, DataSpec, available_memory
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
    return int(available_memory(device) * fraction)


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


# timm's RandAugment op names (less "Increasing") and the entries of kornia's RandAugment policy that do them
KORNIA_OPS = {
    "AutoContrast": "auto_contrast", "Equalize": "equalize", "Invert": "invert", "Rotate": "rotate",
    "Posterize": "posterize", "Solarize": "solarize", "SolarizeAdd": "solarize_add", "Color": "color",
    "Contrast": "contrast", "Brightness": "brightness", "Sharpness": "sharpness", "ShearX": "shear_x",
    "ShearY": "shear_y", "TranslateXRel": "translate_x", "TranslateYRel": "translate_y",
}  # fmt: skip
_KORNIA_POLICY = {name: (name, low, high) for [(name, low, high)] in default_policy}


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


class TimmRandAugment(torch.nn.Module):
    """timm's parsed RandAugment (``timm.data.auto_augment.RandAugment``: its ops, each with its probability
    and magnitude, the number of layers, the choice weights) on batches, with kornia's ops: every image draws
    its own ``num_layers`` ops (with replacement, or without by the choice weights, as timm draws them),
    applies each with its probability, at a level drawn per image from N(magnitude, magnitude_std) clipped to
    [0, magnitude_max or 10], mapped to kornia's arguments by timm's formulas. Each op runs once per layer on
    the images that chose it. Ops without a kornia version are refused (:class:`DeviceDataRefused`).

    >>> TimmRandAugment(timm_auto_augment(plan))(torch.rand(8, 3, 32, 32)).shape
    torch.Size([8, 3, 32, 32])
    """

    def __init__(self, timm_augment: Any, flag: str = "the auto-augment") -> None:
        super().__init__()
        if not isinstance(timm_augment, timm_aa.RandAugment):
            kind = type(timm_augment).__name__
            raise DeviceDataRefused(f"{flag} is timm's {kind}, which has no batched version here; only rand-...")
        self.timm_ops = list(timm_augment.ops)
        unknown = [op.name for op in self.timm_ops if op.name.removesuffix("Increasing") not in KORNIA_OPS]
        if unknown:
            raise DeviceDataRefused(f"{flag}: RandAugment ops {unknown} have no batched version here")
        entries = [_KORNIA_POLICY[KORNIA_OPS[op.name.removesuffix("Increasing")]] for op in self.timm_ops]
        # built as kornia's own RandAugment builds them
        self.kornia_ops = torch.nn.ModuleList(getattr(kornia_rand_ops, name)(low, high) for name, low, high in entries)
        self.num_layers = timm_augment.num_layers
        weights = timm_augment.choice_weights
        self.choice_weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.probs = torch.tensor([op.prob for op in self.timm_ops], dtype=torch.float32)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        layers, count = self.num_layers, images.shape[0]
        if self.choice_weights is None:
            choice = torch.randint(len(self.timm_ops), (layers, count))
        else:  # timm draws weighted ops without replacement
            choice = torch.multinomial(self.choice_weights.expand(count, -1), layers).T.contiguous()
        choice[torch.rand(layers, count) >= self.probs[choice]] = -1  # timm skips each chosen op with 1 - prob
        output = images.clone()
        for layer in range(layers):
            for index in range(len(self.kornia_ops)):
                rows = (choice[layer] == index).nonzero().flatten()
                if len(rows):
                    rows = _to_device(rows, images.device)
                    output.index_copy_(0, rows, self._apply(index, output.index_select(0, rows)))
        return output

    def _apply(self, index: int, images: torch.Tensor) -> torch.Tensor:
        timm_op, op = self.timm_ops[index], self.kornia_ops[index]
        level = _levels(timm_op, images.shape[0])
        increasing = timm_op.name.endswith("Increasing")
        mag = _timm_arguments(op, level / 10, increasing, images.shape[-1], images.shape[-2])
        params = op.forward_parameters(images.shape, mag=mag)
        if isinstance(op, kops.SolarizeAdd):
            params["thresholds"] = torch.full_like(params["thresholds"], 0.5)  # timm's fixed threshold, 128
        return op(images, params)


def _levels(op: Any, count: int) -> torch.Tensor:
    """A timm op's level for ``count`` images, drawn as ``AugmentOp`` draws it (uniform in [0, magnitude] when
    its std is infinite) and clipped to [0, magnitude_max], 10 by default."""
    if op.magnitude_std == math.inf:
        level = torch.rand(count) * op.magnitude
    elif op.magnitude_std > 0:
        level = op.magnitude + op.magnitude_std * torch.randn(count)
    else:
        level = torch.full((count,), float(op.magnitude))
    return level.clamp(0.0, op.magnitude_max or 10)


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
    """A :class:`~sws.augmentation.TransformPlan`'s training or evaluation transform on batches: uint8 ``(B, C, H, W)``
    in, float ``(B, C, S, S)`` normalized by the plan's mean and std out, on the images' device. Training draws
    every random parameter per image from torch's global generators. Settings without a batched version
    (``--train-interpolation random`` for a random resized crop, ``--recount`` over 1, auto-augments other than
    RandAugment and ops kornia lacks) raise :class:`DeviceDataRefused`.

    >>> DeviceAugment(TransformPlan.of(spec, AugmentConfig(28)), is_training=True)(images_uint8).shape
    torch.Size([128, 1, 28, 28])
    """

    def __init__(self, plan: TransformPlan, is_training: bool) -> None:
        self.plan, self.is_training = plan, is_training
        self.resize_to = plan.train_resize if is_training else plan.eval_resize  # the short side, first
        if is_training:
            self._build_training()

    @property
    def is_random(self) -> bool:
        return self.is_training

    def _build_training(self) -> None:
        plan, size = self.plan, self.plan.size
        if plan.crop_padding is not None:
            self.crop = K.RandomCrop((size, size), padding=plan.crop_padding, fill=0) if plan.crop_padding else None
        elif plan.interpolation not in _RESAMPLE:
            raise DeviceDataRefused(
                f"--train-interpolation {plan.interpolation} has no batched version; use bicubic or bilinear"
            )
        else:
            ratio = (3 / 4, 4 / 3)  # timm's defaults, as is the scale
            self.crop = K.RandomResizedCrop(
                (size, size), scale=(0.08, 1.0), ratio=ratio, resample=plan.interpolation, align_corners=False
            )
        self.flip = K.RandomHorizontalFlip(p=plan.hflip) if plan.hflip > 0 else None
        self.colour: list[torch.nn.Module] = []  # in timm's order: the auto-augment, then the jitter
        if plan.auto_augment is not None:
            self.colour.append(TimmRandAugment(timm_auto_augment(plan), f"--aa {plan.auto_augment}"))
        if plan.color_jitter:
            jitter = float(plan.color_jitter)
            self.colour.append(K.ColorJitter(jitter, jitter, jitter, 0.0, p=1.0))
        if plan.recount != 1 and plan.reprob > 0:
            raise DeviceDataRefused(f"--recount {plan.recount}: the device path erases one box per image; use 1")
        self.erase = K.RandomErasing(scale=(0.02, 1 / 3), ratio=(0.3, 1 / 0.3), p=plan.reprob) if plan.reprob else None

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"DeviceAugment takes uint8 (B, C, H, W) images, not {images.dtype} {tuple(images.shape)}")
        if self.resize_to is not None:  # antialiased bicubic on uint8, as the loader path's PIL Resize
            images = tvF.resize(images, [self.resize_to], InterpolationMode.BICUBIC, antialias=True)
        if not self.is_training:
            if self.resize_to is not None:
                images = tvF.center_crop(images, [self.plan.size, self.plan.size])
            return self._normalize(_to_unit(images))
        x = _to_unit(images)
        if self.crop is not None:
            x = self.crop(x)
        if self.flip is not None:
            x = self.flip(x)
        if self.colour:
            x = self._colour(x)
        x = self._normalize(x)
        return self._erase(x) if self.erase is not None else x

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        # torchvision's Normalize: the same float32 subtraction and division as the loader path
        return tvF.normalize(x, list(self.plan.mean), list(self.plan.std))

    def _colour(self, x: torch.Tensor) -> torch.Tensor:
        grey = x.shape[1] == 1
        if grey:  # colour ops need RGB; identical channels stay identical, so the mean is the grey result
            x = x.repeat(1, 3, 1, 1)
        for stage in self.colour:
            x = stage(x)
        return x.mean(dim=1, keepdim=True) if grey else x

    def _erase(self, x: torch.Tensor) -> torch.Tensor:
        # kornia draws the boxes and the per-image gate; the fill is timm's, in normalized units
        params = self.erase.forward_parameters(x.shape)
        boxes = _to_device(bbox_generator(params["xs"], params["ys"], params["widths"], params["heights"]), x.device)
        mask = bbox_to_mask(boxes, x.shape[-1], x.shape[-2]).unsqueeze(1).bool()
        mask &= _to_device(params["batch_prob"], x.device).view(-1, 1, 1, 1) > 0.5
        if self.plan.remode == "pixel":
            fill = torch.randn(x.shape, device=x.device, dtype=x.dtype)
        elif self.plan.remode == "rand":
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
    "TimmRandAugment",
    "decode_to_device",
    "device_memory_budget",
)
