import Foundation
import Testing
import KiteEngine
import KiteModels
import KiteTensor

@Suite(.serialized)
struct EngineTests {
    /// Batching, chunked prefill and the paged cache change nothing: every request's greedy output equals
    /// the full-recompute reference, whatever else runs beside it.
    @Test func greedyOutputIsIndependentOfBatchComposition() async throws {
        let model = try EngineFixtures.model("qwen3")
        var options = EngineOptions()
        options.chunkedPrefillSize = 24
        options.blockSize = 4
        let engine = try InferenceEngine(model: model, options: options)
        defer { engine.shutdown() }
        let lengths = [3, 17, 9, 40, 1, 26]
        let prompts = lengths.enumerated().map { EngineFixtures.prompt(length: $0.element, seed: UInt64($0.offset), vocabulary: 72) }
        let newTokens = [12, 5, 20, 8, 15, 11]
        let results = try await withThrowingTaskGroup(of: (Int, [GenerationResult]).self) { group in
            for (i, prompt) in prompts.enumerated() {
                group.addTask {
                    (i, try await engine.generate(GenerationRequest(id: "r\(i)", promptTokens: prompt, sampling: EngineFixtures.greedy(maxNewTokens: newTokens[i]))))
                }
            }
            var collected = [Int: [GenerationResult]]()
            for try await (i, result) in group { collected[i] = result }
            return collected
        }
        for (i, prompt) in prompts.enumerated() {
            let expected = try EngineFixtures.referenceGreedy(model, prompt: prompt, count: newTokens[i])
            let result = try #require(results[i]?.first)
            #expect(result.outputTokens == expected, "request \(i)")
            #expect(result.finishReason == .length(newTokens[i]))
            #expect(result.promptTokenCount == prompt.count)
        }
        let statistics = await engine.statistics()
        #expect(statistics.freeBlocks + statistics.cachedBlocks == statistics.totalBlocks, "every block back in the pool or the prefix cache")
    }

    /// The engine's log-prob of each sampled token equals the trainer's training-mode forward on the same
    /// tokens at the same temperature (the CPU kernels are batch-invariant, so to the bit; 1e-5 is the contract).
    @Test func logprobsEqualTheTrainersForward() async throws {
        let model = try EngineFixtures.model("llama")
        let engine = try InferenceEngine(model: model)
        defer { engine.shutdown() }
        let prompt = EngineFixtures.prompt(length: 11, seed: 7, vocabulary: 96)
        var sampling = SamplingParameters()
        sampling.temperature = 0.7
        sampling.maxNewTokens = 16
        sampling.ignoreEOS = true
        sampling.seed = 1234
        sampling.n = 3
        let results = try await engine.generate(GenerationRequest(id: "lp", promptTokens: prompt, sampling: sampling, returnLogprob: true))
        #expect(results.count == 3)
        for result in results {
            let tokens = prompt + result.outputTokens
            let forward = try model.forward(tokens: tokens, sequences: PackedSequences(lengths: [tokens.count]), temperature: 0.7, keepActivations: false)
            let trainer = Array(forward.logprobs.toFloats()[(prompt.count - 1)..<(tokens.count - 1)])
            let difference = zip(trainer, result.outputLogprobs).map { abs($0 - $1) }.max() ?? 0
            #expect(difference <= 1e-5, "sample \(result.sampleIndex): \(difference)")
        }
    }

    /// The n samples of one prompt share its full blocks: the prompt is computed once and only the partial
    /// last block is copied per sample. Two new tokens stay inside that last block, so the peak is exactly
    /// 5 shared blocks + 8 private ones (without sharing: 8 x 6 = 48).
    @Test func samplesOfOnePromptShareItsBlocks() async throws {
        let model = try EngineFixtures.model("qwen3")
        var options = EngineOptions()
        options.blockSize = 4
        options.maxTotalTokens = 400
        options.disableRadixCache = true
        let engine = try InferenceEngine(model: model, options: options)
        defer { engine.shutdown() }
        let prompt = EngineFixtures.prompt(length: 22, seed: 3, vocabulary: 72)  // 5 full blocks + 2 tokens
        var sampling = SamplingParameters()
        sampling.maxNewTokens = 2
        sampling.ignoreEOS = true
        sampling.n = 8
        sampling.seed = 5
        let results = try await engine.generate(GenerationRequest(id: "group", promptTokens: prompt, sampling: sampling))
        let statistics = await engine.statistics()
        #expect(statistics.peakUsedBlocks == 5 + 8, "peak blocks in use: \(statistics.peakUsedBlocks)")
        #expect(statistics.prefilledTokens == 22, "the prompt is computed once")
        #expect(statistics.freeBlocks == statistics.totalBlocks)
        #expect(results.count == 8 && results.allSatisfy { $0.outputTokens.count == 2 })
        #expect(results.filter { $0.sampleIndex > 0 }.allSatisfy { $0.cachedTokenCount == 22 })

        // Longer samples still agree with the trainer's view of their tokens, and draw differently.
        sampling.maxNewTokens = 30
        let long = try await engine.generate(GenerationRequest(id: "group2", promptTokens: prompt, sampling: sampling))
        #expect(Set(long.map(\.outputTokens)).count > 1)
        #expect(long.allSatisfy { $0.outputTokens.count == 30 })
    }

    /// A cache too small for all requests at once: sequences are preempted and recomputed, none fails, and
    /// the greedy outputs are the same as with plenty of room.
    @Test func preemptionUnderATinyCacheCompletesEveryRequestUnchanged() async throws {
        let model = try EngineFixtures.model("llama")
        var options = EngineOptions()
        options.blockSize = 4
        options.maxTotalTokens = 64
        options.disableRadixCache = true
        let engine = try InferenceEngine(model: model, options: options)
        defer { engine.shutdown() }
        let prompts = (0..<6).map { EngineFixtures.prompt(length: 10 + $0, seed: 40 + UInt64($0), vocabulary: 96) }
        let results = try await withThrowingTaskGroup(of: (Int, GenerationResult?).self) { group in
            for (i, prompt) in prompts.enumerated() {
                group.addTask { (i, try await engine.generate(GenerationRequest(id: "p\(i)", promptTokens: prompt, sampling: EngineFixtures.greedy(maxNewTokens: 30))).first) }
            }
            var collected = [Int: GenerationResult]()
            for try await (i, result) in group { collected[i] = result }
            return collected
        }
        for (i, prompt) in prompts.enumerated() {
            let result = try #require(results[i])
            #expect(result.outputTokens == (try EngineFixtures.referenceGreedy(model, prompt: prompt, count: 30)), "request \(i)")
        }
        let statistics = await engine.statistics()
        #expect(statistics.preemptions > 0, "the test must actually preempt")
        #expect(statistics.freeBlocks == statistics.totalBlocks)
    }

    @Test func sameSeedSameTokensAndDifferentSeedsDiffer() async throws {
        let model = try EngineFixtures.model("qwen2")
        let engine = try InferenceEngine(model: model)
        defer { engine.shutdown() }
        let prompt = EngineFixtures.prompt(length: 6, seed: 1, vocabulary: 80)
        func run(_ seed: UInt64, _ id: String) async throws -> [Int32] {
            var sampling = SamplingParameters()
            sampling.maxNewTokens = 40
            sampling.ignoreEOS = true
            sampling.seed = seed
            sampling.topP = 0.9
            sampling.topK = 20
            return try await engine.generate(GenerationRequest(id: id, promptTokens: prompt, sampling: sampling))[0].outputTokens
        }
        let a = try await run(9, "a"), b = try await run(9, "b"), c = try await run(10, "c")
        #expect(a == b)
        #expect(a != c)
    }

    @Test func prefixCacheServesARepeatedPrompt() async throws {
        let model = try EngineFixtures.model("qwen3")
        var options = EngineOptions()
        options.blockSize = 4
        let engine = try InferenceEngine(model: model, options: options)
        defer { engine.shutdown() }
        let prompt = EngineFixtures.prompt(length: 19, seed: 11, vocabulary: 72)
        let first = try await engine.generate(GenerationRequest(id: "one", promptTokens: prompt, sampling: EngineFixtures.greedy(maxNewTokens: 6)))[0]
        let second = try await engine.generate(GenerationRequest(id: "two", promptTokens: prompt, sampling: EngineFixtures.greedy(maxNewTokens: 6)))[0]
        #expect(first.cachedTokenCount == 0)
        #expect(second.cachedTokenCount == 16, "four full blocks of the 19-token prompt")
        #expect(first.outputTokens == second.outputTokens)
        #expect(await engine.flushCache())
        #expect(await engine.statistics().cachedBlocks == 0)
    }

    @Test func stopTokensAndLengthEndSamples() async throws {
        let model = try EngineFixtures.model("qwen3")
        let engine = try InferenceEngine(model: model)
        defer { engine.shutdown() }
        let prompt = EngineFixtures.prompt(length: 5, seed: 2, vocabulary: 72)
        let free = try await engine.generate(GenerationRequest(id: "free", promptTokens: prompt, sampling: EngineFixtures.greedy(maxNewTokens: 10)))[0]
        var sampling = EngineFixtures.greedy(maxNewTokens: 10)
        sampling.stopTokenIDs = [free.outputTokens[3]]
        let stopped = try await engine.generate(GenerationRequest(id: "stop", promptTokens: prompt, sampling: sampling))[0]
        let firstStop = try #require(free.outputTokens.firstIndex(of: free.outputTokens[3]))
        #expect(stopped.outputTokens == Array(free.outputTokens[...firstStop]))
        #expect(stopped.finishReason == .stopToken(free.outputTokens[3]))
        let none = try await engine.generate(GenerationRequest(id: "zero", promptTokens: prompt, sampling: EngineFixtures.greedy(maxNewTokens: 0)))[0]
        #expect(none.outputTokens.isEmpty && none.finishReason == .length(0))
    }

    @Test func abortEndsRequestsAndReturnsTheirBlocks() async throws {
        let model = try EngineFixtures.model("qwen3")
        var options = EngineOptions()
        options.disableRadixCache = true
        let engine = try InferenceEngine(model: model, options: options)
        defer { engine.shutdown() }
        var streams: [AsyncThrowingStream<GenerationEvent, any Error>] = []
        for i in 0..<20 {
            streams.append(try engine.submit(GenerationRequest(id: "a\(i)", promptTokens: EngineFixtures.prompt(length: 8, seed: UInt64(i), vocabulary: 72), sampling: EngineFixtures.greedy(maxNewTokens: 100_000 / 1000))))
        }
        engine.abortAll()
        var reasons: [FinishReason] = []
        for stream in streams {
            for try await event in stream {
                if case .finished(let result) = event { reasons.append(result.finishReason) }
            }
        }
        #expect(reasons.count == 20)
        #expect(reasons.contains { if case .abort = $0 { true } else { false } })
        let statistics = await engine.statistics()
        #expect(statistics.freeBlocks == statistics.totalBlocks && statistics.runningSequences == 0 && statistics.waitingSequences == 0)
    }

    @Test func invalidRequestsAreRejectedWithTheField() async throws {
        let model = try EngineFixtures.model("qwen3")
        var options = EngineOptions()
        options.contextLength = 64
        let engine = try InferenceEngine(model: model, options: options)
        defer { engine.shutdown() }
        func rejection(_ request: GenerationRequest) async -> String {
            do {
                _ = try await engine.generate(request)
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        var sampling = SamplingParameters()
        #expect(await rejection(GenerationRequest(id: "v", promptTokens: [1, 72])) == "invalid 'input_ids': token id 72 at position 1 is outside the vocabulary (0..<72)")
        #expect(await rejection(GenerationRequest(id: "e", promptTokens: [])) == "invalid 'input_ids': the prompt is empty")
        #expect(await rejection(GenerationRequest(id: "l", promptTokens: [Int32](repeating: 1, count: 64))).contains("context length is 64"))
        sampling.temperature = -1
        #expect(await rejection(GenerationRequest(id: "t", promptTokens: [1], sampling: sampling)).contains("'temperature'"))
        sampling = SamplingParameters()
        sampling.maxNewTokens = -3
        #expect(await rejection(GenerationRequest(id: "m", promptTokens: [1], sampling: sampling)).contains("'max_new_tokens'"))
        sampling = SamplingParameters()
        sampling.stop = ["x"]
        #expect(await rejection(GenerationRequest(id: "s", promptTokens: [1], sampling: sampling)).contains("needs a tokenizer"))
    }
}

extension EngineTests {
    /// `submit` refuses an invalid request at once (the HTTP server answers 400 before it streams anything),
    /// and after `shutdown` every call still returns rather than waiting for a thread that is gone.
    @Test func submitRefusesInvalidRequestsAtOnceAndCallsAfterShutdownReturn() async throws {
        let engine = try InferenceEngine(model: try EngineFixtures.model("qwen3"))
        #expect(throws: EngineError.self) { _ = try engine.submit(GenerationRequest(id: "bad", promptTokens: [1, 72])) }
        var sampling = SamplingParameters()
        sampling.temperature = -1
        #expect(throws: EngineError.self) { _ = try engine.submit(GenerationRequest(id: "hot", promptTokens: [1], sampling: sampling)) }
        engine.shutdown()
        try await Task.sleep(for: .milliseconds(50))
        _ = await engine.statistics()
        #expect(await engine.flushCache())
        #expect(throws: EngineError.shutDown) { _ = try engine.submit(GenerationRequest(id: "late", promptTokens: [1])) }
    }
}
