#!/usr/bin/env bash
# On the GPU machine: `kite train --device cuda` end to end on the tiny chat fixture (2 rollouts, GRPO with a
# KL term, a reward program), then the same on the CPU; metrics.jsonl of both under $OUT.
# usage: bash .device/train-smoke.sh   (from the repository root)
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
kite="$here/kite"
out="${OUT:-/tmp/kite-out}"
mkdir -p "$out"
export KITE_KERNEL_CACHE="${KITE_KERNEL_CACHE:-/tmp/kite-kernels}"
work="$(mktemp -d)"
"$kite" data make arithmetic --n 64 --out "$work/arith.jsonl" --seed 3
for device in cuda cpu; do
    echo "=== kite train --device $device ($(date +%T))"
    timeout 240 "$kite" train --device "$device" --hf-checkpoint Tests/Fixtures/models/tiny_chat --prompt-data "$work/arith.jsonl" \
        --input-key prompt --label-key label --apply-chat-template --custom-rm-cmd "python3 Tests/Fixtures/rewards/digit_reward.py" \
        --num-rollout 2 --rollout-batch-size 4 --n-samples-per-prompt 4 --rollout-max-response-len 8 --rollout-temperature 0.8 \
        --num-steps-per-rollout 2 --advantage-estimator grpo --use-kl-loss --kl-loss-coef 0.001 --kl-loss-type low_var_kl \
        --eps-clip 0.2 --eps-clip-high 0.28 --lr 1e-3 --save "$work/run-$device" 2>&1 | tail -n 12
    echo "exit $?"
    cp "$work/run-$device/metrics.jsonl" "$out/train-smoke-$device.jsonl" 2>/dev/null
done
