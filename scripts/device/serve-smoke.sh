#!/usr/bin/env bash
# On the GPU machine: `kite serve` on the CPU and on the GPU (fp32, bf16, bf16 with an fp8 checkpoint), the same
# greedy /generate requests to each, answers compared by serve_compare.py; everything under $OUT.
# usage: bash .device/serve-smoke.sh   (from the repository root)
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
kite="$here/kite"
out="${OUT:-/tmp/kite-out}"
mkdir -p "$out"
export KITE_KERNEL_CACHE="${KITE_KERNEL_CACHE:-/tmp/kite-kernels}"
port=30100
serve() {  # name model flags...
    local name="$1" model="$2"; shift 2
    port=$((port + 1))
    "$kite" serve --model "$model" --skip-tokenizer-init --port "$port" "$@" > "$out/serve-$name.log" 2>&1 &
    local pid=$!
    python3 "$here/serve_compare.py" request "http://127.0.0.1:$port" "$out/answer-$name.json" >> "$out/serve-$name.log" 2>&1
    echo "$name: client exit $?"
    kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
}
serve cpu Tests/Fixtures/models/qwen3
serve cuda-fp32 Tests/Fixtures/models/qwen3 --device cuda --precision fp32
serve cuda-bf16 Tests/Fixtures/models/qwen3 --device cuda --mem-fraction-static 0.3
serve fp8-cpu Tests/Fixtures/fp8/quantized
serve fp8-cuda Tests/Fixtures/fp8/quantized --device cuda --mem-fraction-static 0.3
python3 "$here/serve_compare.py" compare "$out" | tee "$out/serve-compare.txt"
