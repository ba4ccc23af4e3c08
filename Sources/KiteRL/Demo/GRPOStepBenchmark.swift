import KiteEngine
import KiteJSON
import KiteModels
import KiteTensor
import KiteTrain
import Synchronization

/// One GRPO iteration end to end, colocated, as `kite train` runs it: rollout (engine on its own bf16 copy
/// of the weights), training (the policy's fp32 master weights, AdamW), weight sync (a device copy into the
/// engine's weights), timed phase by phase. Used by `kite bench grpo-step` on the demo's model and task and
/// on a large model with random weights and a synthetic task.
public enum GRPOStepBenchmark {
    /// What the prompts are and how samples are rewarded.
    public enum Task: Sendable {
        /// The demo's two-digit addition with its character tokenizer (the model is the demo's).
        case demoArithmetic
        /// Prompts of random tokens; the reward is the share of even token ids in the response, so rewards
        /// differ within every group.
        case randomTokens(promptLength: Int)
    }

    public struct Options: Sendable {
        public var iterations = 3
        public var promptsPerIteration = 32
        public var samplesPerPrompt = 8
        public var maxResponseLength = 4
        public var learningRate = 1e-5
        public var recompute = false
        public var maxTokensPerGPU = 16_384
        public var seed: UInt64 = 1
        /// Free the engine's cache while training (colocated), and take it back before the sync.
        public var releaseCacheWhileTraining = true
        public init() {}
    }

    /// Seconds of each phase, per iteration (the first, with compilation and graph captures, is `warmup`).
    public struct Phases: Sendable {
        public var rollout: Double
        public var train: Double
        public var sync: Double
        /// The weight copy alone (device copies and casts, waited for), within `sync`.
        public var weightCopy: Double
        public var generatedTokens: Int
        public var trainedTokens: Int
    }

    public struct Result: Sendable {
        public var parameters: Int
        public var warmup: Phases
        public var timed: [Phases]
        /// The last rollout's log-probs against the trainer's recomputation before training: how many of
        /// `compared` differ in any bit, and the largest difference.
        public var logprobsCompared: Int
        public var logprobsDiffering: Int
        public var logprobMaxDifference: Double
        public var engine: EngineStatistics
    }

    /// The demo's model configuration (for `kite bench grpo-step --model demo`).
    public static func demoConfig() throws -> ModelConfig {
        try Demo.modelConfig(vocabularySize: CharacterTokenizer(alphabet: Demo.alphabet).vocabularySize)
    }

    public static func run(
        model: Transformer, task: Task, options: Options, synchronize: @escaping @Sendable () throws -> Void,
        log: @escaping @Sendable (String) -> Void
    ) async throws -> Result {
        var generator = SeededGenerator(seed: options.seed)
        let backend = model.backend
        let records: [PromptRecord]
        let tokenizer: (any EngineTokenizer)?
        let reward: any RewardFunction
        switch task {
        case .demoArithmetic:
            let characters = CharacterTokenizer(alphabet: Demo.alphabet)
            tokenizer = characters
            records = try (0..<2000).map { index in
                let (a, b) = (Int(generator.next() % 100), Int(generator.next() % 100))
                let text = SyntheticTask.twoDigits(a) + "+" + SyntheticTask.twoDigits(b) + "="
                return PromptRecord(index: index, prompt: .string(text), promptTokens: [CharacterTokenizer.beginOfSequence] + (try characters.encode(text)),
                                    promptText: text, label: .string(String(a + b)))
            }
            reward = try RuleReward(rmType: SyntheticTask.arithmetic.rawValue)
        case .randomTokens(let promptLength):
            tokenizer = nil
            let vocabulary = UInt64(model.config.vocabularySize)
            records = (0..<2000).map { index in
                let tokens = (0..<promptLength).map { _ in Int32(generator.next() % vocabulary) }
                return PromptRecord(index: index, prompt: .string("random-\(index)"), promptTokens: tokens, promptText: "random-\(index)")
            }
            reward = EvenTokenReward()
        }

        let promptLength = records.map(\.promptTokens.count).max() ?? 1
        let sequences = options.promptsPerIteration * options.samplesPerPrompt
        var engineOptions = EngineOptions()
        engineOptions.blockSize = 16
        engineOptions.maxTotalTokens = max(4096, sequences * (promptLength + options.maxResponseLength + 16) * 5 / 4)
        engineOptions.chunkedPrefillSize = 16_384
        engineOptions.maxRunningRequests = max(256, sequences)
        engineOptions.contextLength = promptLength + options.maxResponseLength + 1
        let engineModel = try model.clone(matrixDType: backend.keyValueCacheDType == .bf16 ? .bf16 : nil)
        let engine = try InferenceEngine(model: engineModel, tokenizer: tokenizer, options: engineOptions)
        defer { engine.shutdown() }
        let rolloutEngine = InProcessRolloutEngine(engine: engine)

        var rollout = RolloutOptions(rolloutBatchSize: options.promptsPerIteration)
        rollout.samplesPerPrompt = options.samplesPerPrompt
        rollout.temperature = 1
        rollout.maxResponseLength = options.maxResponseLength
        rollout.concurrency = max(512, sequences)
        rollout.seed = options.seed
        if case .randomTokens = task { rollout.stopTokenIDs = [] }
        let manager = try RolloutManager(
            engine: rolloutEngine, dataset: try PromptDataset(records: records, shuffle: true, seed: options.seed), reward: reward, options: rollout)
        let trainer = try PolicyTrainer(model: model, optimizer: AdamWConfig(), schedule: LearningRateSchedule(maxLR: options.learningRate, decaySteps: 1),
                                        clipGradient: 1.0, recompute: options.recompute)
        var optimization = PolicyOptimizationOptions()
        optimization.useRolloutLogprobs = true
        optimization.numStepsPerRollout = 1
        optimization.microBatching = .dynamic(maxTokensPerGPU: options.maxTokensPerGPU)
        let optimizer = try PolicyOptimization(trainer: trainer, reference: nil, options: optimization)

        var phases: [Phases] = []
        var comparison = (compared: 0, differing: 0, maximum: 0.0)
        for iteration in 0...options.iterations {
            let t0 = MonotonicClock.seconds()
            let result = try await manager.generate(rolloutID: iteration)
            try synchronize()
            let t1 = MonotonicClock.seconds()
            let samples = result.groups.flatMap { $0 }
            if iteration == options.iterations {
                // The engine's log-probs against the trainer's forward on the same weights (synced last iteration).
                let scored = try trainer.score(samples.map { TrainingSequence(tokens: $0.tokens.map(Int32.init), responseLength: $0.responseLength) }, temperature: 1)
                for (sample, logprobs) in zip(samples, scored.logprobs) {
                    for (engineValue, trainerValue) in zip(sample.rolloutLogProbs ?? [], logprobs) {
                        comparison.compared += 1
                        if Float(engineValue).bitPattern != trainerValue.bitPattern { comparison.differing += 1 }
                        comparison.maximum = max(comparison.maximum, abs(engineValue - Double(trainerValue)))
                    }
                }
            }
            let t1b = MonotonicClock.seconds()
            if options.releaseCacheWhileTraining { try await rolloutEngine.releaseMemory() }
            _ = try optimizer.train(groups: result.groups, samplesPerPrompt: options.samplesPerPrompt)
            try synchronize()
            let t2 = MonotonicClock.seconds()
            if options.releaseCacheWhileTraining { try await rolloutEngine.resumeMemory() }
            let copyTime = Mutex(0.0)
            try await engine.updateWeights(version: String(iteration + 1)) { target in
                let start = MonotonicClock.seconds()
                try WeightSync.copy(from: model, into: target)
                try synchronize()
                copyTime.withLock { $0 = MonotonicClock.seconds() - start }
            }
            let copySeconds = copyTime.withLock { $0 }
            let t3 = MonotonicClock.seconds()
            let generated = samples.reduce(0) { $0 + $1.responseLength }
            let trained = samples.reduce(0) { $0 + $1.tokens.count }
            phases.append(Phases(rollout: t1 - t0, train: t2 - t1b, sync: t3 - t2, weightCopy: copySeconds, generatedTokens: generated, trainedTokens: trained))
            log("iteration \(iteration)\(iteration == 0 ? " (warm-up)" : ""): rollout \(NumberFormatting.fixed(t1 - t0, 3)) s (\(generated) tokens), train \(NumberFormatting.fixed(t2 - t1b, 3)) s (\(trained) tokens), sync \(NumberFormatting.fixed(t3 - t2, 3)) s (weight copy \(NumberFormatting.fixed(copySeconds * 1000, 2)) ms)")
        }
        return Result(parameters: model.parameters.elementCount, warmup: phases[0], timed: Array(phases.dropFirst()),
                      logprobsCompared: comparison.compared, logprobsDiffering: comparison.differing,
                      logprobMaxDifference: comparison.maximum, engine: await engine.statistics())
    }
}

/// The share of even token ids in the response (a reward that varies within every group of random samples).
struct EvenTokenReward: RewardFunction {
    func rewards(for samples: [Sample]) async throws -> [JSONValue] {
        samples.map { sample in
            let response = sample.responseTokens
            return .double(response.isEmpty ? 0 : Double(response.filter { $0 % 2 == 0 }.count) / Double(response.count))
        }
    }
}
