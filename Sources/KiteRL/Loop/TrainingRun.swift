import KiteEngine
import KiteJSON
import KiteModels
import KiteTensor
import KiteTokenizers
import KiteTrain

/// What a finished run did.
public struct RunSummary: Sendable {
    public var rollouts: Int
    public var optimizerSteps: Int
    public var lastCheckpoint: String?
}

/// `kite train`: slime's loop (`train.py`, and `train_async.py` with `--async`) over Kite's engine and
/// trainer. Built from a `TrainingConfiguration`; `run()` does the rollouts.
public final class TrainingRun: @unchecked Sendable {
    public let configuration: TrainingConfiguration
    public let backend: any Backend
    public let model: any CausalLanguageModel
    public let tokenizer: Tokenizer
    let reference: (any CausalLanguageModel)?
    let trainer: PolicyTrainer
    let optimization: PolicyOptimization
    let engine: InferenceEngine?
    let rolloutEngine: (any RolloutEngine)?
    let manager: RolloutManager?
    let dataset: PromptDataset?
    let reward: (any RewardFunction)?
    let evaluationSets: [(name: String, records: [PromptRecord])]
    let logger: MetricsLogger
    var startRollout = 0
    var weightVersion = 0
    var knownVersions: Set<String> = ["0"]
    /// Rollout generated ahead of training under `--async`, kept in checkpoints for an exact resume.
    var prefetched: (rolloutID: Int, result: RolloutResult)?

    /// Loads the model, tokenizer, data and reward, builds engine and trainer, and restores `--load`.
    /// `rolloutEngine` replaces the in-process engine (disaggregated mode); `remoteReward` scores samples
    /// under `--rm-type remote_rm` (the HTTP client lives outside this target).
    public init(
        configuration: TrainingConfiguration, backend: any Backend, rolloutEngine external: (any RolloutEngine)? = nil,
        remoteReward: (any RewardFunction)? = nil, log: @escaping @Sendable (String) -> Void
    ) async throws {
        self.configuration = configuration
        self.backend = backend
        for (flag, reason) in configuration.ignoredFlags { log("note: \(flag) has no effect in Kite: \(reason)") }
        let checkpoint = configuration.hfCheckpoint
        let loading = ModelLoadOptions(log: log)
        model = try LanguageModels.load(path: checkpoint, backend: backend, options: loading)
        tokenizer = checkpoint.hasSuffix(".gguf") ? try Tokenizer(ggufPath: checkpoint) : try Tokenizer(directory: checkpoint)
        guard tokenizer.vocabularySize <= model.config.vocabularySize else {
            throw RLError.invalidOption(name: "--hf-checkpoint", message: "the tokenizer has \(tokenizer.vocabularySize) tokens but the model only \(model.config.vocabularySize)")
        }
        if configuration.optimization.useRoutingReplay && !model.config.hasExperts {
            log("note: \(configuration.optimization.useRolloutRoutingReplay ? "--use-rollout-routing-replay" : "--use-routing-replay") has no effect: \(checkpoint) has no mixture-of-experts layer")
        }
        let needsReference = configuration.optimization.loss.useKLLoss || configuration.optimization.advantage.klCoef != 0
        if needsReference {
            reference = try configuration.referenceLoad.map { try LanguageModels.load(path: $0, backend: backend, options: loading) } ?? model.clone()
        } else {
            reference = nil
        }

        let renderer: any PromptRenderer
        if configuration.applyChatTemplate {
            guard let source = tokenizer.chatTemplate else {
                throw RLError.invalidOption(name: "--apply-chat-template", message: "\(checkpoint) has no chat template")
            }
            renderer = ChatPromptRenderer(template: try ChatTemplate(source: source, name: checkpoint), tokenizer: tokenizer, extraContext: configuration.chatTemplateArguments)
        } else {
            renderer = PlainPromptRenderer()
        }
        let tokenizer = self.tokenizer
        let tokenize: (String, Bool) throws -> [Int32] = { text, specials in tokenizer.encode(text, addSpecialTokens: specials).map(Int32.init) }
        var evaluationSets: [(String, [PromptRecord])] = []
        for (name, path) in configuration.evaluation.datasets {
            evaluationSets.append((name, try configuration.loader.load(path: path, renderer: renderer, tokenize: tokenize).records))
        }
        self.evaluationSets = evaluationSets

        logger = try MetricsLogger(
            directory: configuration.metricsDirectory ?? configuration.save ?? "kite-runs", tensorboardDirectory: configuration.tensorboardDirectory, console: log)

        if configuration.debugTrainOnly {
            engine = nil
            rolloutEngine = nil
            manager = nil
            dataset = nil
            reward = nil
        } else {
            guard let promptData = configuration.promptData else { throw RLError.invalidOption(name: "--prompt-data", message: "is required") }
            let report = try configuration.loader.load(path: promptData, renderer: renderer, tokenize: tokenize)
            if !report.skipped.isEmpty {
                log("skipped \(report.skipped.count) malformed line(s) of \(promptData); first: \(report.skipped[0])")
            }
            let dataset = try PromptDataset(records: report.records, shuffle: configuration.shuffle, seed: configuration.rollout.seed)
            let reward: any RewardFunction
            if let command = configuration.customRewardCommand {
                reward = try CommandReward(command: command, timeout: configuration.rewardTimeout, timeoutReward: .double(configuration.rewardTimeoutReward), groupReward: configuration.groupReward)
            } else if configuration.rmType == "remote_rm" {
                guard let remoteReward else {
                    throw RLError.invalidOption(name: "--rm-type", message: "remote_rm needs an HTTP reward client (kite train builds one from --rm-url)")
                }
                reward = remoteReward
            } else if let rmType = configuration.rmType {
                reward = try RuleReward(rmType: rmType)
            } else {
                throw RLError.invalidOption(name: "--rm-type", message: "is required (or --custom-rm-cmd)")
            }
            if let external {
                engine = nil
                rolloutEngine = external
            } else {
                var options = configuration.engine
                if options.maxTotalTokens == nil {
                    let longest = min(report.records.map(\.promptTokens.count).max() ?? 0, model.config.maxPositionEmbeddings) + configuration.rollout.maxResponseLength
                    options.maxTotalTokens = max(longest, min(configuration.rollout.concurrency * longest, options.memoryBudgetBytes / max(model.cacheLayout.bytesPerToken(.f32), 1)))
                }
                let engine = try InferenceEngine(model: try model.clone(), tokenizer: TokenizerAdapter(tokenizer), options: options)
                self.engine = engine
                rolloutEngine = InProcessRolloutEngine(engine: engine)
            }
            self.dataset = dataset
            self.reward = reward
            var rolloutOptions = configuration.rollout
            // R3 asks the engine for routed experts only where there are experts to route to.
            rolloutOptions.returnRoutedExperts = rolloutOptions.returnRoutedExperts && model.config.hasExperts
            manager = try RolloutManager(engine: rolloutEngine!, dataset: dataset, reward: reward, options: rolloutOptions)
        }

        let stepsPerRollout: Int
        if let steps = configuration.optimization.numStepsPerRollout {
            stepsPerRollout = steps
        } else {
            stepsPerRollout = max(1, configuration.rollout.rolloutBatchSize * configuration.rollout.samplesPerPrompt / max(configuration.optimization.globalBatchSize ?? 1, 1))
        }
        trainer = try PolicyTrainer(
            model: model, optimizer: configuration.adam, schedule: configuration.schedule(totalSteps: configuration.numRollout * stepsPerRollout),
            clipGradient: configuration.clipGradient, recompute: configuration.recompute)
        optimization = try PolicyOptimization(trainer: trainer, reference: reference, options: configuration.optimization)

        if let root = configuration.load, let directory = try TrainingCheckpoint.latest(root: root) {
            try restore(directory)
            log("resumed from \(directory) at rollout \(startRollout)")
        }
        if let start = configuration.startRolloutID { startRollout = start }
        // The engine always starts from the trainer's weights (slime syncs before the first rollout).
        try await rolloutEngine?.updateWeights(from: model, version: String(weightVersion))
        knownVersions.insert(String(weightVersion))
    }

    deinit { engine?.shutdown() }
}
