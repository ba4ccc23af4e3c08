#!/usr/bin/env bash
# On the GPU machine, from the repository root: Kite's attention and train-step benchmarks next to the
# PyTorch baselines (SDPA; scripts/reference/gpu/train_step.py, eager), all in this one run. JSON and logs under $OUT.
# usage: bash .device/bench.sh [kite binary]     (KITE_BENCH_SKIP_TORCH=1 skips the PyTorch runs)
set -uo pipefail
kite="${1:-.device/kite}"
here="$(dirname "$0")"
out="${OUT:-/tmp/kite-out}"
mkdir -p "$out"
export KITE_KERNEL_CACHE="${KITE_KERNEL_CACHE:-/tmp/kite-kernels}" PYTHONUNBUFFERED=1
"$kite" bench attention --json "$out/kite-attention.json" 2>&1 | tee "$out/bench.log"
"$kite" bench attention --kv-heads 8 2>&1 | tee -a "$out/bench.log"
if [ -z "${KITE_BENCH_SKIP_TORCH:-}" ]; then python3 "$here/sdpa_baseline.py" 2>&1 | tee -a "$out/bench.log"; fi
"$kite" bench train-step --json "$out/kite-train-step.json" 2>&1 | tee -a "$out/bench.log"
if [ -n "${KITE_BENCH_DRIVER_POOL:-}" ]; then
    "$kite" bench train-step --allocator driver --json "$out/kite-train-step-driver.json" 2>&1 | tee -a "$out/bench.log"
fi
if [ -z "${KITE_BENCH_SKIP_TORCH:-}" ]; then python3 "$here/train_step.py" eager 2>&1 | tee -a "$out/bench.log"; fi
