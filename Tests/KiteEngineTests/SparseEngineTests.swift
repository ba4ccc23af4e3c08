import Foundation
import Testing
import KiteEngine
import KiteModels
import KiteTensor

/// DeepSeek (latent attention, its cache of compressed latents, experts) and Qwen3-MoE through the engine.
@Suite(.serialized)
struct SparseEngineTests {
    static func model(_ name: String, options: ModelLoadOptions = ModelLoadOptions(log: { _ in })) throws -> Transformer {
        try Transformer.load(directory: EngineFixtures.root.appendingPathComponent("models/\(name)").path, backend: CPUBackend(threads: 2), options: options)
    }

    /// Greedy continuation the training way: the whole sequence through the training-mode forward (latent
    /// attention expanded, no cache) for every token, taking the argmax of the last row's logits.
    static func trainingGreedy(_ model: Transformer, prompt: [Int32], count: Int) throws -> [Int32] {
        var tokens = prompt
        for _ in 0..<count {
            let hidden = try model.forwardHidden(tokens: tokens, sequences: PackedSequences(lengths: [tokens.count]))
            let logits = try model.logits(hidden: hidden.rows((tokens.count - 1)..<tokens.count)).toFloats()
            var best = 0
            for j in logits.indices where logits[j] > logits[best] { best = j }
            tokens.append(Int32(best))
        }
        return Array(tokens[prompt.count...])
    }

    /// Paged blocks of latents, chunked prefill, batching and forked samples (n = 2) still give, token for
    /// token, the argmax of the training-mode forward: the absorbed latent attention over the cache agrees
    /// with the expanded one.
    @Test(arguments: ["deepseek_v3", "deepseek_v2", "qwen3_moe"])
    func greedyGenerationEqualsTheTrainingForwardArgmax(model name: String) async throws {
        let model = try Self.model(name)
        var options = EngineOptions()
        options.chunkedPrefillSize = 10
        options.blockSize = 4
        let engine = try InferenceEngine(model: try model.clone(), options: options)
        defer { engine.shutdown() }
        let lengths = [5, 14, 9]
        let prompts = lengths.enumerated().map { EngineFixtures.prompt(length: $0.element, seed: UInt64(40 + $0.offset), vocabulary: model.config.vocabularySize) }
        let results = try await withThrowingTaskGroup(of: (Int, [GenerationResult]).self) { group in
            for (i, prompt) in prompts.enumerated() {
                group.addTask {
                    (i, try await engine.generate(GenerationRequest(id: "r\(i)", promptTokens: prompt, sampling: EngineFixtures.greedy(maxNewTokens: 12, n: 2))))
                }
            }
            var collected = [Int: [GenerationResult]]()
            for try await (i, result) in group { collected[i] = result }
            return collected
        }
        for (i, prompt) in prompts.enumerated() {
            let expected = try Self.trainingGreedy(model, prompt: prompt, count: 12)
            #expect(Set(expected).count > 1, "\(name) request \(i): a degenerate continuation \(expected) would test little")
            let samples = try #require(results[i])
            #expect(samples.count == 2)
            for sample in samples { #expect(sample.outputTokens == expected, "\(name) request \(i) sample \(sample.sampleIndex)") }
        }
        let statistics = await engine.statistics()
        #expect(statistics.freeBlocks + statistics.cachedBlocks == statistics.totalBlocks)
        #expect(!statistics.expertLoad.isEmpty && statistics.expertLoad.maxImbalance >= 1)
    }

    /// An engine serving a block-scaled fp8 checkpoint as fp8 (dequantised where used) generates what the
    /// training forward of the same checkpoint dequantised on load chooses; a weight sync from that trainer
    /// quantises online and changes nothing.
    @Test func fp8WeightsServeAsTheirDequantisedValues() async throws {
        let directory = EngineFixtures.root.appendingPathComponent("fp8/quantized").path
        let backend = CPUBackend(threads: 2)
        let trainer = try Transformer.load(directory: directory, backend: backend)
        let served = try Transformer.load(directory: directory, backend: backend, options: ModelLoadOptions(keepQuantizedWeights: true))
        let engine = try InferenceEngine(model: served)
        defer { engine.shutdown() }
        let prompt = EngineFixtures.prompt(length: 7, seed: 3, vocabulary: trainer.config.vocabularySize)
        let expected = try Self.trainingGreedy(trainer, prompt: prompt, count: 10)
        // The projections take a byte per weight instead of four.
        let fp32Bytes = (trainer.parameters.entries + trainer.buffers.entries).reduce(0) { $0 + $1.tensor.byteCount }
        #expect(await engine.statistics().weightBytes < fp32Bytes / 2)
        let first = try await engine.generate(GenerationRequest(id: "a", promptTokens: prompt, sampling: EngineFixtures.greedy(maxNewTokens: 10)))
        #expect(first.first?.outputTokens == expected)
        try await InProcessSync.copy(trainer, into: engine, version: "1")
        let second = try await engine.generate(GenerationRequest(id: "b", promptTokens: prompt, sampling: EngineFixtures.greedy(maxNewTokens: 10)))
        #expect(second.first?.outputTokens == expected && second.first?.weightVersion == "1")
    }

    /// The engine sizes its cache from the model's layout: one `[latent | rotary key]` row per token and layer.
    @Test func latentCacheTakesCompressedRows() async throws {
        let deepseek = try InferenceEngine(model: try Self.model("deepseek_v3"))
        defer { deepseek.shutdown() }
        // 3 layers x (kv_lora_rank 16 + qk_rope_head_dim 8) fp32; expanded keys and values would be 3 x 4 heads x (16 + 12).
        #expect(await deepseek.statistics().cacheBytesPerToken == 3 * 24 * 4)
        let qwen = try InferenceEngine(model: try Self.model("qwen3_moe"))
        defer { qwen.shutdown() }
        #expect(await qwen.statistics().cacheBytesPerToken == 3 * 2 * (2 * 8) * 4)
    }
}

/// The colocated weight sync, as the RL loop's in-process rollout engine does it.
enum InProcessSync {
    static func copy(_ trainer: any CausalLanguageModel, into engine: InferenceEngine, version: String) async throws {
        try await engine.updateWeights(version: version) { target in try WeightSync.copy(from: trainer, into: target) }
    }
}
