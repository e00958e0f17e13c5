#!/usr/bin/env bash
# The one command that measures every GPU figure of the README (one H100 or H200, under 8 minutes):
#   1. the bf16 matmul rate; the bare Aux-S training step at 224 px, batch 128, bf16, eager and
#      compiled (images/s, MFU); sws train of the same on device-resident synthetic data, eager and
#      compiled, as a share of the bare step (benchmarks/gpu_step.py);
#   2. the data paths at 28 px on the GPU (benchmarks/data_path.py);
#   3. the whole default pipeline (sws pipeline, MNIST5K), timed;
#   4. the test suite on the GPU machine;
#   5. with two or more GPUs, one epoch under torchrun with NCCL.
# Everything is also written under $OUT when it is set.
#   bash benchmarks/gpu_check.sh
# The full-data Fashion-MNIST study, longer, is its own command: bash benchmarks/fashion_gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/sws_gpu_check}"
mkdir -p "$out"
python3 -m pip install -q -e '.[test]' 2>&1 | tail -n 2 || true
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$out/gpu.txt"
python3 benchmarks/gpu_step.py --batch 128 --steps 30 | tee "$out/gpu_step.json"
python3 benchmarks/data_path.py --device cuda --batch-size 128 --repeats 5 | tee "$out/data_path.txt"
start=$(date +%s)
sws pipeline --output_dir "$out/pipeline" --device cuda > "$out/pipeline.log" 2>&1
echo "sws pipeline (default config): $(( $(date +%s) - start )) s" | tee "$out/pipeline_time.txt"
sed -n '/## Source models/,/## Parameters stored/p' "$out/pipeline/report.md"
python3 -m pytest -q -x 2>&1 | tail -n 3 | tee "$out/tests.txt"
if [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
  torchrun --nproc_per_node=2 -m sws train --model aux_deit_tiny_patch16_224_L16_33433 --data-set MNIST5K \
    --input-size 32 --model-kwargs patch_size=4 --epochs 1 --batch-size 64 --no-repeated-aug | tail -n 3
fi
