#!/usr/bin/env bash
# kite bench serve on the device machine's 16 CPU cores (no GPU used): the tiny fixture model at concurrency
# 1, 16 and 64, server with 1 and 4 threads. Run from the repository root after scripts/device/build.sh:
#   bash .device/bench-serve.sh    (writes machine.txt and bench-threads*.jsonl under $OUT)
set -uo pipefail
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
KITE="$(dirname "$0")/kite"
{ nproc; lscpu | grep -E "Model name|^CPU\(s\)"; date -u; } > "$OUT/machine.txt"
for threads in 1 4; do
  "$KITE" serve --model Tests/Fixtures/models/qwen3 --port 0 --max-total-tokens 262144 --threads "$threads" > "$OUT/serve-$threads.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$OUT/serve-$threads.log" && break; sleep 0.1; done
  port=$(grep -o "127.0.0.1:[0-9]*" "$OUT/serve-$threads.log" | head -1 | cut -d: -f2)
  for c in 1 16 64; do
    n=1024; [ "$c" = 1 ] && n=512
    "$KITE" bench serve --url "http://127.0.0.1:$port" --num-prompts $n --max-concurrency $c --random-input-len 32 --random-output-len 64 --seed $((c + 10 * threads)) --json >> "$OUT/bench-threads$threads.jsonl"
  done
  kill $pid; wait $pid
done
cat "$OUT"/machine.txt "$OUT"/bench-*.jsonl
