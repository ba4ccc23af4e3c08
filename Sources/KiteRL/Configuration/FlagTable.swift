/// One `kite train` flag: slime's name, what it takes, and where it belongs.
public struct FlagSpec: Sendable {
    public enum Kind: Sendable, Equatable {
        /// Present or absent (`--rollout-shuffle`).
        case toggle
        case integer
        case number
        case text
        /// One or more values (`--rollout-stop a b`).
        case list
    }

    public var name: String
    public var kind: Kind
    public var group: String
    public var help: String
    /// Set for Megatron/SGLang flags that Kite accepts but that change nothing here, with the reason.
    public var noEffect: String?

    init(_ name: String, _ kind: Kind, _ group: String, _ help: String, noEffect: String? = nil) {
        self.name = name
        self.kind = kind
        self.group = group
        self.help = help
        self.noEffect = noEffect
    }
}

/// The flags of `kite train`, grouped as slime's scripts group them (ROLLOUT_ARGS, GRPO_ARGS, ...).
public enum FlagTable {
    static let single = "one process on one device: there is no model parallelism to configure"

    public static let all: [FlagSpec] = [
        // Model and checkpoints.
        FlagSpec("--hf-checkpoint", .text, "CKPT", "Hugging Face directory or .gguf: initial weights, config and tokenizer"),
        FlagSpec("--ref-load", .text, "CKPT", "weights of the reference policy for KL terms (default: the initial weights)"),
        FlagSpec("--load", .text, "CKPT", "resume from the newest checkpoint in this directory, if any"),
        FlagSpec("--save", .text, "CKPT", "write checkpoints into this directory"),
        FlagSpec("--save-interval", .integer, "CKPT", "save every N rollouts (and after the last)"),
        FlagSpec("--save-hf", .text, "CKPT", "also export a Hugging Face directory; '{rollout_id}' in the path is replaced"),
        FlagSpec("--no-save-optim", .toggle, "CKPT", "leave optimizer state out of checkpoints"),
        // Data and rollout.
        FlagSpec("--prompt-data", .text, "ROLLOUT", "jsonl of prompts"),
        FlagSpec("--input-key", .text, "ROLLOUT", "field holding the prompt (default: input)"),
        FlagSpec("--label-key", .text, "ROLLOUT", "field holding the label"),
        FlagSpec("--metadata-key", .text, "ROLLOUT", "field holding metadata (default: metadata)"),
        FlagSpec("--tool-key", .text, "ROLLOUT", "field holding tools (default: tools)"),
        FlagSpec("--apply-chat-template", .toggle, "ROLLOUT", "render prompts with the model's chat template"),
        FlagSpec("--apply-chat-template-kwargs", .text, "ROLLOUT", "JSON object of extra template variables, e.g. {\"enable_thinking\": false}"),
        FlagSpec("--rollout-shuffle", .toggle, "ROLLOUT", "shuffle prompts every epoch"),
        FlagSpec("--rollout-seed", .integer, "ROLLOUT", "seed of shuffling and sampling (default: 42)"),
        FlagSpec("--skip-malformed-data", .toggle, "ROLLOUT", "skip malformed prompt lines (counted) instead of stopping"),
        FlagSpec("--num-rollout", .integer, "ROLLOUT", "rollouts to run"),
        FlagSpec("--rollout-batch-size", .integer, "ROLLOUT", "prompt groups per rollout"),
        FlagSpec("--n-samples-per-prompt", .integer, "ROLLOUT", "samples per prompt (default: 1)"),
        FlagSpec("--rollout-max-response-len", .integer, "ROLLOUT", "longest response in tokens"),
        FlagSpec("--rollout-temperature", .number, "ROLLOUT", "sampling temperature (default: 1.0)"),
        FlagSpec("--rollout-top-p", .number, "ROLLOUT", "top-p (default: 1.0)"),
        FlagSpec("--rollout-top-k", .integer, "ROLLOUT", "top-k (default: -1, off)"),
        FlagSpec("--rollout-stop", .list, "ROLLOUT", "stop strings"),
        FlagSpec("--rollout-stop-token-ids", .list, "ROLLOUT", "stop token ids"),
        FlagSpec("--over-sampling-batch-size", .integer, "ROLLOUT", "prompts launched at a time (default: the rollout batch size)"),
        FlagSpec("--dynamic-sampling-filter-path", .text, "ROLLOUT", "group filter, e.g. slime.rollout.filter_hub.dynamic_sampling_filters.check_reward_nonzero_std"),
        FlagSpec("--partial-rollout", .toggle, "ROLLOUT", "continue samples cut short by over-sampling in the next rollout"),
        FlagSpec("--sglang-server-concurrency", .integer, "ROLLOUT", "samples in flight at most (default: 512)"),
        FlagSpec("--num-steps-per-rollout", .integer, "ROLLOUT", "optimizer steps per rollout"),
        FlagSpec("--global-batch-size", .integer, "ROLLOUT", "samples per optimizer step (instead of --num-steps-per-rollout)"),
        FlagSpec("--balance-data", .toggle, "ROLLOUT", "balance micro-batches across data-parallel ranks"),
        // Rewards.
        FlagSpec("--rm-type", .text, "REWARD", "deepscaler, dapo, math, f1, gpqa, arithmetic, countdown, sort, or remote_rm"),
        FlagSpec("--reward-key", .text, "REWARD", "key of a dict reward to train on"),
        FlagSpec("--rm-url", .text, "REWARD", "remote reward model URL (with --rm-type remote_rm)"),
        FlagSpec("--custom-rm-cmd", .text, "REWARD", "reward program speaking JSON lines on stdin/stdout"),
        FlagSpec("--rm-timeout", .number, "REWARD", "seconds a reward may take (default: 30)"),
        FlagSpec("--rm-timeout-reward", .number, "REWARD", "reward of a sample whose reward timed out (default: 0)"),
        FlagSpec("--group-rm", .toggle, "REWARD", "reward functions receive whole groups"),
        // Algorithm.
        FlagSpec("--advantage-estimator", .text, "GRPO", "grpo, gspo, cispo, reinforce_plus_plus, reinforce_plus_plus_baseline, rloo"),
        FlagSpec("--use-kl-loss", .toggle, "GRPO", "add a KL loss against the reference policy"),
        FlagSpec("--kl-loss-coef", .number, "GRPO", "KL loss coefficient (default: 0)"),
        FlagSpec("--kl-loss-type", .text, "GRPO", "k1, k2, k3, low_var_kl (default: k1)"),
        FlagSpec("--kl-coef", .number, "GRPO", "KL penalty inside the reward (default: 0)"),
        FlagSpec("--use-unbiased-kl", .toggle, "GRPO", "importance-weight the KL estimate"),
        FlagSpec("--entropy-coef", .number, "GRPO", "entropy bonus coefficient (default: 0)"),
        FlagSpec("--eps-clip", .number, "GRPO", "PPO clip (default: 0.2)"),
        FlagSpec("--eps-clip-high", .number, "GRPO", "upper PPO clip (default: --eps-clip)"),
        FlagSpec("--eps-clip-c", .number, "GRPO", "dual-clip constant, > 1"),
        FlagSpec("--use-tis", .toggle, "GRPO", "truncated importance sampling against rollout log-probs"),
        FlagSpec("--tis-clip", .number, "GRPO", "TIS upper cap (default: 2.0)"),
        FlagSpec("--tis-clip-low", .number, "GRPO", "TIS lower cap (default: 0)"),
        FlagSpec("--normalize-advantages", .toggle, "GRPO", "whiten advantages"),
        FlagSpec("--disable-grpo-std-normalization", .toggle, "GRPO", "divide group rewards by nothing instead of their std"),
        FlagSpec("--disable-rewards-normalization", .toggle, "GRPO", "use raw rewards as advantages"),
        FlagSpec("--calculate-per-token-loss", .toggle, "GRPO", "average the loss over tokens instead of samples"),
        FlagSpec("--use-rollout-logprobs", .toggle, "GRPO", "take the engine's log-probs as the old policy's"),
        FlagSpec("--use-routing-replay", .toggle, "GRPO", "MoE (R2): replay the experts the old-log-prob forward chose in every training forward"),
        FlagSpec("--use-rollout-routing-replay", .toggle, "GRPO", "MoE (R3): replay the experts the rollout engine routed each token to"),
        FlagSpec("--gamma", .number, "GRPO", "discount for REINFORCE++ (default: 1.0)"),
        FlagSpec("--lambd", .number, "GRPO", "GAE lambda", noEffect: "GAE needs a critic, and Kite's estimators have none"),
        // Optimizer.
        FlagSpec("--optimizer", .text, "OPTIMIZER", "adam (AdamW: decoupled weight decay)"),
        FlagSpec("--lr", .number, "OPTIMIZER", "learning rate (default: 1e-6)"),
        FlagSpec("--min-lr", .number, "OPTIMIZER", "floor of the decay (default: 0)"),
        FlagSpec("--lr-decay-style", .text, "OPTIMIZER", "constant, linear or cosine (default: linear, as Megatron)"),
        FlagSpec("--lr-warmup-iters", .integer, "OPTIMIZER", "linear warm-up steps (default: 0)"),
        FlagSpec("--lr-decay-iters", .integer, "OPTIMIZER", "steps of the decay (default: all steps of the run)"),
        FlagSpec("--weight-decay", .number, "OPTIMIZER", "AdamW weight decay (default: 0.01, as Megatron)"),
        FlagSpec("--adam-beta1", .number, "OPTIMIZER", "(default: 0.9)"),
        FlagSpec("--adam-beta2", .number, "OPTIMIZER", "(default: 0.999)"),
        FlagSpec("--adam-eps", .number, "OPTIMIZER", "(default: 1e-8)"),
        FlagSpec("--clip-grad", .number, "OPTIMIZER", "global gradient-norm clip (default: 1.0; 0 turns it off)"),
        // Performance.
        FlagSpec("--use-dynamic-batch-size", .toggle, "PERF", "pack micro-batches up to --max-tokens-per-gpu tokens"),
        FlagSpec("--max-tokens-per-gpu", .integer, "PERF", "tokens per micro-batch with dynamic batching"),
        FlagSpec("--micro-batch-size", .integer, "PERF", "samples per micro-batch without dynamic batching (default: 1)"),
        FlagSpec("--recompute-granularity", .text, "PERF", "full: recompute each layer's activations in backward"),
        FlagSpec("--recompute-method", .text, "PERF", "uniform or block", noEffect: "Kite recomputes every layer when --recompute-granularity full is on"),
        FlagSpec("--recompute-num-layers", .integer, "PERF", "layers per recompute group", noEffect: "Kite recomputes every layer when --recompute-granularity full is on"),
        FlagSpec("--device", .text, "PERF", "cpu or cuda (default: cpu)"),
        FlagSpec("--threads", .integer, "PERF", "CPU threads (default: all cores)"),
        FlagSpec("--tensor-model-parallel-size", .integer, "PERF", "", noEffect: single),
        FlagSpec("--pipeline-model-parallel-size", .integer, "PERF", "", noEffect: single),
        FlagSpec("--context-parallel-size", .integer, "PERF", "", noEffect: single),
        FlagSpec("--expert-model-parallel-size", .integer, "PERF", "", noEffect: single),
        FlagSpec("--expert-tensor-parallel-size", .integer, "PERF", "", noEffect: single),
        FlagSpec("--decoder-last-pipeline-num-layers", .integer, "PERF", "", noEffect: single),
        FlagSpec("--sequence-parallel", .toggle, "PERF", "", noEffect: single),
        FlagSpec("--optimizer-cpu-offload", .toggle, "PERF", "", noEffect: "the CPU backend keeps optimizer state in host memory already"),
        FlagSpec("--overlap-cpu-optimizer-d2h-h2d", .toggle, "PERF", "", noEffect: "no device-host optimizer transfers in this process"),
        FlagSpec("--use-precision-aware-optimizer", .toggle, "PERF", "", noEffect: "AdamW always keeps fp32 master weights and moments"),
        FlagSpec("--accumulate-allreduce-grads-in-fp32", .toggle, "PERF", "", noEffect: "gradients are fp32 already"),
        FlagSpec("--attention-softmax-in-fp32", .toggle, "PERF", "", noEffect: "attention softmax is always computed in fp32"),
        FlagSpec("--attention-dropout", .number, "PERF", "", noEffect: "Kite has no dropout (RL post-training uses 0)"),
        FlagSpec("--hidden-dropout", .number, "PERF", "", noEffect: "Kite has no dropout (RL post-training uses 0)"),
        FlagSpec("--moe-enable-deepep", .toggle, "PERF", "", noEffect: "no expert-parallel all-to-all in one process"),
        FlagSpec("--moe-token-dispatcher-type", .text, "PERF", "", noEffect: "no expert-parallel all-to-all in one process"),
        FlagSpec("--attention-backend", .text, "PERF", "", noEffect: "the backend chooses its own attention kernels"),
        FlagSpec("--bf16", .toggle, "PERF", "", noEffect: "precision follows --device: fp32 on the CPU, bf16 with fp32 masters on CUDA"),
        FlagSpec("--use-distributed-optimizer", .toggle, "PERF", "", noEffect: single),
        FlagSpec("--rollout-num-gpus-per-engine", .integer, "PERF", "", noEffect: "the in-process engine shares the trainer's device"),
        FlagSpec("--rollout-num-gpus", .integer, "PERF", "", noEffect: "the in-process engine shares the trainer's device"),
        FlagSpec("--actor-num-nodes", .integer, "PERF", "", noEffect: single),
        FlagSpec("--actor-num-gpus-per-node", .integer, "PERF", "", noEffect: single),
        FlagSpec("--colocate", .toggle, "PERF", "", noEffect: "colocated is the default; --rollout-engine-url disaggregates"),
        FlagSpec("--offload", .toggle, "PERF", "", noEffect: "the in-process engine releases its cache during training anyway"),
        // Engine.
        FlagSpec("--sglang-mem-fraction-static", .number, "ENGINE", "GPU memory for the engine's cache (CUDA)"),
        FlagSpec("--sglang-max-total-tokens", .integer, "ENGINE", "cache slots of the in-process engine"),
        FlagSpec("--sglang-chunked-prefill-size", .integer, "ENGINE", "prompt tokens per engine step"),
        FlagSpec("--sglang-max-running-requests", .integer, "ENGINE", "sequences per engine batch"),
        FlagSpec("--sglang-disable-radix-cache", .toggle, "ENGINE", "no prefix reuse across requests"),
        FlagSpec("--sglang-context-length", .integer, "ENGINE", "longest prompt + response"),
        FlagSpec("--sglang-enable-ep-moe", .toggle, "ENGINE", "", noEffect: "no expert parallelism in one process"),
        FlagSpec("--sglang-enable-dp-attention", .toggle, "ENGINE", "", noEffect: "no data-parallel attention in one process"),
        FlagSpec("--sglang-dp-size", .integer, "ENGINE", "", noEffect: "no data-parallel attention in one process"),
        FlagSpec("--sglang-moe-dense-tp-size", .integer, "ENGINE", "", noEffect: single),
        FlagSpec("--sglang-enable-dp-lm-head", .toggle, "ENGINE", "", noEffect: single),
        FlagSpec("--sglang-enable-deepep-moe", .toggle, "ENGINE", "", noEffect: "no expert-parallel all-to-all in one process"),
        FlagSpec("--sglang-deepep-mode", .text, "ENGINE", "", noEffect: "no expert-parallel all-to-all in one process"),
        // Loop.
        FlagSpec("--async", .toggle, "LOOP", "overlap rollout N+1 with training on N (one step off-policy)"),
        FlagSpec("--rollout-engine-url", .list, "LOOP", "disaggregated: engines or a router at these URLs instead of the in-process engine"),
        FlagSpec("--rollout-external-engine-addrs", .list, "LOOP", "disaggregated: HOST:PORT of running engines (slime's name; same as --rollout-engine-url)"),
        FlagSpec("--sglang-router-ip", .text, "LOOP", "disaggregated: a running router's address (with --sglang-router-port)"),
        FlagSpec("--sglang-router-port", .integer, "LOOP", "disaggregated: a running router's port (with --sglang-router-ip)"),
        FlagSpec("--weight-sync-dir", .text, "LOOP", "disaggregated: where weight syncs are written for the engines' /update_weights_from_disk (default: <save>/weight-sync)"),
        FlagSpec("--start-rollout-id", .integer, "LOOP", "first rollout id (default: 0, or the checkpoint's next)"),
        FlagSpec("--debug-rollout-only", .toggle, "LOOP", "generate and score, never train"),
        FlagSpec("--debug-train-only", .toggle, "LOOP", "train on --load-debug-rollout-data, never generate"),
        FlagSpec("--save-debug-rollout-data", .text, "LOOP", "dump every rollout's samples; '{rollout_id}' in the path is replaced"),
        FlagSpec("--load-debug-rollout-data", .text, "LOOP", "train on dumped rollouts instead of generating; '{rollout_id}' is replaced"),
        // Evaluation.
        FlagSpec("--eval-interval", .integer, "EVAL", "evaluate every N rollouts"),
        FlagSpec("--eval-prompt-data", .list, "EVAL", "NAME PATH pairs of evaluation jsonl files"),
        FlagSpec("--n-samples-per-eval-prompt", .integer, "EVAL", "samples per evaluation prompt (default: 1)"),
        FlagSpec("--eval-temperature", .number, "EVAL", "(default: --rollout-temperature)"),
        FlagSpec("--eval-top-p", .number, "EVAL", "(default: --rollout-top-p)"),
        FlagSpec("--eval-max-response-len", .integer, "EVAL", "(default: --rollout-max-response-len)"),
        FlagSpec("--skip-eval-before-train", .toggle, "EVAL", "no evaluation at rollout 0"),
        // Logging.
        FlagSpec("--metrics-dir", .text, "LOG", "where metrics.jsonl goes (default: --save, else kite-runs/)"),
        FlagSpec("--tensorboard-dir", .text, "LOG", "TensorBoard event files"),
    ]

    public static let byName: [String: FlagSpec] = Dictionary(all.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
}
