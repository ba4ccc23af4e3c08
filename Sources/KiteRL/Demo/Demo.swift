import KiteEngine
import KiteJSON
import KiteModels
import KiteTensor
import KiteTrain

/// The settings of `kite demo`: two-digit addition learnt by a small model, first by a short supervised
/// warm-up, then by GRPO with dynamic sampling. Defaults follow ../shared/reference/demo-recipe.md.
public struct DemoOptions: Sendable {
    public var seed: UInt64 = 1
    public var warmupSteps = 180
    public var warmupBatchSize = 64
    public var warmupLearningRate = 1e-3
    /// GRPO stops after this many seconds (or `maxIterations`).
    public var grpoSeconds: Double = 420
    public var maxIterations: Int?
    public var promptsPerIteration = 32
    public var samplesPerPrompt = 8
    public var overSamplingBatchSize = 64
    public var learningRate = 5e-4
    /// Optimizer steps per rollout (`--num-steps-per-rollout`): each takes an equal share of the groups.
    public var stepsPerRollout = 4
    /// `--clip-grad` for GRPO; 0 turns clipping off.
    public var clipGradient = 1.0
    public var evaluationInterval: Double = 20
    public var heldOutPrompts = 300
    public var threads: Int?

    public init() {}
}

/// What the demo measured.
public struct DemoResult: Sendable {
    public struct Point: Sendable {
        public var seconds: Double
        public var iteration: Int
        public var accuracy: Double
        public var rewardMean: Double
    }

    public var warmupAccuracy: Double
    public var finalAccuracy: Double
    public var curve: [Point]
    public var iterations: Int
    public var grpoSeconds: Double
    public var totalSeconds: Double
}

/// `kite demo`: the whole RL stack on a laptop CPU with nothing to download.
public enum Demo {
    static let alphabet = "0123456789+="

    /// The model: a llama-style decoder of 3 layers, width 128, 4 heads (about 0.6M parameters).
    static func modelConfig(vocabularySize: Int) throws -> ModelConfig {
        try ModelConfig(json: [
            "model_type": "llama", "vocab_size": .int(vocabularySize), "hidden_size": 128, "intermediate_size": 384,
            "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 32,
            "rms_norm_eps": 1e-6, "tie_word_embeddings": true, "rope_parameters": ["rope_type": "default", "rope_theta": 10000.0],
            "bos_token_id": .int(Int(CharacterTokenizer.beginOfSequence)), "eos_token_id": .int(Int(CharacterTokenizer.endOfSequence)),
        ], source: "kite demo")
    }

    public static func run(_ options: DemoOptions, log: @escaping @Sendable (String) -> Void) async throws -> DemoResult {
        let start = MonotonicClock.seconds()
        let tokenizer = CharacterTokenizer(alphabet: alphabet)
        var generator = SeededGenerator(seed: options.seed)
        // Every problem AA+BB= once; a fixed held-out set is never trained on.
        var problems = (0..<10_000).map { (a: $0 / 100, b: $0 % 100) }
        problems.shuffle(using: &generator)
        let heldOut = Array(problems.prefix(options.heldOutPrompts))
        let training = Array(problems.dropFirst(options.heldOutPrompts))
        func record(_ problem: (a: Int, b: Int), index: Int) throws -> PromptRecord {
            let text = SyntheticTask.twoDigits(problem.a) + "+" + SyntheticTask.twoDigits(problem.b) + "="
            return PromptRecord(index: index, prompt: .string(text), promptTokens: [CharacterTokenizer.beginOfSequence] + (try tokenizer.encode(text)),
                                promptText: text, label: .string(String(problem.a + problem.b)))
        }
        let trainingRecords = try training.enumerated().map { try record($0.element, index: $0.offset) }
        let heldOutRecords = try heldOut.enumerated().map { try record($0.element, index: $0.offset) }

        let backend = CPUBackend(threads: options.threads)
        let config = try modelConfig(vocabularySize: tokenizer.vocabularySize)
        let model = try Transformer.randomlyInitialized(config: config, seed: options.seed, backend: backend)
        log("kite demo: \(model.parameters.elementCount) parameters, \(trainingRecords.count) training and \(heldOutRecords.count) held-out problems of two-digit addition, \(backend.threads) threads")

        // Supervised warm-up: next-token loss on the answer and its end-of-sequence token only.
        let warmup = try PolicyTrainer(model: model, optimizer: AdamWConfig(), schedule: LearningRateSchedule(maxLR: options.warmupLearningRate, decaySteps: options.warmupSteps), clipGradient: 1.0)
        for _ in 0..<options.warmupSteps {
            let batch = try (0..<options.warmupBatchSize).map { _ -> TrainingSequence in
                let chosen = trainingRecords[Int(generator.next() % UInt64(trainingRecords.count))]
                let answer = try tokenizer.encode(chosen.label?.stringValue ?? "") + [CharacterTokenizer.endOfSequence]
                return TrainingSequence(tokens: chosen.promptTokens + answer, responseLength: answer.count)
            }
            let tokens = Float(batch.reduce(0) { $0 + $1.responseLength })
            try warmup.step(microBatches: [batch], temperature: 1) { _, scores in
                ResponseGradients(dLogprobs: scores.logprobs.map { $0.map { _ in -1 / tokens } }, dEntropy: scores.entropy.map { $0.map { _ in 0 } })
            }
        }

        var engineOptions = EngineOptions()
        engineOptions.blockSize = 8
        engineOptions.maxTotalTokens = 32_768
        engineOptions.chunkedPrefillSize = 8192
        engineOptions.maxRunningRequests = 4096
        let engine = try InferenceEngine(model: try model.clone(), tokenizer: tokenizer, options: engineOptions)
        defer { engine.shutdown() }
        let rolloutEngine = InProcessRolloutEngine(engine: engine)

        func accuracy() async throws -> Double {
            var greedy = SamplingParameters()
            greedy.temperature = 0
            greedy.maxNewTokens = 4
            let sampling = greedy
            let correct = try await withThrowingTaskGroup(of: Bool.self) { group in
                for record in heldOutRecords {
                    group.addTask {
                        let result = try await engine.generate(GenerationRequest(id: "eval-\(record.index)-\(MonotonicClock.seconds())", promptTokens: record.promptTokens, sampling: sampling))
                        return result.first?.text == record.label?.stringValue
                    }
                }
                var count = 0
                for try await ok in group where ok { count += 1 }
                return count
            }
            return Double(correct) / Double(heldOutRecords.count)
        }
        let warmupAccuracy = try await accuracy()
        log("after \(options.warmupSteps) warm-up steps (\(NumberFormatting.fixed(MonotonicClock.seconds() - start, 0)) s): held-out accuracy \(NumberFormatting.fixed(100 * warmupAccuracy, 1))%")

        // GRPO with dynamic sampling: groups whose rewards all agree teach nothing and are dropped.
        var rollout = RolloutOptions(rolloutBatchSize: options.promptsPerIteration)
        rollout.samplesPerPrompt = options.samplesPerPrompt
        rollout.overSamplingBatchSize = options.overSamplingBatchSize
        rollout.dynamicFilter = .nonzeroStd
        rollout.temperature = 1
        rollout.maxResponseLength = 4
        rollout.seed = options.seed
        let manager = try RolloutManager(
            engine: rolloutEngine, dataset: try PromptDataset(records: trainingRecords, shuffle: true, seed: options.seed),
            reward: try RuleReward(rmType: SyntheticTask.arithmetic.rawValue), options: rollout)
        // The warm-up's optimizer carries on, with its moments: a fresh AdamW's first bias-corrected steps
        // would move every weight by about the learning rate and undo part of the warm-up.
        let policy = warmup
        policy.schedule = LearningRateSchedule(maxLR: options.learningRate, decaySteps: 1)
        policy.clipGradient = options.clipGradient
        var optimization = PolicyOptimizationOptions()
        optimization.useRolloutLogprobs = true
        optimization.numStepsPerRollout = options.stepsPerRollout
        optimization.microBatching = .dynamic(maxTokensPerGPU: 8192)
        optimization.loss.epsClipHigh = 0.28
        let optimizer = try PolicyOptimization(trainer: policy, reference: nil, options: optimization)

        let grpoStart = MonotonicClock.seconds()
        var curve = [DemoResult.Point(seconds: 0, iteration: 0, accuracy: warmupAccuracy, rewardMean: 0)]
        var nextEvaluation = options.evaluationInterval
        var iteration = 0
        var rewardWindow: [Double] = []
        var normWindow: [Double] = []
        var version = 0
        var split = (rollout: 0.0, train: 0.0, sync: 0.0)
        while MonotonicClock.seconds() - grpoStart < options.grpoSeconds && iteration < (options.maxIterations ?? .max) {
            let t0 = MonotonicClock.seconds()
            let result = try await manager.generate(rolloutID: iteration)
            rewardWindow.append(result.metrics.first { $0.name == "rollout/reward_mean" }?.value ?? 0)
            let t1 = MonotonicClock.seconds()
            for step in try optimizer.train(groups: result.groups, samplesPerPrompt: options.samplesPerPrompt) {
                normWindow.append(step.step.gradientNorm)
            }
            let t2 = MonotonicClock.seconds()
            version += 1
            try await rolloutEngine.updateWeights(from: model, version: String(version))
            split.rollout += t1 - t0
            split.train += t2 - t1
            split.sync += MonotonicClock.seconds() - t2
            iteration += 1
            let elapsed = MonotonicClock.seconds() - grpoStart
            if elapsed >= nextEvaluation {
                let gradientNorm = normWindow.reduce(0, +) / Double(max(normWindow.count, 1))
                normWindow = []
                let current = try await accuracy()
                let reward = rewardWindow.reduce(0, +) / Double(max(rewardWindow.count, 1))
                rewardWindow = []
                curve.append(DemoResult.Point(seconds: elapsed, iteration: iteration, accuracy: current, rewardMean: reward))
                log("[\(NumberFormatting.padLeft(NumberFormatting.fixed(elapsed, 0), 4)) s] GRPO iteration \(NumberFormatting.padLeft(String(iteration), 5))  held-out accuracy \(NumberFormatting.padLeft(NumberFormatting.fixed(100 * current, 1), 5))%  rollout reward \(NumberFormatting.fixed(reward, 2))  grad norm \(NumberFormatting.fixed(gradientNorm, 2))  (\(NumberFormatting.fixed(elapsed / Double(iteration), 3)) s per iteration: rollout \(NumberFormatting.fixed(split.rollout / Double(iteration), 3)), train \(NumberFormatting.fixed(split.train / Double(iteration), 3)), sync \(NumberFormatting.fixed(split.sync / Double(iteration), 3)))")
                nextEvaluation = elapsed + options.evaluationInterval
            }
        }
        let grpoSeconds = MonotonicClock.seconds() - grpoStart
        let finalAccuracy = try await accuracy()
        curve.append(DemoResult.Point(seconds: grpoSeconds, iteration: iteration, accuracy: finalAccuracy, rewardMean: rewardWindow.reduce(0, +) / Double(max(rewardWindow.count, 1))))
        return DemoResult(warmupAccuracy: warmupAccuracy, finalAccuracy: finalAccuracy, curve: curve, iterations: iteration, grpoSeconds: grpoSeconds, totalSeconds: MonotonicClock.seconds() - start)
    }
}
