#!/usr/bin/env bash
# On the GPU machine: the GPU time of every kernel of two decode steps at batch 256 (graphs off, so each
# kernel is a launch ncu can time), through Nsight Compute and KITE_CUDA_PROFILE_STEPS. Writes
# $OUT/ncu.csv and prints the per-kernel summary.
# usage: bash ncu-decode-profile.sh [batch]   (from the repository root; the binary sits beside this file)
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${OUT:-/tmp/kite-out}"
batch="${1:-256}"
mkdir -p "$out"
export KITE_KERNEL_CACHE="${KITE_KERNEL_CACHE:-/tmp/kite-kernels}"
# Step 150 of the warm-up and main runs is a decode step of the main run (the prompts' prefill takes 8).
KITE_CUDA_PROFILE_STEPS=150:2 timeout 300 ncu --profile-from-start off --clock-control none --cache-control none \
    --metrics gpu__time_duration.sum --csv "$here/kite" bench decode --batches "$batch" --graphs off --new 256 \
    > "$out/ncu.csv" 2> "$out/ncu.err"
python3 "$here/ncu_summary.py" "$out/ncu.csv" 2
