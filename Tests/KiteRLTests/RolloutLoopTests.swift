import Foundation
import Testing
import KiteEngine
import KiteJSON
import KiteModels
import KiteRL
import KiteTensor

/// A rule reward over tokens: 1 when the first response token is even. Real scoring of real engine output,
/// chosen so that groups pass the dynamic filter sometimes and fail it sometimes.
struct FirstTokenParityReward: RewardFunction {
    func rewards(for samples: [Sample]) async throws -> [JSONValue] {
        samples.map { sample in
            guard let first = sample.responseTokens.first else { return .double(0) }
            return .double(first % 2 == 0 ? 1 : 0)
        }
    }
}

enum LoopFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func model() throws -> Transformer {
        try Transformer.load(directory: root.appendingPathComponent("models/qwen3").path, backend: CPUBackend(threads: 2))
    }

    static func records(_ count: Int, seed: UInt64) -> [PromptRecord] {
        var generator = SeededGenerator(seed: seed)
        return (0..<count).map { index in
            let tokens = (0..<(3 + Int(generator.next() % 6))).map { _ in Int32(generator.next() % 72) }
            return PromptRecord(index: index, prompt: .string("p\(index)"), promptTokens: tokens, promptText: "p\(index)", label: nil)
        }
    }
}

@Suite(.serialized)
struct RolloutLoopTests {
    func manager(engine: InferenceEngine, seed: UInt64 = 3, partial: Bool = false) throws -> RolloutManager {
        var options = RolloutOptions(rolloutBatchSize: 6)
        options.samplesPerPrompt = 4
        options.overSamplingBatchSize = 4
        options.dynamicFilter = DynamicSamplingFilter(path: "slime.rollout.filter_hub.dynamic_sampling_filters.check_reward_nonzero_std")
        options.maxResponseLength = 5
        options.seed = seed
        options.concurrency = 8
        options.partialRollout = partial
        return try RolloutManager(
            engine: InProcessRolloutEngine(engine: engine), dataset: try PromptDataset(records: LoopFixtures.records(200, seed: 9), shuffle: true, seed: 5),
            reward: FirstTokenParityReward(), options: options)
    }

    @Test func dynamicSamplingReturnsExactlyTheBatchWithNonzeroRewardSpread() async throws {
        let engine = try InferenceEngine(model: try LoopFixtures.model())
        defer { engine.shutdown() }
        let rollout = try manager(engine: engine)
        for rolloutID in 0..<3 {
            let result = try await rollout.generate(rolloutID: rolloutID)
            #expect(result.groups.count == 6)
            for group in result.groups {
                #expect(group.count == 4)
                let rewards = try group.map { try $0.rewardValue(key: nil) }
                #expect(Set(rewards).count == 2, "every accepted group has both rewards")
                #expect(group.allSatisfy { $0.responseLength > 0 && $0.rolloutLogProbs?.count == $0.responseLength && $0.weightVersions == ["0"] })
            }
            let dropRatio = result.metrics.first { $0.name == "rollout/filter_drop_ratio" }?.value ?? 0
            #expect(dropRatio > 0, "the filter must actually drop groups in this test")
        }
        // Aborted surplus requests have returned their blocks.
        try await Task.sleep(nanoseconds: 50_000_000)
        let statistics = await engine.statistics()
        #expect(statistics.runningSequences == 0 && statistics.waitingSequences == 0)
        #expect(statistics.freeBlocks + statistics.cachedBlocks == statistics.totalBlocks)
    }

    /// A reward that never varies within a group makes dynamic sampling drop every group: the rollout fails
    /// with a message saying so after a bounded number of groups (max(64 x batch, two epochs)), never spins.
    @Test func dynamicSamplingGivesUpWhenEveryGroupAgrees() async throws {
        struct ConstantReward: RewardFunction {
            func rewards(for samples: [Sample]) async throws -> [JSONValue] { samples.map { _ in .double(0) } }
        }
        let engine = try InferenceEngine(model: try LoopFixtures.model())
        defer { engine.shutdown() }
        var options = RolloutOptions(rolloutBatchSize: 2)
        options.samplesPerPrompt = 2
        options.overSamplingBatchSize = 4
        options.dynamicFilter = .nonzeroStd
        options.maxResponseLength = 1
        options.concurrency = 16
        let rollout = try RolloutManager(
            engine: InProcessRolloutEngine(engine: engine), dataset: try PromptDataset(records: LoopFixtures.records(40, seed: 9), shuffle: false, seed: 5),
            reward: ConstantReward(), options: options)
        let error = await #expect(throws: RLError.self) { try await rollout.generate(rolloutID: 0) }
        let message = error.map { "\($0)" } ?? ""
        #expect(message.contains("dynamic sampling dropped 128 groups") && message.contains("reward function"), "\(message)")
    }

    /// The same seed gives the same rollout, whatever the engine's batching and timing did.
    @Test func rolloutsAreReproducible() async throws {
        let model = try LoopFixtures.model()
        var tokens: [[[Int]]] = []
        for concurrency in [8, 1000] {
            let engine = try InferenceEngine(model: try model.clone())
            defer { engine.shutdown() }
            var options = RolloutOptions(rolloutBatchSize: 6)
            options.samplesPerPrompt = 4
            options.overSamplingBatchSize = 4
            options.dynamicFilter = .nonzeroStd
            options.maxResponseLength = 5
            options.concurrency = concurrency
            let rollout = try RolloutManager(
                engine: InProcessRolloutEngine(engine: engine), dataset: try PromptDataset(records: LoopFixtures.records(200, seed: 9), shuffle: true, seed: 5),
                reward: FirstTokenParityReward(), options: options)
            tokens.append(try await rollout.generate(rolloutID: 0).groups.map { $0.map(\.tokens) }.flatMap { $0 }.map { $0 })
        }
        #expect(tokens[0] == tokens[1])
    }

    @Test func partialRolloutCarriesUnusedGroupsToTheNextRollout() async throws {
        let engine = try InferenceEngine(model: try LoopFixtures.model())
        defer { engine.shutdown() }
        let rollout = try manager(engine: engine, partial: true)
        _ = try await rollout.generate(rolloutID: 0)
        let carried = rollout.carried.count
        let positionBefore = rollout.dataset.position
        let second = try await rollout.generate(rolloutID: 1)
        #expect(second.groups.count == 6)
        if carried >= 6 {
            #expect(rollout.dataset.position == positionBefore, "carried groups were used before new prompts")
        }
    }
}

struct PromptDatasetTests {
    @Test func shuffledEpochsAreDeterministicAndRestorable() throws {
        let records = LoopFixtures.records(10, seed: 1)
        let a = try PromptDataset(records: records, shuffle: true, seed: 42)
        let first = a.next(25).map(\.index)
        #expect(Set(first.prefix(10)) == Set(0..<10), "an epoch visits every prompt once")
        #expect(first.prefix(10) != first[10..<20], "each epoch has its own order")
        #expect(a.position == DataPosition(epoch: 2, offset: 5))
        let b = try PromptDataset(records: records, shuffle: true, seed: 42)
        #expect(b.next(25).map(\.index) == first)
        let saved = a.position
        let continued = a.next(7).map(\.index)
        let c = try PromptDataset(records: records, shuffle: true, seed: 42)
        c.restore(try DataPosition(json: saved.json, source: "test"))
        #expect(c.next(7).map(\.index) == continued)
        let plain = try PromptDataset(records: records, shuffle: false, seed: 42)
        #expect(plain.next(12).map(\.index) == Array(0..<10) + [0, 1])
    }
}

struct SyntheticTaskTests {
    @Test func rewardsCheckAnswersAgainstLabelsAndPrompts() {
        #expect(SyntheticTask.arithmetic.reward(response: " 57 ", label: "57", prompt: "20+37=") == 1)
        #expect(SyntheticTask.arithmetic.reward(response: "58", label: "57", prompt: "20+37=") == 0)
        #expect(SyntheticTask.sort.reward(response: "2 5 9", label: "2 5 9", prompt: "sort 5 2 9") == 1)
        let prompt = "numbers 3 5 7 target 22"
        #expect(SyntheticTask.countdown.reward(response: "3*5+7", label: "22", prompt: prompt) == 1)
        #expect(SyntheticTask.countdown.reward(response: "(7+3)*5-28", label: "22", prompt: prompt) == 0, "28 is not a given number")
        #expect(SyntheticTask.countdown.reward(response: "3*5+7+0", label: "22", prompt: prompt) == 0, "every number exactly once")
        #expect(SyntheticTask.countdown.reward(response: "5*3+7", label: "22", prompt: prompt) == 1)
        #expect(SyntheticTask.countdown.reward(response: "3*5+", label: "22", prompt: prompt) == 0)
        #expect(SyntheticTask.countdown.reward(response: String(repeating: "(", count: 10_000), label: "22", prompt: prompt) == 0)
        #expect(SyntheticTask.countdown.reward(response: "99999999999*99999999999", label: "22", prompt: prompt) == 0)
    }

    @Test func generatedCountdownProblemsAreSolvedByTheirOwnConstruction() {
        var generator = SeededGenerator(seed: 4)
        for _ in 0..<200 {
            let (prompt, label) = SyntheticTask.countdown.make(using: &generator)
            #expect(Int(label) != nil && prompt.hasPrefix("numbers "), "\(prompt)")
            let arithmetic = SyntheticTask.arithmetic.make(using: &generator)
            let parts = arithmetic.prompt.dropLast().split(separator: "+").compactMap { Int($0) }
            #expect(parts.count == 2 && String(parts[0] + parts[1]) == arithmetic.label)
            let sort = SyntheticTask.sort.make(using: &generator)
            #expect(SyntheticTask.sort.reward(response: sort.label, label: .string(sort.label), prompt: sort.prompt) == 1)
        }
    }
}
