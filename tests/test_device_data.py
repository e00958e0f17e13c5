"""The device-resident data path: the loader path's order, its evaluation tensors, DeiT's augmentations
batched with per-image randomness, seeded batches, and clear refusals."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torchvision.transforms import ColorJitter

from sws.augmentation import AugmentConfig, TransformPlan, timm_auto_augment
from sws.data import DataSpec, build_datasets
from sws.device_data import (
    DeviceAugment,
    DeviceDataRefused,
    DeviceImages,
    DeviceLoader,
    TimmRandAugment,
    decode_to_device,
)
from sws.loaders import ShardSampler, build_loader, build_train_sampler, build_transform
from tests.conftest import write_image_folder

CPU = torch.device("cpu")
DEIT = AugmentConfig(8)  # DeiT's defaults: RandAugment rand-m9-mstd0.5-inc1, erasing 0.25, flip 0.5
PLAIN = AugmentConfig(8, color_jitter=0.0, auto_augment=None, reprob=0.0, hflip=0.0)


@pytest.fixture(scope="module")
def digits():
    train, val, spec = build_datasets("DIGITS")
    return train, val, spec


def _unit_spec(size: int) -> DataSpec:
    """Mean 0, std 1: the transform's output is the image in [0, 1], easy to compare."""
    return DataSpec("T", 10, 1, size, (0.0,), (1.0,), hflip=0.0)


def test_device_batches_follow_the_dataloader_order_epoch_by_epoch(digits) -> None:
    train, _, spec = digits
    sampler = build_train_sampler(train, world_size=1, rank=0, seed=3, repeated_aug=False)
    train.transform = build_transform(TransformPlan.of(spec, DEIT), True)
    try:
        loader = build_loader(train, sampler, 100, num_workers=0, drop_last=True)
        device = DeviceLoader(
            decode_to_device(train, spec, CPU, 2**30),
            sampler,
            100,
            True,
            DeviceAugment(TransformPlan.of(spec, DEIT), True),
        )
        assert len(device) == len(loader)
        for epoch in (0, 1):
            sampler.set_epoch(epoch)
            expected = [(images.shape, labels) for images, labels in loader]
            got = [(images.shape, labels) for images, labels in device]
            assert [shape for shape, _ in got] == [shape for shape, _ in expected]
            assert all(torch.equal(a, b) for (_, a), (_, b) in zip(got, expected, strict=True))
    finally:
        train.transform = None


def test_repeated_augmentation_sampler_gives_the_same_order_on_both_paths(digits) -> None:
    train, _, spec = digits
    sampler = build_train_sampler(train, world_size=2, rank=1, seed=0, repeated_aug=True)  # timm's RepeatAugSampler
    sampler.set_epoch(4)
    loader = build_loader(train, sampler, 64, num_workers=0, drop_last=True)
    train.transform = build_transform(TransformPlan.of(spec, PLAIN), True)
    try:
        expected = [labels for _, labels in loader]
    finally:
        train.transform = None
    device = DeviceLoader(
        decode_to_device(train, spec, CPU, 2**30), sampler, 64, True, DeviceAugment(TransformPlan.of(spec, PLAIN), True)
    )
    got = [labels for _, labels in device]
    assert len(got) == len(expected) == len(device)
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


def test_padded_crop_is_a_zero_filled_shift_within_the_pad() -> None:
    pad, size = 3, 12
    spec, aug = _unit_spec(size), AugmentConfig(size, 0.0, None, reprob=0.0, hflip=0.0, crop_padding=pad)
    torch.manual_seed(0)
    images = torch.randint(1, 256, (400, 1, size, size), dtype=torch.uint8)  # no zeros: padding shows
    out = DeviceAugment(TransformPlan.of(spec, aug), is_training=True)(images)
    padded = torch.nn.functional.pad(images.float() / 255, (pad,) * 4)
    shifts = set()
    for image, crop in zip(padded, out, strict=True):
        offsets = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if torch.equal(crop, image[:, dy : dy + size, dx : dx + size])
        ]
        assert len(offsets) == 1, "every crop is exactly one shifted copy of the zero-padded image"
        shifts.add((offsets[0][0] - pad, offsets[0][1] - pad))
    assert {dy for dy, _ in shifts} == set(range(-pad, pad + 1)) == {dx for _, dx in shifts}


@pytest.mark.parametrize("name", ["DIGITS", "MNIST5K"])
def test_evaluation_tensors_equal_the_loader_path_on_builtin_data(name) -> None:
    _, val, spec = build_datasets(name)
    aug = AugmentConfig(spec.native_size)
    val.transform = build_transform(TransformPlan.of(spec, aug), False)
    expected = next(iter(build_loader(val, ShardSampler(len(val), 1, 0), 300, 0, drop_last=False)))[0]
    val.transform = None
    data = decode_to_device(val, spec, CPU, 2**30)
    got = DeviceAugment(TransformPlan.of(spec, aug), is_training=False)(data.images[:300])
    assert got.dtype == expected.dtype and torch.equal(got, expected)


@pytest.mark.parametrize("size", [12, 40])  # a resize and centre crop at 32 px or less, and above
def test_evaluation_after_a_resize_stays_within_two_levels_of_pil(tmp_path, size) -> None:
    _, val, spec = build_datasets("FOLDER", write_image_folder(tmp_path, size=20, train_per_class=1, val_per_class=8))
    aug = AugmentConfig(size)
    val.transform = build_transform(TransformPlan.of(spec, aug), False)
    expected = torch.stack([val[i][0] for i in range(len(val))])
    val.transform = None
    got = DeviceAugment(TransformPlan.of(spec, aug), is_training=False)(decode_to_device(val, spec, CPU, 2**30).images)
    levels = ((got - expected) * torch.tensor(spec.std).view(1, -1, 1, 1) * 255).abs()
    assert got.shape == expected.shape == (24, 3, size, size)
    assert levels.max() <= 2 + 1e-3 and (levels > 1e-3).float().mean() < 0.01


def _epoch(data: DeviceImages, spec: DataSpec, aug: AugmentConfig, seed: int, epoch: int) -> list[torch.Tensor]:
    sampler = build_train_sampler(data, world_size=1, rank=0, seed=0, repeated_aug=False)
    sampler.set_epoch(epoch)
    return [
        images
        for images, _ in DeviceLoader(
            data, sampler, 256, True, DeviceAugment(TransformPlan.of(spec, aug), True), seed=seed
        )
    ]


def test_same_seed_same_batches_whatever_else_uses_the_random_generators(digits) -> None:
    train, _, spec = digits
    data = decode_to_device(train, spec, CPU, 2**30)
    state = torch.get_rng_state()
    first = _epoch(data, spec, DEIT, seed=1, epoch=0)
    assert torch.equal(torch.get_rng_state(), state), "the training loop's random state is left alone"
    torch.manual_seed(123)  # the model's initialization, dropout, ... change nothing
    assert all(torch.equal(a, b) for a, b in zip(first, _epoch(data, spec, DEIT, seed=1, epoch=0), strict=True))
    assert not torch.equal(first[0], _epoch(data, spec, DEIT, seed=2, epoch=0)[0])


def test_augmentation_differs_between_epochs_even_for_the_same_images() -> None:
    images = torch.randint(0, 256, (1, 1, 8, 8), dtype=torch.uint8).repeat(64, 1, 1, 1)
    data = DeviceImages(images, torch.zeros(64, dtype=torch.int64))  # only the augmentation can differ
    epochs = [torch.cat(_epoch_batches(data, epoch)) for epoch in (0, 1)]
    assert not torch.equal(epochs[0], epochs[1])
    assert len({tuple(image.flatten().tolist()) for image in epochs[0]}) > 32, "parameters are drawn per image"


def _epoch_batches(data: DeviceImages, epoch: int) -> list[torch.Tensor]:
    sampler = build_train_sampler(data, world_size=1, rank=0, seed=0, repeated_aug=False)
    sampler.set_epoch(epoch)
    loader = DeviceLoader(data, sampler, 32, True, DeviceAugment(TransformPlan.of(_unit_spec(8), DEIT), True), seed=0)
    return [images for images, _ in loader]


def test_two_ranks_see_every_sample_exactly_once_per_epoch() -> None:
    count, spec = 96, _unit_spec(8)
    data = DeviceImages(torch.zeros(count, 1, 8, 8, dtype=torch.uint8), torch.arange(count))  # label = index
    seen = []
    for rank in (0, 1):
        sampler = build_train_sampler(data, world_size=2, rank=rank, seed=5, repeated_aug=False)
        sampler.set_epoch(2)
        loader = DeviceLoader(data, sampler, 16, True, DeviceAugment(TransformPlan.of(spec, PLAIN), True))
        seen += [targets for _, targets in loader]
    assert sorted(torch.cat(seen).tolist()) == list(range(count))
    odd = DeviceImages(torch.zeros(37, 1, 8, 8, dtype=torch.uint8), torch.arange(37))  # evaluation shards
    shards = [
        DeviceLoader(odd, ShardSampler(37, 2, rank), 8, False, DeviceAugment(TransformPlan.of(spec, PLAIN), False))
        for rank in (0, 1)
    ]
    assert sorted(torch.cat([t for loader in shards for _, t in loader]).tolist()) == list(range(37))


def test_grey_data_through_the_full_deit_recipe_stays_finite(digits) -> None:
    train, _, spec = digits
    data = decode_to_device(train, spec, CPU, 2**30)
    aug = AugmentConfig(8, color_jitter=0.4, reprob=1.0)  # every image erased, RandAugment on
    out = DeviceAugment(TransformPlan.of(spec, aug), is_training=True)(data.images[:256])
    assert out.shape == (256, 1, 8, 8) and out.isfinite().all()
    jitter = DeviceAugment(TransformPlan.of(spec, AugmentConfig(8, auto_augment=None, color_jitter=0.4)), True)(
        data.images[:64]
    )
    assert jitter.shape == (64, 1, 8, 8) and jitter.isfinite().all()


@pytest.mark.parametrize("size", [16, 40])  # padded crop, and random resized crop above 32 px
def test_colour_data_through_the_full_deit_recipe_stays_finite(tmp_path, size) -> None:
    train, _, spec = build_datasets("FOLDER", write_image_folder(tmp_path, train_per_class=8, val_per_class=1))
    data = decode_to_device(train, spec, CPU, 2**30)
    out = DeviceAugment(TransformPlan.of(spec, AugmentConfig(size, reprob=1.0)), is_training=True)(data.images)
    assert out.shape == (24, 3, size, size) and out.isfinite().all()


def test_random_erasing_fills_one_box_per_image_with_normal_noise() -> None:
    spec = _unit_spec(32)
    aug = AugmentConfig(32, 0.0, None, reprob=1.0, hflip=0.0, crop_padding=0)
    torch.manual_seed(0)
    out = DeviceAugment(TransformPlan.of(spec, aug), is_training=True)(
        torch.full((200, 1, 32, 32), 128, dtype=torch.uint8)
    )
    erased = out != 128 / 255
    rows, cols = erased.any(dim=3), erased.any(dim=2)
    box_areas = rows.sum(dim=(1, 2)) * cols.sum(dim=(1, 2))
    assert torch.equal(erased.sum(dim=(1, 2, 3)), box_areas), "the erased pixels form one rectangle"
    fraction = box_areas.float() / (32 * 32)
    assert fraction.min() > 0.01 and fraction.max() < 0.4
    noise = out[erased]
    assert abs(noise.mean().item()) < 0.05 and abs(noise.std().item() - 1) < 0.05, "timm's pixel mode: N(0, 1)"


def test_decode_refuses_over_the_byte_limit_and_images_of_different_sizes(digits, tmp_path) -> None:
    train, _, spec = digits
    with pytest.raises(DeviceDataRefused, match=r"MiB, over the .* MiB allowed"):
        decode_to_device(train, spec, CPU, max_bytes=len(train) * 64 - 1)
    root = write_image_folder(tmp_path, train_per_class=2, val_per_class=1)
    Image.new("RGB", (20, 16)).save(root / "train" / "green" / "001.png")
    folder, _, folder_spec = build_datasets("FOLDER", root)
    folder.transform = marker = object()
    with pytest.raises(DeviceDataRefused, match=r"image 3 is 20x16 px .* image 0 is 16x16 px"):
        decode_to_device(folder, folder_spec, CPU, 2**30)
    assert folder.transform is marker, "the data set's own transform is restored"
    with pytest.raises(DeviceDataRefused, match="1 channels, the data set's spec says 3"):
        decode_to_device(train, DataSpec("D", 10, 3, 8), CPU, 2**30)


def test_settings_without_a_batched_version_are_refused_by_name(digits) -> None:
    _, _, spec = digits
    for refused, match in [
        (AugmentConfig(8, auto_augment="v0"), "--aa v0 is timm's AutoAugment, which has no batched version here"),
        (AugmentConfig(8, auto_augment="augmix-m3"), "--aa augmix-m3 is timm's AugMixAugment"),
        (AugmentConfig(8, auto_augment="rand-t3a"), r"--aa rand-t3a: RandAugment ops \['Desaturate', 'GaussianBlur'\]"),
        (AugmentConfig(8, recount=2), "--recount 2"),
        (AugmentConfig(40, interpolation="random"), "--train-interpolation random"),
    ]:
        with pytest.raises(DeviceDataRefused, match=match):
            DeviceAugment(TransformPlan.of(spec, refused), True)


@pytest.mark.parametrize(
    ("native", "size", "train_resize", "padding", "eval_resize"),
    [
        (28, 28, None, 4, None),  # small, native: a padded crop, nothing resized
        (28, 32, 32, 4, 32),  # small, another size: resized first, for training and evaluation
        (8, 12, 12, 2, 12),  # padding size / 8, rounded
        (8, 4, 4, 1, 4),  # at least 1 px
        (224, 224, None, None, 256),  # above 32 px: a random resized crop; evaluation resizes to size / 0.875
        (None, 40, None, None, 45),
    ],
)
def test_the_plan_decides_the_crop_and_the_resizes_from_the_size_alone(
    native, size, train_resize, padding, eval_resize
) -> None:
    plan = TransformPlan.of(DataSpec("T", 10, 1, native), AugmentConfig(size))
    assert (plan.train_resize, plan.crop_padding, plan.eval_resize) == (train_resize, padding, eval_resize)
    assert TransformPlan.of(DataSpec("T", 10, 1, native), AugmentConfig(size, crop_padding=0)).crop_padding == (
        None if size > 32 else 0
    )


def test_the_plan_keeps_colour_jitter_only_where_timm_keeps_it() -> None:
    spec = DataSpec("T", 10, 3, 32)
    assert TransformPlan.of(spec, AugmentConfig(32, color_jitter=0.3, auto_augment="none")).color_jitter == 0.3
    assert TransformPlan.of(spec, AugmentConfig(32, color_jitter=0.3)).color_jitter is None  # RandAugment on
    assert TransformPlan.of(spec, AugmentConfig(32, color_jitter=0.3, auto_augment="3a")).color_jitter == 0.3
    for aa in ("none", "rand-m9-mstd0.5-inc1", "3a"):
        plan = TransformPlan.of(spec, AugmentConfig(32, color_jitter=0.3, auto_augment=aa))
        jitters = [step for step in build_transform(plan, True).transforms if isinstance(step, ColorJitter)]
        assert len(jitters) == (plan.color_jitter is not None), "timm built what the plan says"


@pytest.mark.parametrize(
    "config", ["rand-m9-mstd0.5-inc1", "rand-n3-m7-mstd101-mmax12-p0.7", "rand-m5-inc0", "rand-m9-n2-tweights"]
)
def test_randaugments_ops_probabilities_and_magnitudes_are_timms_parse(config) -> None:
    plan = TransformPlan.of(DataSpec("T", 10, 3, 32), AugmentConfig(32, auto_augment=config))
    timm_augment = timm_auto_augment(plan)
    batched = TimmRandAugment(timm_augment)
    assert batched.num_layers == timm_augment.num_layers
    assert batched.timm_ops == timm_augment.ops, "timm's own ops: names, probabilities, magnitudes, std, max"
    assert batched.probs.tolist() == pytest.approx([op.prob for op in timm_augment.ops])
    kinds = [type(op).__name__ for op in batched.kornia_ops]
    names = [
        op.name.removesuffix("Increasing").replace("Color", "Saturate").removesuffix("Rel") for op in batched.timm_ops
    ]
    assert kinds == names
    if timm_augment.choice_weights is None:
        assert batched.choice_weights is None
    else:
        assert batched.choice_weights.tolist() == pytest.approx(list(timm_augment.choice_weights))
    torch.manual_seed(0)
    out = batched(torch.rand(64, 3, 16, 16))
    assert out.shape == (64, 3, 16, 16) and out.isfinite().all()


def test_randaugments_probability_is_read_from_timm() -> None:
    spec = DataSpec("T", 10, 3, 16, (0.0,) * 3, (1.0,) * 3)
    torch.manual_seed(0)
    image = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8)
    untouched = []
    for config in ("rand-m9-p1.0", "rand-m9-p0.0"):
        aug = AugmentConfig(16, 0.0, config, reprob=0.0, hflip=0.0, crop_padding=0)
        out = DeviceAugment(TransformPlan.of(spec, aug), is_training=True)(image.repeat(300, 1, 1, 1))
        untouched.append((out == image.float() / 255).flatten(1).all(dim=1).float().mean().item())
    assert untouched[0] < 0.1 and untouched[1] == 1.0


def test_randaugment_chooses_and_sizes_ops_per_image_as_timm() -> None:
    spec = DataSpec("T", 10, 3, 16, (0.0,) * 3, (1.0,) * 3)
    aug = AugmentConfig(16, 0.0, "rand-m9-mstd0.5-inc1", reprob=0.0, hflip=0.0, crop_padding=0)
    torch.manual_seed(0)
    image = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8)
    out = DeviceAugment(TransformPlan.of(spec, aug), is_training=True)(image.repeat(600, 1, 1, 1))
    untouched = (out == image.float() / 255).flatten(1).all(dim=1).float().mean().item()
    assert 0.2 < untouched < 0.34, "two ops, each skipped with probability 0.5: a quarter (or a bit more) untouched"
    assert len({tuple(x.flatten().tolist()) for x in out}) > 300, "ops and magnitudes are drawn per image"
