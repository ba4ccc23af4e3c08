import Foundation
import Testing
import KiteEngine
import KiteModels
import KiteTensor

/// SGLang's `return_routed_experts` in the engine (slime's R3): every sample's experts, row for row, are those
/// the training forward chooses over the same tokens, however the engine computed them: chunked prefill,
/// forked samples sharing the prompt's blocks, a prefix served from the cache, decode steps, and a recompute
/// after preemption. The comparison is exact: the fixtures' routing decisions are far from ties (checked by
/// scripts/reference/moe_models.py), and cached and uncached forwards differ by ~1e-6.
@Suite(.serialized)
struct RoutedExpertsEngineTests {
    static func model(_ name: String) throws -> Transformer {
        try Transformer.load(directory: EngineFixtures.root.appendingPathComponent("models/\(name)").path, backend: CPUBackend(threads: 2),
                             options: ModelLoadOptions(log: { _ in }))
    }

    static func sampling(maxNewTokens: Int, n: Int, seed: UInt64) -> SamplingParameters {
        var sampling = SamplingParameters()
        sampling.temperature = 1
        sampling.maxNewTokens = maxNewTokens
        sampling.ignoreEOS = true
        sampling.n = n
        sampling.seed = seed
        return sampling
    }

    /// The training forward's record over a result's tokens, but the last, spread over every hidden layer.
    static func expected(_ model: Transformer, prompt: [Int32], result: GenerationResult) throws -> RoutedExperts {
        let tokens = prompt + result.outputTokens
        let routing = ExpertRouting.recording()
        _ = try model.forward(tokens: tokens, sequences: PackedSequences(lengths: [tokens.count]), keepActivations: false, routing: routing)
        return try routing.recorded().tokens(0..<(tokens.count - 1)).spreading(to: model.config.layerCount, at: model.config.sparseLayerIndices)
    }

    static func run(_ engine: InferenceEngine, _ requests: [GenerationRequest]) async throws -> [[GenerationResult]] {
        try await withThrowingTaskGroup(of: (Int, [GenerationResult]).self) { group in
            for (i, request) in requests.enumerated() { group.addTask { (i, try await engine.generate(request)) } }
            var collected = [[GenerationResult]](repeating: [], count: requests.count)
            for try await (i, results) in group { collected[i] = results }
            return collected
        }
    }

    @Test(arguments: ["deepseek_v3", "qwen3_moe"])
    func routedExpertsAreTheTrainingForwardsChoicesForEveryComputedToken(model name: String) async throws {
        let model = try Self.model(name)
        var options = EngineOptions()
        options.blockSize = 4
        options.chunkedPrefillSize = 10
        options.enableReturnRoutedExperts = true
        let engine = try InferenceEngine(model: try model.clone(), options: options)
        defer { engine.shutdown() }
        let vocabulary = model.config.vocabularySize
        let prompts = [5, 14, 9].enumerated().map { EngineFixtures.prompt(length: $0.element, seed: UInt64(60 + $0.offset), vocabulary: vocabulary) }
        let first = try await Self.run(engine, prompts.enumerated().map { i, prompt in
            GenerationRequest(id: "a\(i)", promptTokens: prompt, sampling: Self.sampling(maxNewTokens: 10, n: 2, seed: UInt64(i)), returnRoutedExperts: true)
        })
        // The second prompt again, extended: its first three blocks come from the prefix cache.
        let extended = prompts[1] + [3, 1, 4]
        let second = try await engine.generate(GenerationRequest(
            id: "b", promptTokens: extended, sampling: Self.sampling(maxNewTokens: 6, n: 1, seed: 9), returnRoutedExperts: true))
        #expect(second[0].cachedTokenCount >= 12, "the test must serve a prefix from the cache")
        for (prompt, results) in zip(prompts + [extended], first + [second]) {
            for result in results {
                let routed = try #require(result.routedExperts, "\(name) \(result.requestID)")
                #expect(routed.tokenCount == prompt.count + result.outputTokens.count - 1)
                #expect(routed.layerCount == model.config.layerCount && routed.topK == model.config.routedExpertsPerToken)
                #expect(routed == (try Self.expected(model, prompt: prompt, result: result)), "\(name) \(result.requestID) sample \(result.sampleIndex)")
            }
        }
        // Dense layers hold zeros, as SGLang's buffer does.
        for dense in (0..<model.config.layerCount).filter({ !model.config.sparseLayerIndices.contains($0) }) {
            let routed = try #require(first[0][0].routedExperts)
            #expect(routed.layer(dense).allSatisfy { $0 == 0 })
        }
        // Without the request field, no record comes back.
        let plain = try await engine.generate(GenerationRequest(id: "c", promptTokens: prompts[0], sampling: Self.sampling(maxNewTokens: 2, n: 1, seed: 1)))
        #expect(plain[0].routedExperts == nil)
    }

    /// A cache too small for every sequence at once: preempted sequences recompute their tokens into other
    /// slots, and their rows follow.
    @Test func routedExpertsSurvivePreemptionAndRecompute() async throws {
        let model = try Self.model("qwen3_moe")
        var options = EngineOptions()
        options.blockSize = 4
        options.maxTotalTokens = 64
        options.disableRadixCache = true
        options.enableReturnRoutedExperts = true
        let engine = try InferenceEngine(model: try model.clone(), options: options)
        defer { engine.shutdown() }
        let prompts = (0..<6).map { EngineFixtures.prompt(length: 10 + $0, seed: 80 + UInt64($0), vocabulary: model.config.vocabularySize) }
        let results = try await Self.run(engine, prompts.enumerated().map { i, prompt in
            GenerationRequest(id: "p\(i)", promptTokens: prompt, sampling: Self.sampling(maxNewTokens: 24, n: 1, seed: UInt64(i)), returnRoutedExperts: true)
        })
        let statistics = await engine.statistics()
        #expect(statistics.preemptions > 0, "the test must actually preempt")
        for (prompt, result) in zip(prompts, results.map { $0[0] }) {
            #expect(result.routedExperts == (try Self.expected(model, prompt: prompt, result: result)), "\(result.requestID)")
        }
    }

    @Test func askingWithoutTheEngineOptionIsAClearError() async throws {
        let engine = try InferenceEngine(model: try Self.model("qwen3_moe"))
        defer { engine.shutdown() }
        await #expect(throws: EngineError.invalidRequest(field: "return_routed_experts", detail: "the engine records no routed experts; start it with --enable-return-routed-experts")) {
            try await engine.generate(GenerationRequest(id: "x", promptTokens: [1, 2, 3], sampling: Self.sampling(maxNewTokens: 2, n: 1, seed: 0), returnRoutedExperts: true))
        }
    }
}
