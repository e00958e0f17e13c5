"""Training speed of the paper's Aux-S at 224 px on one GPU: the bare step against ``sws train``.

Prints one JSON object with:

- ``matmul_tflops``: the bf16 matrix-multiply rate of this GPU, measured here (8192^3 products);
- ``bare``: a bare bf16 training step of Aux-S (batch 128, AdamW fused, random data already on the
  GPU), eager and ``torch.compile``d: images/s and model FLOPs utilization against that rate;
- ``sws_train``: ``sws train`` of the same model, batch and precision on device-resident synthetic
  data (``--data-set SYNTHETIC``, ``--data-on-device on``), eager and compiled: the last epoch's
  training images/s, and its ratio to the bare step's.

Run by ``benchmarks/gpu_check.sh``::

    python benchmarks/gpu_step.py --batch 128 --steps 30
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import sws  # noqa: F401
from sws.cost import forward_flops
from sws.models import create_model
from sws.train import train
from sws.train_config import parse_args

MODEL = "aux_deit_small_patch16_224_L16_33433"


def matmul_tflops(device: torch.device, size: int = 8192, repeats: int = 20) -> float:
    """The bf16 matrix-multiply rate of the device, in TFLOP/s."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e12


def bare_step(device: torch.device, batch: int, steps: int, compile_model: bool) -> float:
    """Images/s of a bare bf16 AdamW training step of Aux-S on random data already on the GPU."""
    model = create_model(MODEL, num_classes=1000).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, fused=True)
    step_model = torch.compile(model) if compile_model else model
    x = torch.randn(batch, 3, 224, 224, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)
    for step in range(steps + 5):
        if step == 5:
            torch.cuda.synchronize(device)
            start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(step_model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize(device)
    return batch * steps / (time.perf_counter() - start)


def sws_train_rate(batch: int, compile_model: bool) -> float:
    """Training images/s of ``sws train``'s last epoch (the first ones warm up and compile)."""
    with tempfile.TemporaryDirectory() as folder:
        argv = [
            *("--model", MODEL, "--data-set", "SYNTHETIC-224", "--data-on-device", "on", "--amp", "bf16"),
            *("--batch-size", str(batch), "--epochs", "4", "--warmup-epochs", "0", "--aa", "none", "--reprob", "0"),
            *("--mixup", "0", "--cutmix", "0", "--color-jitter", "0", "--no-model-ema", "--print-freq", "1"),
            *("--output_dir", str(Path(folder) / "run"), "--device", "cuda"),
            *(["--compile"] if compile_model else []),
        ]
        result = train(parse_args(argv))
    return result.history[-1]["train_images_per_sec"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    device = torch.device("cuda")
    rate = matmul_tflops(device)
    flops_per_image = 3 * forward_flops(create_model(MODEL, num_classes=1000).to(device), (1, 3, 224, 224))
    results: dict = {"device": torch.cuda.get_device_name(device), "torch": torch.__version__, "matmul_tflops": rate}
    for mode, compiled in (("eager", False), ("compiled", True)):
        bare = bare_step(device, args.batch, args.steps, compiled)
        looped = sws_train_rate(args.batch, compiled)
        results[mode] = {
            "bare_images_per_sec": bare,
            "bare_mfu": bare * flops_per_image / (rate * 1e12),
            "sws_train_images_per_sec": looped,
            "sws_train_over_bare": looped / bare,
        }
        torch.cuda.empty_cache()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
