#!/usr/bin/env bash
# On the GPU machine: the timeline of four graph-replayed decode steps (Nsight Systems, graph nodes traced one
# by one, KITE_CUDA_PROFILE_STEPS bracketing the steps), then the time between kernels by the pair of
# kernels around each gap (nsys_gaps.py). Unlike ncu this keeps the kernels' overlap and the graph's
# launch gaps as they are in a real step. GRAPH_TRACE=graph traces each replay as one operation instead (node tracing
# slows cuGraphLaunch itself, ~0.3 ms a replay, which shows as a stall at the head of every step).
# usage: bash nsys-decode-timeline.sh [batch] [label]   (from the repository root; the binary sits beside this file)
# DECODE_FLAGS adds flags to `kite bench decode` (e.g. "--overlap-schedule off").
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${OUT:-/tmp/kite-out}"
batch="${1:-256}"
label="${2:-decode}"
mkdir -p "$out"
export KITE_KERNEL_CACHE="${KITE_KERNEL_CACHE:-/tmp/kite-kernels}"
nsys="$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys /opt/nvidia/nsight-compute/*/host/target-linux-x64/nsys 2>/dev/null | head -n 1)"
if [ -z "$nsys" ]; then echo "nsys not found"; exit 1; fi
KITE_CUDA_PROFILE_STEPS=150:4 timeout 300 "$nsys" profile --capture-range=cudaProfilerApi --capture-range-end=stop \
    --cuda-graph-trace="${GRAPH_TRACE:-node}" --trace=cuda --sample=none --cpuctxsw=none -o "$out/$label" --force-overwrite true \
    "$here/kite" bench decode --batches "$batch" --graphs on --new 256 ${DECODE_FLAGS:-} > "$out/$label-nsys.log" 2>&1
# The nsys that ships inside Nsight Compute leaves a .qdstrm; its importer turns that into a report.
if [ ! -f "$out/$label.nsys-rep" ] && [ -f "$out/$label.qdstrm" ]; then
    importer="$(ls /opt/nvidia/nsight-compute/*/host/linux-desktop-glibc_*-x64/QdstrmImporter 2>/dev/null | head -n 1)"
    # It needs libdw (elfutils), which the GPU machine lacks: a copy may sit in lib/ beside the binary.
    LD_LIBRARY_PATH="$here/lib:${LD_LIBRARY_PATH:-}" "$importer" -i "$out/$label.qdstrm" >> "$out/$label-nsys.log" 2>&1
fi
"$nsys" stats --report cuda_gpu_trace --report cuda_api_trace --format csv --output "$out/$label" "$out/$label.nsys-rep" >> "$out/$label-nsys.log" 2>&1
python3 "$here/nsys_gaps.py" "$out/${label}_cuda_gpu_trace.csv" 4
python3 "$here/nsys_step.py" "$out/${label}_cuda_gpu_trace.csv" "$out/${label}_cuda_api_trace.csv" > "$out/${label}-step.txt"
rm -f "$out/$label.nsys-rep" "$out/$label.sqlite" "$out/$label.qdstrm"
