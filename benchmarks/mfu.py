"""Training speed and model-FLOPs utilization (MFU) of the Aux-Net against a plain Des-Net.

The paper's Aux-S (16 layers, stages 3,3,4,3,3, width 384, 6 heads) and a 16-layer Des-Net of
the same width train on random data at 32 px with patch 4 and at 224 px with patch 16, batch 8 and
32, float32, with AdamW. Utilization is model FLOPs per second (3x the forward FLOPs counted by
PyTorch's FLOP counter, per image) over this machine's float32 matrix-multiply rate, measured in
the same run. The two models are timed alternately in one process, since this machine's speed
drifts; each figure is a median. Peak memory (resident set) of each setting is measured in a
separate process.

Targets (issue 3): Aux-Net >= 80% MFU at 32 px batch 32, >= 75% at 224 px batch 32, and within 5%
of the Des-Net's utilization at the same settings.

    python benchmarks/mfu.py [--rounds 3] [--steps 3] [--settings 32:8,32:32,224:8,224:32]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

import sws  # noqa: F401  (registers the models)
from sws.cost import forward_flops
from sws.models import create_model

WIDTH = {"embed_dim": 384, "num_heads": 6}


def matmul_rate(size: int = 2048, repeats: int = 10) -> float:
    """float32 FLOP/s of a large square matrix multiply, median of ``repeats``."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times)


def build(kind: str, img: int, patch: int) -> torch.nn.Module:
    args = {**WIDTH, "img_size": img, "patch_size": patch, "num_classes": 1000}
    if kind == "aux":
        return create_model("aux_net", layout="3,3,4,3,3", **args)
    return create_model("des_net", depth=16, **args)


def step_seconds(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: int, img: int, steps: int) -> float:
    x = torch.randn(batch, 3, img, img)
    y = torch.randint(0, 1000, (batch,))
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_memory_mb(kind: str, img: int, patch: int, batch: int) -> float:
    """Peak resident memory of a fresh process that builds the model and runs two training steps
    (read from /proc/self/status VmHWM: ru_maxrss would carry over this parent's own peak)."""
    code = (
        "import torch; import benchmarks.mfu as m; from sws.cost import peak_memory_mb; "
        f"model = m.build('{kind}', {img}, {patch}); opt = torch.optim.AdamW(model.parameters()); "
        f"m.step_seconds(model, opt, {batch}, {img}, 2); "
        "print(peak_memory_mb(torch.device('cpu')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternations of Aux-Net and Des-Net")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round (after one warm-up step)")
    parser.add_argument("--settings", default="32:8,32:32,224:8,224:32", help="image:batch pairs")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []
    for setting in args.settings.split(","):
        img, batch = (int(v) for v in setting.split(":"))
        patch = 4 if img <= 32 else 16
        models = {kind: build(kind, img, patch) for kind in ("aux", "des")}
        optimizers = {kind: torch.optim.AdamW(m.parameters(), lr=1e-4) for kind, m in models.items()}
        flops = {kind: 3 * forward_flops(m, (1, 3, img, img)) * batch for kind, m in models.items()}
        for kind in models:  # warm-up
            step_seconds(models[kind], optimizers[kind], batch, img, 1)
        seconds: dict[str, list[float]] = {"aux": [], "des": []}
        rates = []
        for _ in range(args.rounds):
            rates.append(matmul_rate())
            for kind in ("aux", "des"):
                seconds[kind].append(step_seconds(models[kind], optimizers[kind], batch, img, args.steps))
        rate = statistics.median(rates)
        row = {"img": img, "patch": patch, "batch": batch, "matmul_gflops": rate / 1e9}
        for kind in ("aux", "des"):
            t = statistics.median(seconds[kind])
            row[f"{kind}_images_per_sec"] = batch / t
            row[f"{kind}_mfu"] = flops[kind] / t / rate
            row[f"{kind}_params"] = sum(p.numel() for p in models[kind].parameters())
            if not args.no_memory:
                row[f"{kind}_peak_mb"] = peak_memory_mb(kind, img, patch, batch)
        row["aux_over_des"] = row["aux_mfu"] / row["des_mfu"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(
        "\n| img | patch | batch | matmul GFLOP/s | Aux-Net img/s | Aux MFU | Des-Net img/s | Des MFU | Aux/Des "
        "| Aux peak MB | Des peak MB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['img']} | {r['patch']} | {r['batch']} | {r['matmul_gflops']:.0f} | {r['aux_images_per_sec']:.1f} "
            f"| {100 * r['aux_mfu']:.1f}% | {r['des_images_per_sec']:.1f} | {100 * r['des_mfu']:.1f}% | "
            f"{r['aux_over_des']:.3f} | {r.get('aux_peak_mb', float('nan')):.0f} | "
            f"{r.get('des_peak_mb', float('nan')):.0f} |"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
