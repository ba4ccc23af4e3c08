import KiteJSON
import KiteModels
import KiteTensor
import KiteTrain

/// slime's training-side flags for one rollout's samples.
public struct PolicyOptimizationOptions: Sendable, Equatable {
    public var loss = LossOptions()
    public var advantage = AdvantageOptions()
    /// `--disable-grpo-std-normalization` clears this.
    public var grpoStdNormalization = true
    /// `--disable-rewards-normalization` clears this.
    public var rewardsNormalization = true
    public var rewardKey: String?
    /// `--rollout-temperature`: log-probs are taken under `softmax(logits / T)`.
    public var temperature: Float = 1
    /// `--num-steps-per-rollout` (or derive it from `globalBatchSize`).
    public var numStepsPerRollout: Int?
    /// `--global-batch-size`, in samples.
    public var globalBatchSize: Int?
    /// `--use-dynamic-batch-size --max-tokens-per-gpu N`, else `--micro-batch-size N`.
    public var microBatching: MicroBatching = .fixed(microBatchSize: 1)
    /// `--use-rollout-logprobs`: take the engine's log-probs as the old policy's instead of recomputing.
    public var useRolloutLogprobs = false
    /// `--use-routing-replay` (R2): the old-log-prob forward records every sparse layer's experts per token, and
    /// every training forward of the rollout replays them.
    public var useRoutingReplay = false
    /// `--use-rollout-routing-replay` (R3): the old-log-prob and training forwards replay the experts the engine
    /// routed each token to (`Sample.rolloutRoutedExperts`). Takes precedence over R2.
    public var useRolloutRoutingReplay = false

    public init() {}
}

/// What one optimizer step of the policy did, with slime's metric names.
public struct PolicyStepMetrics: Sendable {
    public var step: StepReport
    public var loss: LossMetrics
    public var entropyMean: Double
    public var samples: Int
}

/// Turns a rollout's samples into optimizer steps: normalises rewards per group, computes advantages,
/// builds slime's micro-batch schedule, and runs each step's micro-batches through `policyLoss`.
public final class PolicyOptimization: @unchecked Sendable {
    public let trainer: PolicyTrainer
    /// The reference policy, when a KL term needs it (`--use-kl-loss` or `--kl-coef`).
    public let reference: (any CausalLanguageModel)?
    public let options: PolicyOptimizationOptions

    public init(trainer: PolicyTrainer, reference: (any CausalLanguageModel)?, options: PolicyOptimizationOptions) throws(RLError) {
        try options.loss.validate()
        if (options.loss.useKLLoss || options.advantage.klCoef != 0) && reference == nil {
            throw .invalidOption(name: "--use-kl-loss", message: "a KL term needs a reference model (--ref-load, or the initial weights)")
        }
        self.trainer = trainer
        self.reference = reference
        self.options = options
    }

    public func train(groups: [[Sample]], samplesPerPrompt: Int) throws -> [PolicyStepMetrics] {
        let samples = groups.flatMap { $0 }
        guard !samples.isEmpty else { return [] }
        for sample in samples { try sample.validate() }
        let rawRewards = try samples.map { try $0.rewardValue(key: options.rewardKey) }
        let normalized = try normalizeGroupRewards(rawRewards, options: RewardNormalizationOptions(
            estimator: options.advantage.estimator, nSamplesPerPrompt: samplesPerPrompt, rolloutBatchSize: groups.count,
            rewardsNormalization: options.rewardsNormalization, grpoStdNormalization: options.grpoStdNormalization))
        let lossMasks = samples.map(\.effectiveLossMask)
        let responseLengths = samples.map(\.responseLength)
        // The reference policy always routes freely (slime's "fallthrough" stage).
        let freeSequences = samples.map { TrainingSequence(tokens: $0.tokens.map(Int32.init), responseLength: $0.responseLength) }
        var sequences = freeSequences
        let config = trainer.model.config
        let sparse = !config.sparseLayerIndices.isEmpty
        if options.useRolloutRoutingReplay && sparse {
            for (index, sample) in samples.enumerated() { sequences[index].routedExperts = try Self.rolloutRouting(of: sample, config: config) }
        }
        let recordRouting = options.useRoutingReplay && !options.useRolloutRoutingReplay && sparse

        var scores: ResponseScores?
        if !options.useRolloutLogprobs || recordRouting {
            scores = try trainer.score(sequences, temperature: options.temperature, recordRouting: recordRouting)
        }
        if recordRouting {
            guard let routed = scores?.routedExperts, routed.count == sequences.count else {
                throw RLError.invalidOption(name: "--use-routing-replay", message: "the old-log-prob forward recorded no routing")
            }
            for index in sequences.indices { sequences[index].routedExperts = routed[index] }
        }
        let old: [[Double]]
        if options.useRolloutLogprobs {
            old = try samples.map { sample in
                guard let logprobs = sample.rolloutLogProbs else {
                    throw RLError.invalidSample(sample: sample.name, field: "rollout_log_probs", message: "--use-rollout-logprobs needs the engine's log-probs")
                }
                return logprobs
            }
        } else {
            old = (scores?.logprobs ?? []).map { $0.map(Double.init) }
        }
        var referenceLogprobs: [[Double]]?
        if let reference, options.loss.useKLLoss || options.advantage.klCoef != 0 {
            let scorer = try PolicyTrainer(model: reference, optimizer: AdamWConfig(), schedule: LearningRateSchedule(maxLR: 0, decaySteps: 1))
            referenceLogprobs = try scorer.score(freeSequences, temperature: options.temperature).logprobs.map { $0.map(Double.init) }
        }
        let (advantages, _) = try computeAdvantagesAndReturns(
            rewards: normalized, responseLengths: responseLengths, lossMasks: lossMasks, logProbs: old,
            refLogProbs: referenceLogprobs, options: options.advantage)

        let rolloutIDs = assignRolloutIds(samples.map(\.rolloutId))
        let rollouts = Set(rolloutIDs).count
        let stepBatch = try globalBatchSize(
            rolloutBatchSize: rollouts, nSamplesPerPrompt: 1, numStepsPerRollout: options.numStepsPerRollout, globalBatchSize: options.globalBatchSize)
        let schedule = try buildDPSchedule(
            totalLengths: samples.map(\.tokens.count), rolloutIds: rolloutIDs, globalBatchSize: stepBatch,
            layout: ParallelLayout(), batching: options.microBatching)
        let denominators = try rolloutMaskSums(rolloutIds: rolloutIDs, lossMasks: lossMasks)

        var reports: [PolicyStepMetrics] = []
        for step in 0..<schedule.globalBatchSizes.count {
            let microBatches = schedule.microBatches(rank: 0, step: step)
            let stepSamples = microBatches.flatMap { $0 }
            let normalization = LossNormalization.forStep(
                lossMasks: stepSamples.map { lossMasks[$0] }, globalBatchSize: schedule.globalBatchSizes[step], perToken: options.loss.calculatePerTokenLoss)
            var metrics = LossMetrics()
            var entropySum = 0.0, entropyCount = 0
            let report = try trainer.step(microBatches: microBatches.map { $0.map { sequences[$0] } }, temperature: options.temperature) { index, scores in
                let members = microBatches[index]
                let input = PackedLossInput(
                    responseLengths: members.map { responseLengths[$0] },
                    logProbs: scores.logprobs.flatMap { $0.map(Double.init) },
                    oldLogProbs: members.flatMap { old[$0] },
                    refLogProbs: referenceLogprobs.map { reference in members.flatMap { reference[$0] } },
                    rolloutLogProbs: samples[members[0]].rolloutLogProbs == nil ? nil : members.flatMap { samples[$0].rolloutLogProbs ?? [] },
                    entropy: scores.entropy.flatMap { $0.map(Double.init) },
                    advantages: members.flatMap { advantages[$0] },
                    lossMask: members.flatMap { lossMasks[$0].map(Double.init) },
                    sampleDenominators: members.map { denominators[$0] })
                let result = try policyLoss(input, options: options.loss, normalization: normalization)
                metrics.accumulate(result.metrics)
                for (s, member) in members.enumerated() {
                    for (t, value) in scores.entropy[s].enumerated() where lossMasks[member][t] != 0 {
                        entropySum += Double(value)
                        entropyCount += 1
                    }
                }
                var offset = 0
                var dLogprobs: [[Float]] = [], dEntropy: [[Float]] = []
                for member in members {
                    let length = responseLengths[member]
                    dLogprobs.append(result.dLogProbs[offset..<(offset + length)].map(Float.init))
                    dEntropy.append(result.dEntropy[offset..<(offset + length)].map(Float.init))
                    offset += length
                }
                return ResponseGradients(dLogprobs: dLogprobs, dEntropy: dEntropy)
            }
            reports.append(PolicyStepMetrics(step: report, loss: metrics, entropyMean: entropyCount == 0 ? 0 : entropySum / Double(entropyCount), samples: stepSamples.count))
        }
        return reports
    }

    /// R3: a sample's engine routing (`[len(tokens) - 1, num_hidden_layers, topK]`) as the trainer replays it:
    /// the sparse layers, and a placeholder row for the last token, which the engine never ran and whose row no
    /// log-prob depends on (slime pads it too).
    static func rolloutRouting(of sample: Sample, config: ModelConfig) throws -> RoutedExperts {
        let field = "rollout_routed_experts"
        guard let routed = sample.rolloutRoutedExperts else {
            throw RLError.invalidSample(sample: sample.name, field: field, message: "--use-rollout-routing-replay needs the experts the engine routed each token to (return_routed_experts)")
        }
        guard routed.tokenCount == sample.tokens.count - 1 else {
            throw RLError.invalidSample(sample: sample.name, field: field, message: "\(routed.tokenCount) rows for \(sample.tokens.count) tokens; expected len(tokens) - 1 = \(sample.tokens.count - 1)")
        }
        guard routed.layerCount == config.layerCount, routed.topK == config.routedExpertsPerToken else {
            throw RLError.invalidSample(sample: sample.name, field: field, message: "\(routed.layerCount) layers of top-\(routed.topK) experts; the model has \(config.layerCount) layers of top-\(config.routedExpertsPerToken)")
        }
        return try routed.selectingLayers(config.sparseLayerIndices).appendingPlaceholderToken()
    }
}
