#!/usr/bin/env bash
# On the GPU machine: the engine issue's checks and benchmarks, stage by stage, each stage's failure leaving
# the rest to run. Everything is logged to $OUT/engine-bench.log; JSON results beside it.
# usage: bash engine-bench.sh STAGE...   (from the repository root; the binary and scripts sit beside this file)
# stages: parity decode det grpo grpo-det hf-eager hf-static
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
kite="$here/kite"
out="${OUT:-/tmp/kite-out}"
mkdir -p "$out"
log="$out/engine-bench.log"
export KITE_KERNEL_CACHE="${KITE_KERNEL_CACHE:-/tmp/kite-kernels}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader 2>&1 | tee -a "$log"
step() { echo "=== $* ($(date +%T))" | tee -a "$log"; }
for stage in "$@"; do
    case "$stage" in
    parity)
        step parity
        timeout 420 "$kite" bench cuda-parity --json "$out/parity.json" > "$out/parity-full.log" 2>&1
        echo "cuda-parity exit $?" | tee -a "$log"
        grep -E "FAIL|checks passed|^after|engine|det |decode|sample|graph" "$out/parity-full.log" | tee -a "$log"
        rm -f "$out/parity-full.log" ;;
    decode)
        step decode
        timeout 400 "$kite" bench decode --graphs "${DECODE_GRAPHS:-both}" ${DECODE_FLAGS:-} --json "$out/decode.json" 2>&1 | tee -a "$log" ;;
    det)
        step decode deterministic
        timeout 400 "$kite" bench decode --deterministic --graphs on --json "$out/decode-det.json" 2>&1 | tee -a "$log" ;;
    grpo)
        step grpo-step demo
        timeout 240 "$kite" bench grpo-step --model demo --json "$out/grpo-demo.json" 2>&1 | tee -a "$log"
        step grpo-step qwen3-0.6b
        timeout 400 "$kite" bench grpo-step --model qwen3-0.6b --json "$out/grpo-qwen.json" 2>&1 | tee -a "$log" ;;
    grpo-det)
        step grpo-step demo deterministic
        timeout 240 "$kite" bench grpo-step --model demo --deterministic --iterations 1 2>&1 | tee -a "$log"
        step grpo-step qwen3-0.6b deterministic
        timeout 400 "$kite" bench grpo-step --model qwen3-0.6b --deterministic --iterations 1 --prompts 8 --max-response-length 128 2>&1 | tee -a "$log" ;;
    hf-eager)
        step HF generate eager
        timeout 400 python3 "$here/decode_eager.py" ${HF_BATCHES:-1 64 256} 2>&1 | tail -n 3 | tee -a "$log" ;;
    hf-static)
        step HF generate static cache + torch.compile
        timeout 500 python3 "$here/decode_static.py" ${HF_STATIC_BATCHES:-1 256} 2>&1 | tail -n 3 | tee -a "$log" ;;
    *) echo "unknown stage $stage" | tee -a "$log" ;;
    esac
done
