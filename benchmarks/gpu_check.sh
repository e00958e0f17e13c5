#!/usr/bin/env bash
# One prepared command for a lent GPU (under 5 minutes): installs sws, runs bf16 training steps of
# the paper's Aux-S (and of a 16-layer Des-Net) at 224 px and prints images/s and peak memory;
# with two or more GPUs visible it also trains one epoch under torchrun with NCCL.
#   bash benchmarks/gpu_check.sh            (results also in $OUT/gpu_check.json when OUT is set)
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-deps -e . 2>/dev/null || python3 -m pip install -q -e .
nvidia-smi --query-gpu=name,memory.total --format=csv
python3 benchmarks/gpu_step.py --batch 128 --steps 20 | tee "${OUT:-/tmp}/gpu_check.json"
if [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
  torchrun --nproc_per_node=2 -m sws train --model aux_deit_tiny_patch16_224_L16_33433 --data-set MNIST5K \
    --input-size 32 --model-kwargs patch_size=4 --epochs 1 --batch-size 64 --no-repeated-aug
fi
