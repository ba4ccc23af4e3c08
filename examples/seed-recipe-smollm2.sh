#!/usr/bin/env bash
# slime's "DeepSeek R1 on 128xH100" recipe, ported flag for flag and scaled down to SmolLM2-135M-Instruct (from
# its GGUF) on a synthetic math set, on the CPU: 3 rollouts. The recipe's `--rm-type deepscaler` wants
# `\boxed{}` answers a 135M model does not write; a reward program scoring the last number stands in for it. The flags that only mean something on a GPU
# cluster (parallelism, offload, DeepEP) are kept: Kite accepts them and prints that they have no effect.
# usage: bash examples/seed-recipe-smollm2.sh [kite binary]   (after scripts/assets/fetch.sh; ~5 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
kite="${1:-.build/release/kite}"
model=.assets/SmolLM2-135M-Instruct.Q4_1.gguf
run="${KITE_RUN_DIR:-kite-runs/seed-recipe-smollm2}"
mkdir -p "$run"
"$kite" data make arithmetic --n 512 --out "$run/math.jsonl" --seed 1

CKPT_ARGS=(--hf-checkpoint "$model" --save "$run" --save-interval 1)
ROLLOUT_ARGS=(
    --prompt-data "$run/math.jsonl" --input-key prompt --label-key label --apply-chat-template --rollout-shuffle
    --custom-rm-cmd "python3 examples/last_number_reward.py" --num-rollout 3 --rollout-batch-size 4 --n-samples-per-prompt 8
    --rollout-max-response-len 32 --rollout-temperature 0.8
    --over-sampling-batch-size 8 --dynamic-sampling-filter-path slime.rollout.filter_hub.dynamic_sampling_filters.check_reward_nonzero_std
    --num-steps-per-rollout 4 --balance-data
)
PERF_ARGS=(
    --tensor-model-parallel-size 8 --sequence-parallel --pipeline-model-parallel-size 4 --context-parallel-size 4
    --expert-model-parallel-size 32 --expert-tensor-parallel-size 1
    --recompute-granularity full --recompute-method uniform --recompute-num-layers 1
    --use-dynamic-batch-size --max-tokens-per-gpu 4096
)
GRPO_ARGS=(
    --advantage-estimator grpo --use-kl-loss --kl-loss-coef 0.00 --kl-loss-type low_var_kl --entropy-coef 0.00
    --eps-clip 0.2 --eps-clip-high 0.28
)
OPTIMIZER_ARGS=(--optimizer adam --lr 1e-6 --lr-decay-style constant --weight-decay 0.1 --adam-beta1 0.9 --adam-beta2 0.98)
SGLANG_ARGS=(--sglang-mem-fraction-static 0.6 --sglang-server-concurrency 1024)

"$kite" train "${CKPT_ARGS[@]}" "${ROLLOUT_ARGS[@]}" "${PERF_ARGS[@]}" "${GRPO_ARGS[@]}" "${OPTIMIZER_ARGS[@]}" "${SGLANG_ARGS[@]}" \
    --tensorboard-dir "$run/tensorboard"
echo "metrics: $run/metrics.jsonl, TensorBoard events: $run/tensorboard, checkpoints: $run/rollout_*"
