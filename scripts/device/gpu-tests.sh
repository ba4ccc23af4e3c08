#!/usr/bin/env bash
# On the GPU machine, from the repository root: the CUDA parity table (every op, fp32 and bf16 mode, and
# whole models against the CPU backend). Results under $OUT (parity.json, parity.log).
# usage: bash .device/gpu-tests.sh [kite binary]
set -uo pipefail
kite="${1:-.device/kite}"
out="${OUT:-/tmp/kite-out}"
mkdir -p "$out"
export KITE_KERNEL_CACHE="${KITE_KERNEL_CACHE:-/tmp/kite-kernels}"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader 2>&1 | tee "$out/gpu.txt"
"$kite" cuda info 2>&1 | tee -a "$out/gpu.txt"
"$kite" bench cuda-parity --json "$out/parity.json" 2>&1 | tee "$out/parity.log"
status=${PIPESTATUS[0]}
echo "cuda-parity exit status $status"
exit "$status"
