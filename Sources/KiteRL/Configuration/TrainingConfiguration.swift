import KiteEngine
import KiteJSON
import KiteTrain

/// Evaluation settings (`--eval-*`).
public struct EvaluationOptions: Sendable {
    public var interval: Int?
    public var datasets: [(name: String, path: String)] = []
    public var samplesPerPrompt = 1
    public var temperature: Double
    public var topP: Double
    public var maxResponseLength: Int
    public var skipBeforeTrain = false
}

/// Everything `kite train` was told, typed and checked, with slime's defaults.
public struct TrainingConfiguration: Sendable {
    public var hfCheckpoint: String
    public var referenceLoad: String?
    public var load: String?
    public var save: String?
    public var saveInterval: Int?
    public var saveHF: String?
    public var saveOptimizer = true

    public var promptData: String?
    public var loader = PromptDataLoader()
    public var applyChatTemplate = false
    public var chatTemplateArguments = JSONObject()
    public var shuffle = false
    public var numRollout: Int
    public var rollout: RolloutOptions

    public var rmType: String?
    public var rmURL: String?
    public var customRewardCommand: String?
    public var rewardTimeout = 30.0
    public var rewardTimeoutReward = 0.0
    public var groupReward = false

    public var optimization = PolicyOptimizationOptions()
    public var adam: AdamWConfig
    public var learningRate: Double
    public var minLearningRate: Double
    public var decayStyle: LearningRateSchedule.Style
    public var warmupSteps: Int
    public var decaySteps: Int?
    public var clipGradient: Double
    public var recompute = false

    public var device = "cpu"
    public var threads: Int?
    public var engine = EngineOptions()
    public var memoryFraction: Double?

    public var asynchronous = false
    public var rolloutEngineURLs: [String] = []
    /// Disaggregated weight syncs go through this directory (nil: `<save>/weight-sync`).
    public var weightSyncDirectory: String?
    public var startRolloutID: Int?
    public var debugRolloutOnly = false
    public var debugTrainOnly = false
    public var saveDebugRolloutData: String?
    public var loadDebugRolloutData: String?

    public var evaluation: EvaluationOptions
    public var metricsDirectory: String?
    public var tensorboardDirectory: String?
    /// Flags accepted without effect, with why.
    public var ignoredFlags: [(flag: String, reason: String)] = []

    public init(flags: ParsedFlags) throws(RLError) {
        func required<T>(_ value: T?, _ name: String) throws(RLError) -> T {
            guard let value else { throw .invalidOption(name: name, message: "is required") }
            return value
        }
        func positive(_ value: Int?, _ name: String) throws(RLError) -> Int? {
            if let value, value <= 0 { throw .invalidOption(name: name, message: "must be positive, got \(value)") }
            return value
        }
        hfCheckpoint = try required(flags.text("--hf-checkpoint"), "--hf-checkpoint")
        referenceLoad = flags.text("--ref-load")
        load = flags.text("--load")
        save = flags.text("--save")
        saveInterval = try positive(try flags.integer("--save-interval"), "--save-interval")
        if saveInterval != nil && save == nil { throw .invalidOption(name: "--save-interval", message: "needs --save") }
        saveHF = flags.text("--save-hf")
        saveOptimizer = !flags.has("--no-save-optim")

        debugRolloutOnly = flags.has("--debug-rollout-only")
        loadDebugRolloutData = flags.text("--load-debug-rollout-data")
        debugTrainOnly = flags.has("--debug-train-only") || loadDebugRolloutData != nil
        if debugTrainOnly && loadDebugRolloutData == nil {
            throw .invalidOption(name: "--debug-train-only", message: "needs --load-debug-rollout-data to train on")
        }
        if debugTrainOnly && debugRolloutOnly {
            throw .invalidOption(name: "--debug-rollout-only", message: "cannot be combined with --debug-train-only")
        }
        saveDebugRolloutData = flags.text("--save-debug-rollout-data")

        promptData = flags.text("--prompt-data")
        if promptData == nil && !debugTrainOnly { throw .invalidOption(name: "--prompt-data", message: "is required") }
        loader.inputKey = flags.text("--input-key") ?? "input"
        loader.labelKey = flags.text("--label-key")
        loader.metadataKey = flags.text("--metadata-key") ?? "metadata"
        loader.toolKey = flags.text("--tool-key") ?? "tools"
        loader.skipMalformed = flags.has("--skip-malformed-data")
        applyChatTemplate = flags.has("--apply-chat-template")
        if let text = flags.text("--apply-chat-template-kwargs") {
            guard let object = (try? JSONValue(parsing: text))?.objectValue else {
                throw .invalidOption(name: "--apply-chat-template-kwargs", message: "expected a JSON object, got '\(text)'")
            }
            chatTemplateArguments = object
        }
        shuffle = flags.has("--rollout-shuffle")
        numRollout = try required(try positive(try flags.integer("--num-rollout"), "--num-rollout"), "--num-rollout")

        rollout = RolloutOptions(rolloutBatchSize: try required(try positive(try flags.integer("--rollout-batch-size"), "--rollout-batch-size"), "--rollout-batch-size"))
        rollout.samplesPerPrompt = try positive(try flags.integer("--n-samples-per-prompt"), "--n-samples-per-prompt") ?? 1
        rollout.overSamplingBatchSize = try positive(try flags.integer("--over-sampling-batch-size"), "--over-sampling-batch-size")
        if let path = flags.text("--dynamic-sampling-filter-path") {
            guard let filter = DynamicSamplingFilter(path: path) else {
                throw .invalidOption(name: "--dynamic-sampling-filter-path", message: "unknown filter '\(path)'; known: \(DynamicSamplingFilter.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            rollout.dynamicFilter = filter
        }
        rollout.partialRollout = flags.has("--partial-rollout")
        rollout.concurrency = try positive(try flags.integer("--sglang-server-concurrency"), "--sglang-server-concurrency") ?? 512
        rollout.temperature = try flags.number("--rollout-temperature") ?? 1
        rollout.topP = try flags.number("--rollout-top-p") ?? 1
        rollout.topK = try flags.integer("--rollout-top-k") ?? -1
        rollout.maxResponseLength = try positive(try flags.integer("--rollout-max-response-len"), "--rollout-max-response-len") ?? 1024
        rollout.stop = flags.list("--rollout-stop")
        rollout.stopTokenIDs = try flags.list("--rollout-stop-token-ids").map { text throws(RLError) in
            guard let id = Int32(text) else { throw .invalidOption(name: "--rollout-stop-token-ids", message: "'\(text)' is not a token id") }
            return id
        }
        rollout.rewardKey = flags.text("--reward-key")
        if let seed = try flags.integer("--rollout-seed") { rollout.seed = UInt64(truncatingIfNeeded: seed) }
        try rollout.validate()

        rmType = flags.text("--rm-type")
        rmURL = flags.text("--rm-url")
        customRewardCommand = flags.text("--custom-rm-cmd")
        rewardTimeout = try flags.number("--rm-timeout") ?? 30
        rewardTimeoutReward = try flags.number("--rm-timeout-reward") ?? 0
        groupReward = flags.has("--group-rm")
        if rmType == nil && customRewardCommand == nil && !debugTrainOnly {
            throw .invalidOption(name: "--rm-type", message: "is required (or --custom-rm-cmd)")
        }
        if rmType == "remote_rm" && rmURL == nil { throw .invalidOption(name: "--rm-url", message: "is required with --rm-type remote_rm") }

        var loss = LossOptions()
        if let name = flags.text("--advantage-estimator") {
            guard let estimator = AdvantageEstimator(rawValue: name) else {
                throw .invalidOption(name: "--advantage-estimator", message: "unknown '\(name)'; known: \(AdvantageEstimator.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            loss.advantageEstimator = estimator
            optimization.advantage.estimator = estimator
        }
        loss.useKLLoss = flags.has("--use-kl-loss")
        loss.klLossCoef = try flags.number("--kl-loss-coef") ?? 0
        if let name = flags.text("--kl-loss-type") {
            guard let type = KLType(rawValue: name) else {
                throw .invalidOption(name: "--kl-loss-type", message: "unknown '\(name)'; known: \(KLType.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            loss.klLossType = type
            optimization.advantage.klType = type
        }
        loss.useUnbiasedKL = flags.has("--use-unbiased-kl")
        loss.entropyCoef = try flags.number("--entropy-coef") ?? 0
        loss.epsClip = try flags.number("--eps-clip") ?? 0.2
        loss.epsClipHigh = try flags.number("--eps-clip-high")
        loss.epsClipC = try flags.number("--eps-clip-c")
        loss.useTIS = flags.has("--use-tis")
        loss.tisClip = try flags.number("--tis-clip") ?? 2
        loss.tisClipLow = try flags.number("--tis-clip-low") ?? 0
        loss.calculatePerTokenLoss = flags.has("--calculate-per-token-loss")
        do { try loss.validate() } catch { throw error }
        optimization.loss = loss
        optimization.advantage.klCoef = try flags.number("--kl-coef") ?? 0
        optimization.advantage.gamma = try flags.number("--gamma") ?? 1
        optimization.advantage.normalizeAdvantages = flags.has("--normalize-advantages")
        optimization.grpoStdNormalization = !flags.has("--disable-grpo-std-normalization")
        optimization.rewardsNormalization = !flags.has("--disable-rewards-normalization")
        optimization.rewardKey = rollout.rewardKey
        optimization.temperature = Float(rollout.temperature)
        optimization.useRolloutLogprobs = flags.has("--use-rollout-logprobs")
        optimization.useRolloutRoutingReplay = flags.has("--use-rollout-routing-replay")
        // slime: R3 implies R2's replay in the training forwards; the routing then comes from the engine.
        optimization.useRoutingReplay = flags.has("--use-routing-replay") || optimization.useRolloutRoutingReplay
        rollout.returnRoutedExperts = optimization.useRolloutRoutingReplay
        engine.enableReturnRoutedExperts = optimization.useRolloutRoutingReplay
        optimization.numStepsPerRollout = try positive(try flags.integer("--num-steps-per-rollout"), "--num-steps-per-rollout")
        optimization.globalBatchSize = try positive(try flags.integer("--global-batch-size"), "--global-batch-size")
        if optimization.numStepsPerRollout == nil && optimization.globalBatchSize == nil { optimization.numStepsPerRollout = 1 }
        if flags.has("--use-dynamic-batch-size") {
            optimization.microBatching = .dynamic(maxTokensPerGPU: try required(try positive(try flags.integer("--max-tokens-per-gpu"), "--max-tokens-per-gpu"), "--max-tokens-per-gpu"))
        } else {
            optimization.microBatching = .fixed(microBatchSize: try positive(try flags.integer("--micro-batch-size"), "--micro-batch-size") ?? 1)
        }

        if let optimizer = flags.text("--optimizer"), optimizer != "adam" {
            throw .invalidOption(name: "--optimizer", message: "only 'adam' (AdamW) is supported, got '\(optimizer)'")
        }
        adam = AdamWConfig(
            beta1: Float(try flags.number("--adam-beta1") ?? 0.9), beta2: Float(try flags.number("--adam-beta2") ?? 0.999),
            epsilon: Float(try flags.number("--adam-eps") ?? 1e-8), weightDecay: Float(try flags.number("--weight-decay") ?? 0.01))
        learningRate = try flags.number("--lr") ?? 1e-6
        minLearningRate = try flags.number("--min-lr") ?? 0
        let styleName = flags.text("--lr-decay-style") ?? "linear"
        guard let style = LearningRateSchedule.Style(rawValue: styleName) else {
            throw .invalidOption(name: "--lr-decay-style", message: "unknown '\(styleName)'; known: constant, linear, cosine")
        }
        decayStyle = style
        warmupSteps = try flags.integer("--lr-warmup-iters") ?? 0
        decaySteps = try positive(try flags.integer("--lr-decay-iters"), "--lr-decay-iters")
        clipGradient = try flags.number("--clip-grad") ?? 1.0
        if let granularity = flags.text("--recompute-granularity") {
            guard granularity == "full" || granularity == "selective" else {
                throw .invalidOption(name: "--recompute-granularity", message: "expected full or selective, got '\(granularity)'")
            }
            recompute = true
        }

        device = flags.text("--device") ?? "cpu"
        guard device == "cpu" || device == "cuda" else { throw .invalidOption(name: "--device", message: "expected cpu or cuda, got '\(device)'") }
        threads = try positive(try flags.integer("--threads"), "--threads")
        memoryFraction = try flags.number("--sglang-mem-fraction-static")
        engine.maxTotalTokens = try positive(try flags.integer("--sglang-max-total-tokens"), "--sglang-max-total-tokens")
        if let size = try positive(try flags.integer("--sglang-chunked-prefill-size"), "--sglang-chunked-prefill-size") { engine.chunkedPrefillSize = size }
        if let count = try positive(try flags.integer("--sglang-max-running-requests"), "--sglang-max-running-requests") { engine.maxRunningRequests = count }
        engine.disableRadixCache = flags.has("--sglang-disable-radix-cache")
        engine.contextLength = try positive(try flags.integer("--sglang-context-length"), "--sglang-context-length")
        engine.maxQueuedRequests = max(engine.maxQueuedRequests, rollout.concurrency * 2)

        asynchronous = flags.has("--async")
        rolloutEngineURLs = flags.list("--rollout-engine-url")
        rolloutEngineURLs += flags.list("--rollout-external-engine-addrs").map { $0.contains("://") ? $0 : "http://" + $0 }
        switch (flags.text("--sglang-router-ip"), try flags.integer("--sglang-router-port")) {
        case (let host?, let port?): rolloutEngineURLs.append("http://\(host.contains(":") ? "[\(host)]" : host):\(port)")
        case (nil, nil): break
        case (nil, _?): throw .invalidOption(name: "--sglang-router-ip", message: "is required with --sglang-router-port")
        case (_?, nil): throw .invalidOption(name: "--sglang-router-port", message: "is required with --sglang-router-ip")
        }
        weightSyncDirectory = flags.text("--weight-sync-dir")
        startRolloutID = try flags.integer("--start-rollout-id")

        evaluation = EvaluationOptions(
            interval: try positive(try flags.integer("--eval-interval"), "--eval-interval"),
            samplesPerPrompt: try positive(try flags.integer("--n-samples-per-eval-prompt"), "--n-samples-per-eval-prompt") ?? 1,
            temperature: try flags.number("--eval-temperature") ?? rollout.temperature,
            topP: try flags.number("--eval-top-p") ?? rollout.topP,
            maxResponseLength: try positive(try flags.integer("--eval-max-response-len"), "--eval-max-response-len") ?? rollout.maxResponseLength,
            skipBeforeTrain: flags.has("--skip-eval-before-train"))
        let pairs = flags.list("--eval-prompt-data")
        guard pairs.count % 2 == 0 else {
            throw .invalidOption(name: "--eval-prompt-data", message: "expects NAME PATH pairs, got \(pairs.count) values")
        }
        evaluation.datasets = stride(from: 0, to: pairs.count, by: 2).map { (pairs[$0], pairs[$0 + 1]) }
        if evaluation.interval != nil && evaluation.datasets.isEmpty {
            throw .invalidOption(name: "--eval-interval", message: "needs --eval-prompt-data")
        }
        metricsDirectory = flags.text("--metrics-dir")
        tensorboardDirectory = flags.text("--tensorboard-dir")
        ignoredFlags = flags.ignored
    }

    /// The learning-rate schedule over `totalSteps` optimizer steps.
    public func schedule(totalSteps: Int) -> LearningRateSchedule {
        LearningRateSchedule(maxLR: learningRate, minLR: minLearningRate, style: decayStyle, warmupSteps: warmupSteps, decaySteps: decaySteps ?? max(totalSteps, 1))
    }
}
