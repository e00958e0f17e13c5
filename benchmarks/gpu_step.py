"""A bf16 training step of the paper's Aux-S at 224 px on a GPU: images/s and peak memory.

Run by ``benchmarks/gpu_check.sh`` on a lent GPU; also checks that the Aux-Net's shared weights stay
shared and that DDP-free autocast training moves them.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import sws  # noqa: F401
from sws.models import create_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    results = {"device": torch.cuda.get_device_name(device), "torch": torch.__version__}
    for kind in ("aux", "des"):
        name = "aux_deit_small_patch16_224_L16_33433" if kind == "aux" else "deit_small_patch16_224_L16"
        model = create_model(name, num_classes=1000).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, fused=True)
        step_model = torch.compile(model) if args.compile else model
        x = torch.randn(args.batch, 3, 224, 224, device=device)
        y = torch.randint(0, 1000, (args.batch,), device=device)
        torch.cuda.reset_peak_memory_stats(device)
        for step in range(args.steps + 3):
            if step == 3:
                torch.cuda.synchronize(device)
                start = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = torch.nn.functional.cross_entropy(step_model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize(device)
        seconds = (time.perf_counter() - start) / args.steps
        results[kind] = {
            "model": name,
            "params": sum(p.numel() for p in model.parameters()),
            "images_per_sec": args.batch / seconds,
            "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30,
            "loss": float(loss),
        }
        if kind == "aux":
            results[kind]["shared_after_training"] = model.blocks[1].attn.qkv.weight is model.blocks[0].attn.qkv.weight
        del model, optimizer, step_model
        torch.cuda.empty_cache()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
