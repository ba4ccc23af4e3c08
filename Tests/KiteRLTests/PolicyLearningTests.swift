import Foundation
import Testing
import KiteEngine
import KiteJSON
import KiteModels
import KiteRL
import KiteTensor
import KiteTrain

/// Does RL actually learn? GRPO through the real engine, rollout manager and trainer, rewarding an even first
/// response token, must move the policy's probability mass onto even tokens.
@Suite(.serialized)
struct PolicyLearningTests {
    /// The model's probability that the first response token is even, averaged over prompts.
    static func evenMass(_ model: Transformer, prompts: [PromptRecord]) throws -> Double {
        var total = 0.0
        for record in prompts {
            let cache = ContiguousKeyValueCache(layerCount: model.config.layerCount)
            let hidden = try model.forwardHidden(tokens: record.promptTokens, positions: (0..<record.promptTokens.count).map(Int32.init), cache: cache)
            let logits = try model.logits(hidden: hidden.rows((hidden.shape[0] - 1)..<hidden.shape[0])).toFloats().map(Double.init)
            let maximum = logits.max() ?? 0
            let weights = logits.map { exp($0 - maximum) }
            total += stride(from: 0, to: weights.count, by: 2).map { weights[$0] }.reduce(0, +) / weights.reduce(0, +)
        }
        return total / Double(prompts.count)
    }

    @Test func grpoMovesProbabilityTowardRewardedTokens() async throws {
        let model = try LoopFixtures.model()
        let records = LoopFixtures.records(64, seed: 17)
        let before = try Self.evenMass(model, prompts: records)
        let engine = try InferenceEngine(model: try model.clone())
        defer { engine.shutdown() }
        let rolloutEngine = InProcessRolloutEngine(engine: engine)
        var options = RolloutOptions(rolloutBatchSize: 8)
        options.samplesPerPrompt = 8
        options.dynamicFilter = .nonzeroStd
        options.maxResponseLength = 1
        let manager = try RolloutManager(engine: rolloutEngine, dataset: try PromptDataset(records: records, shuffle: true, seed: 1), reward: FirstTokenParityReward(), options: options)
        let trainer = try PolicyTrainer(model: model, optimizer: AdamWConfig(), schedule: LearningRateSchedule(maxLR: 3e-3, decaySteps: 1), clipGradient: 1.0)
        var optimizationOptions = PolicyOptimizationOptions()
        optimizationOptions.numStepsPerRollout = 1
        optimizationOptions.microBatching = .dynamic(maxTokensPerGPU: 4096)
        let optimization = try PolicyOptimization(trainer: trainer, reference: nil, options: optimizationOptions)
        var rewards: [Double] = []
        for rolloutID in 0..<20 {
            let result = try await manager.generate(rolloutID: rolloutID)
            _ = try optimization.train(groups: result.groups, samplesPerPrompt: 8)
            try await rolloutEngine.updateWeights(from: model, version: String(rolloutID + 1))
            rewards.append(result.metrics.first { $0.name == "rollout/reward_mean" }?.value ?? 0)
        }
        let after = try Self.evenMass(model, prompts: records)
        #expect(before > 0.3 && before < 0.7, "the untrained model is near even odds: \(before)")
        #expect(after > before + 0.25, "probability of an even first token: \(before) -> \(after)")
    }
}
