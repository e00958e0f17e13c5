"""Shared fixtures: tiny shapes so every test runs in seconds on a 2-core CPU."""

from __future__ import annotations

import pytest
import torch

from sws.architecture import ViTArchitecture
from sws.aux_net import AuxNet

# a study small enough for a test (16-pixel images, a 2-layer Aux-Net of width 16, the teacher and
# the Aux-Net one epoch each); tests add their depths, methods and Des-Net epochs
TINY_STUDY = [
    "--set", "input_size=16",
    "--set", "train.batch-size=16",
    "--set", "des_net.train.batch-size=16",
    "--set", "train.print-freq=1",
    "--set", "teacher.train.epochs=1",
    "--set", "aux.layout=1,1",
    "--set", "aux.model_kwargs={embed_dim: 16, num_heads: 2, patch_size: 4}",
    "--set", "aux.train.epochs=1",
]  # fmt: skip


@pytest.fixture
def tiny_arch() -> ViTArchitecture:
    return ViTArchitecture(
        embed_dim=32, num_heads=2, mlp_ratio=2.0, patch_size=4, img_size=16, in_chans=3, num_classes=5
    )


def perturbed_aux_net(layout: str, arch: ViTArchitecture, seed: int = 0) -> AuxNet:
    """An Aux-Net with every tensor moved off its initial value (norm weights away from 1,
    biases away from 0), so copies of the wrong tensor cannot pass unnoticed."""
    torch.manual_seed(seed)
    model = AuxNet(layout, **arch.to_dict())
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    return model.eval()


def write_image_folder(root, classes=("red", "green", "blue"), train_per_class=32, val_per_class=8, size=16, seed=0):
    """A tiny ImageFolder tree (train/ and val/) whose classes differ by colour, so that a model
    learns them within a couple of epochs."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    colours = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200), "grey": (128, 128, 128)}
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for name in classes:
            folder = Path(root) / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                noise = rng.integers(-60, 60, size=(size, size, 3))
                pixels = np.clip(np.array(colours[name]) + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return Path(root)


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("data"))


# Flags that make a training run tiny and deterministic on a CPU.
FAST = [
    "--data-set",
    "FOLDER",
    "--input-size",
    "16",
    "--batch-size",
    "16",
    "--num_workers",
    "0",
    "--no-model-ema",
    "--mixup",
    "0",
    "--cutmix",
    "0",
    "--aa",
    "none",
    "--reprob",
    "0",
    "--warmup-epochs",
    "0",
    "--device",
    "cpu",
    "--print-freq",
    "2",
    "--drop-path",
    "0",
]
TINY_VIT = ["--model-kwargs", "embed_dim=32", "num_heads=2", "patch_size=4"]


def kill_at_line(command: list[str], env: dict[str, str], prefix: str) -> None:
    """Run ``command`` and SIGKILL it as soon as a line of its stderr starts with ``prefix`` (a
    progress line), as a crash or a lost machine would stop it."""
    import signal
    import subprocess

    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.startswith(prefix):
            process.send_signal(signal.SIGKILL)
            break
    process.wait()
    assert process.returncode == -signal.SIGKILL, "".join(seen[-20:])
