"""DeiT's augmentation, planned once for both data paths, and the flag values timm accepts.

A :class:`TransformPlan` (from the recipe's :class:`AugmentConfig` and the data's
:class:`~sws.data.DataSpec`) makes every decision of DeiT's transforms once: the small-image padded
crop (32 px or less) or the random resized crop, the resize when the input size is not the data's
own, the evaluation resize and centre crop, RandAugment or colour jitter, erasing. The loader path
(:mod:`sws.loaders`, timm's PIL transforms) and the device path (:mod:`sws.device_data`, batched)
both read it and decide nothing themselves. ``check_auto_augment``, ``check_train_interpolation``
and ``check_random_erasing_mode`` say which flag values timm takes, before anything is built.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

from timm.data import auto_augment as timm_aa
from timm.data import create_transform
from timm.data.transforms import interp_mode_to_str
from torchvision import transforms

from sws.data import DataSpec
from sws.errors import ConfigError, first_line


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
