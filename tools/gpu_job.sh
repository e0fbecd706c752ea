#!/usr/bin/env bash
# The embedder job for a lent GPU machine (issues 22 and 17): the whole bundled EfficientNet-Lite0
# embedder fine-tuned on CUDA at a larger input with hard negatives, which the 2-core CPU cannot afford.
#
#   here:        python -m tools.gpu_pack --data ../shared/data/grocery     # gpu-carry/: photos at 256 px + wheels
#   GPU machine: bash tools/gpu_job.sh                                     # device run, carry ["gpu-carry"]
#
# Writes under $OUT (default /tmp/gpu-out): the trained embedder (ONNX + float16 .pt), the per-epoch
# val recall (history.json) and the log. Needs only what that machine has (Python 3, torch with CUDA,
# numpy, opencv, onnx, onnxruntime) plus the wheels in gpu-carry/wheels, unpacked, not installed.
# Never run in CI. Not run yet: no GPU has been lent to this project's sessions so far.
set -euo pipefail
cd "$(dirname "$0")/.."
# knobs for a smaller run (the test runs this script on the CPU with tiny settings)
OUT=${OUT:-/tmp/gpu-out}
CARRY=${CARRY:-gpu-carry}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
EPOCHS=${EPOCHS:-12}
SIZE=${SIZE:-224}
EXTRA=${EXTRA:-}
mkdir -p "$OUT"
[ -d "$CARRY/grocery" ] || { echo "$CARRY/grocery missing: run python -m tools.gpu_pack here and carry gpu-carry" >&2; exit 2; }
LIB=$(mktemp -d)
shopt -s nullglob
for wheel in "$CARRY"/wheels/*.whl; do "$PYTHON" -m zipfile -e "$wheel" "$LIB"; done
export PYTHONPATH="$LIB:$PWD"
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi") | tee "$OUT/gpu.txt"
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/gpu.txt"
# shellcheck disable=SC2086
"$PYTHON" -m tools.train_embedder --data "$CARRY/grocery" --init models/weights/embedder.pt --device "$DEVICE" \
    --trainable-blocks 16 --trunk-lr-scale 0.3 --lr 3e-4 --size "$SIZE" --epochs "$EPOCHS" \
    --hard-margin 0.1 --hard-neighbours 3 --plain-catalog-view --seed 0 $EXTRA \
    --work "$OUT/work" --out "$OUT/embedder-gpu.onnx" 2>&1 | tr '\r' '\n' | grep -v -E '[0-9]+(it|img|batch)/s\]$' | tee "$OUT/train.log"
cp "$OUT/work/history.json" "$OUT/history.json"
rm -f "$OUT/work/last.pt"  # a full training state: too big to bring back, and the .pt beside the ONNX is the result
