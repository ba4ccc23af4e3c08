import ArgumentParser
import KiteCUDA
import KiteJSON
import KiteModels
import KiteRL
import KiteTensor

struct BenchGRPOStep: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grpo-step",
        abstract: "One GRPO iteration on the GPU, colocated: rollout, training and weight sync, timed phase by phase.",
        discussion: """
            --model demo: the demo's 3-layer model and two-digit addition (random weights, no warm-up: the timing, \
            not the learning, is the point). --model qwen3-0.6b: the Qwen3-0.6B shape with random weights, prompts \
            of random tokens and a reward that varies within each group. The first iteration (kernel compilation, \
            graph captures) is reported apart. Also compares the last rollout's log-probs with the trainer's.
            """
    )

    @Option(help: "demo or qwen3-0.6b.") var model = "demo"
    @Option(help: "Timed iterations after the warm-up one.") var iterations = 2
    @Option(help: "Prompts per iteration.") var prompts: Int?
    @Option(help: "Samples per prompt.") var samples = 8
    @Option(name: .customLong("max-response-length"), help: "Longest response.") var maxResponseLength: Int?
    @Option(name: .customLong("prompt-length"), help: "Prompt tokens (qwen3-0.6b).") var promptLength = 128
    @Option(name: .customLong("max-tokens-per-gpu"), help: "Tokens per training micro-batch.") var maxTokensPerGPU = 16_384
    @Flag(help: "Recompute activations in backward.") var recompute = false
    @Flag(help: "Batch-invariant kernels (--deterministic).") var deterministic = false
    @Option(help: "Write the results as JSON to this file.") var json: String?

    func validate() throws {
        guard ["demo", "qwen3-0.6b"].contains(model) else { throw ValidationError("--model must be demo or qwen3-0.6b") }
    }

    func run() async throws {
        let backend = try CUDABackend(precision: .bf16, deterministic: deterministic)
        print(backend.summary())
        var options = GRPOStepBenchmark.Options()
        options.iterations = iterations
        options.samplesPerPrompt = samples
        options.recompute = recompute
        options.maxTokensPerGPU = maxTokensPerGPU
        let task: GRPOStepBenchmark.Task
        let config: ModelConfig
        if model == "demo" {
            config = try GRPOStepBenchmark.demoConfig()
            task = .demoArithmetic
            options.promptsPerIteration = prompts ?? 32
            options.maxResponseLength = maxResponseLength ?? 4
            options.learningRate = 3e-4
        } else {
            config = try qwen3SmallConfig()
            task = .randomTokens(promptLength: promptLength)
            options.promptsPerIteration = prompts ?? 16
            options.maxResponseLength = maxResponseLength ?? 256
        }
        let policy = try randomModel(config, backend: backend)
        print("\(model): \(policy.parameters.elementCount) parameters; \(options.promptsPerIteration) prompts x \(samples) samples, responses up to \(options.maxResponseLength) tokens\(recompute ? ", recompute" : "")")
        let result = try await GRPOStepBenchmark.run(model: policy, task: task, options: options, synchronize: { try backend.synchronize() }) { print($0) }
        func mean(_ key: KeyPath<GRPOStepBenchmark.Phases, Double>) -> Double { result.timed.map { $0[keyPath: key] }.reduce(0, +) / Double(max(result.timed.count, 1)) }
        let (rollout, train, sync, copy) = (mean(\.rollout), mean(\.train), mean(\.sync), mean(\.weightCopy))
        let total = rollout + train + sync
        print("GRPO step (mean of \(result.timed.count)): \(format(total)) s = rollout \(format(rollout)) s (\(format(100 * rollout / total))%) + train \(format(train)) s (\(format(100 * train / total))%) + sync \(format(sync * 1000)) ms (\(format(100 * sync / total))%; weight copy \(format(copy * 1000)) ms)")
        print("rollout log-probs vs trainer: \(result.logprobsDiffering) of \(result.logprobsCompared) differ in any bit, largest difference \(result.logprobMaxDifference)")
        print("memory: \(backend.memory.report())")
        if let json {
            let object: JSONObject = [
                "model": .string(model), "parameters": .int(result.parameters), "deterministic": .bool(deterministic), "recompute": .bool(recompute),
                "rollout_s": .double(rollout), "train_s": .double(train), "sync_s": .double(sync), "weight_copy_ms": .double(copy * 1000),
                "warmup_rollout_s": .double(result.warmup.rollout), "warmup_train_s": .double(result.warmup.train),
                "generated_tokens": .int(result.timed.last?.generatedTokens ?? 0), "trained_tokens": .int(result.timed.last?.trainedTokens ?? 0),
                "logprobs_compared": .int(result.logprobsCompared), "logprobs_differing": .int(result.logprobsDiffering),
                "logprob_max_difference": .double(result.logprobMaxDifference), "device": .string(backend.summary()),
            ]
            try writeText(JSONValue.object(object).serialized(.python), to: json)
        }
    }
}
