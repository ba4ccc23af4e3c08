import Foundation
import Testing
import KiteEngine
import KiteJSON
import KiteModels
import KiteRL
import KiteTensor
import KiteTrain

/// R2 and R3 in `PolicyOptimization` with the in-process engine on the Qwen3-MoE fixture.
@Suite(.serialized)
struct RoutingReplayRLTests {
    static func model() throws -> Transformer {
        try Transformer.load(directory: LoopFixtures.root.appendingPathComponent("models/qwen3_moe").path, backend: CPUBackend(threads: 2),
                             options: ModelLoadOptions(log: { _ in }))
    }

    /// One rollout of 3 groups of 4 from an engine that records routed experts.
    static func rollout(_ model: Transformer) async throws -> [[Sample]] {
        var engineOptions = EngineOptions()
        engineOptions.enableReturnRoutedExperts = true
        engineOptions.blockSize = 4
        let engine = try InferenceEngine(model: try model.clone(), options: engineOptions)
        defer { engine.shutdown() }
        var options = RolloutOptions(rolloutBatchSize: 3)
        options.samplesPerPrompt = 4
        options.maxResponseLength = 6
        options.returnRoutedExperts = true
        options.seed = 11
        let manager = try RolloutManager(
            engine: InProcessRolloutEngine(engine: engine), dataset: try PromptDataset(records: LoopFixtures.records(12, seed: 4), shuffle: false, seed: 1),
            reward: FirstTokenParityReward(), options: options)
        return try await manager.generate(rolloutID: 0).groups
    }

    static func train(_ model: Transformer, _ groups: [[Sample]], r2: Bool, r3: Bool, samplesPerPrompt: Int = 4) throws -> [PolicyStepMetrics] {
        let trainer = try PolicyTrainer(model: model, optimizer: AdamWConfig(), schedule: LearningRateSchedule(maxLR: 5e-2, decaySteps: 10))
        var options = PolicyOptimizationOptions()
        options.numStepsPerRollout = 2
        // About three samples per micro-batch: the replayed rows are packed differently than they were recorded.
        options.microBatching = .dynamic(maxTokensPerGPU: 40)
        options.useRoutingReplay = r2
        options.useRolloutRoutingReplay = r3
        return try PolicyOptimization(trainer: trainer, reference: nil, options: options).train(groups: groups, samplesPerPrompt: samplesPerPrompt)
    }

    /// The engine's routing is what the trainer's old-log-prob forward records: R3 (replaying the engine's) and
    /// R2 (replaying the trainer's record) give the same steps, bit for bit, the first one also equal to a free
    /// step; the train/rollout log-prob difference is 0 (CPU, colocated).
    @Test func r2AndR3ReplayTheSameRoutingAndReportTheLogprobDifference() async throws {
        let model = try Self.model()
        let groups = try await Self.rollout(model)
        for sample in groups.flatMap({ $0 }) {
            let routed = try #require(sample.rolloutRoutedExperts, "sample \(sample.name)")
            #expect(routed.tokenCount == sample.tokens.count - 1 && routed.layerCount == 3 && routed.topK == 2)
        }
        let free = try Self.train(try model.clone(), groups, r2: false, r3: false)
        let r2Model = try model.clone(), r3Model = try model.clone()
        let r2 = try Self.train(r2Model, groups, r2: true, r3: false)
        let r3 = try Self.train(r3Model, groups, r2: true, r3: true)
        #expect(r2.count == 2 && r3.count == 2)
        for (a, b) in zip(r2, r3) {
            // Expert load may differ: R3's last token of each sample has placeholder experts (the engine never ran
            // it), R2's its recorded choice; no log-prob depends on that row, so the steps are equal.
            #expect(a.step.gradientNorm == b.step.gradientNorm && a.loss == b.loss)
            #expect(b.loss.trainRolloutLogprobAbsDiff == 0)
        }
        #expect(free[0].step.gradientNorm == r2[0].step.gradientNorm && free[0].loss == r2[0].loss)
        for (name, parameter) in r2Model.parameters.entries {
            #expect(try r3Model.parameters.require(name).toFloats() == parameter.toFloats(), "\(name)")
        }
    }

    @Test func r3WithoutTheEnginesRoutingNamesTheSampleAndField() async throws {
        let model = try Self.model()
        var groups = try await Self.rollout(model)
        groups[1][2].rolloutRoutedExperts = nil
        let name = groups[1][2].name
        #expect(throws: RLError.invalidSample(sample: name, field: "rollout_routed_experts",
                                              message: "--use-rollout-routing-replay needs the experts the engine routed each token to (return_routed_experts)")) {
            try Self.train(try model.clone(), groups, r2: true, r3: true)
        }
        // A dense model ignores both flags.
        let dense = try LoopFixtures.model()
        let samples = [Sample(index: 0, groupIndex: 0, tokens: [3, 4, 5, 6], responseLength: 2, reward: 1), Sample(index: 1, groupIndex: 0, tokens: [3, 4, 7, 8], responseLength: 2, reward: 0)]
        let reports = try Self.train(dense, [samples], r2: true, r3: true, samplesPerPrompt: 2)
        #expect(reports.count == 2)
    }

    /// The sample field round-trips through the debug dump as slime's nested array, and a ragged one is refused.
    @Test func rolloutRoutedExpertsRoundTripThroughTheDump() throws {
        let routed = try RoutedExperts(tokenCount: 2, layerCount: 2, topK: 2, values: [1, 2, 0, 0, 3, 4, 0, 0])
        let sample = Sample(index: 7, tokens: [1, 2, 3], responseLength: 1, rolloutRoutedExperts: routed)
        #expect(sample.json["rollout_routed_experts"] == [[[1, 2], [0, 0]], [[3, 4], [0, 0]]])
        let batch = RolloutBatch(rolloutId: 0, samples: [sample])
        #expect(try RolloutBatch(parsing: batch.serialized(), source: "dump").samples[0].rolloutRoutedExperts == routed)
        var ragged = try #require(sample.json.objectValue)
        ragged["rollout_routed_experts"] = [[[1, 2], [0, 0]], [[3], [0, 0]]]
        #expect(throws: RLError.self) { try Sample(json: .object(ragged), position: 0) }
    }
}
