"""Parameters stored by a learngene against the Des-Nets it initializes, and the time to expand.

The paper reports that one base-width learngene (Aux-B, stages 3,3,4,3,3) initializes Des-Nets of
6 to 15 layers while storing about 20x fewer parameters than those Des-Nets together. This script
counts both, and times ``expand`` of a base-width learngene into a 12-layer Des-Net (from the
file, and from memory), as medians over repeats.

    python benchmarks/storage_and_expand.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import timm
import torch

import sws
from sws.architecture import des_net_num_params
from sws.expansion import expand
from sws.learngene import Learngene, SWSLearngene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--width", default="base", choices=("tiny", "small", "base"))
    args = parser.parse_args()
    torch.manual_seed(0)
    aux = timm.create_model(f"aux_deit_{args.width}_patch16_224_L16_33433")
    gene = SWSLearngene.from_aux_net(aux)
    depths = range(6, 16)
    des_total = sum(des_net_num_params(gene.architecture, d) for d in depths)
    # check the shape-based count against a real model once
    assert des_net_num_params(gene.architecture, 12) == sum(p.numel() for p in expand(gene, 12).parameters())
    print(
        f"sws {sws.__version__}, torch {torch.__version__}, timm {timm.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"\n{args.width}-width learngene (stages 3,3,4,3,3): {gene.num_params:,} parameters stored")
    print(f"Des-Nets of depths {depths.start}-{depths.stop - 1}: {des_total:,} parameters together")
    print(f"ratio: {des_total / gene.num_params:.1f}x (the paper reports about 20x)")
    for depth in depths:
        print(f"  depth {depth:2d}: {des_net_num_params(gene.architecture, depth):>12,}")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "base.learngene.safetensors"
        gene.save(path)
        size = path.stat().st_size
        from_file, from_memory = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            expand(Learngene.load(path), depth=12)
            from_file.append(time.perf_counter() - start)
            start = time.perf_counter()
            expand(gene, depth=12)
            from_memory.append(time.perf_counter() - start)
    print(f"\nlearngene file: {size / 2**20:.1f} MiB")
    print(
        f"expand into a 12-layer Des-Net, median of {args.repeats}: {statistics.median(from_file):.3f} s from the "
        f"file (load + build + copy), {statistics.median(from_memory):.3f} s from memory (build + copy)"
    )


if __name__ == "__main__":
    main()
