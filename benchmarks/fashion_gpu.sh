#!/usr/bin/env bash
# The Fashion-MNIST study on the full training data (60,000 images) on one GPU: teacher, Aux-Net,
# Des-Nets of depths 4 to 12 from SWS, scratch and scratch-kd, and the budget study. Needs the idx
# files (apt-get install dataset-fashion-mnist, or --data-path DIR, or an online torchvision).
#   bash benchmarks/fashion_gpu.sh            (the run folder under $OUT, else runs/fashion_full)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-runs}/fashion_full"
python3 -m pip install -q -e . 2>&1 | tail -n 2 || true
start=$(date +%s)
sws pipeline --config fashion --output_dir "$out" --device cuda
echo "sws pipeline --config fashion (full data): $(( $(date +%s) - start )) s"
sed -n '/## Source models/,/## Wall time/p' "$out/report.md"
