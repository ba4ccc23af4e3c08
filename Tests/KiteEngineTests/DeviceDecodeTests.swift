import Testing
import KiteEngine
import KiteModels
import KiteTensor

/// The accelerator path of the engine (decode steps from device-side metadata, sampling through
/// `Backend.sampleTokens`, padded graph-sized batches) run on the CPU through the backend's reference
/// implementations: it must produce exactly what the host path produces.
@Suite(.serialized)
struct DeviceDecodeTests {
    func run(_ model: Transformer, deviceDecode: Bool, sampling: SamplingParameters, prompts: [[Int32]], twoBatchOverlap: Bool = false) async throws -> [[GenerationResult]] {
        var options = EngineOptions()
        options.blockSize = 4
        options.chunkedPrefillSize = 32
        options.deviceDecode = deviceDecode
        options.enableTwoBatchOverlap = twoBatchOverlap
        options.twoBatchOverlapMinimumBatch = 2
        let engine = try InferenceEngine(model: model, options: options)
        defer { engine.shutdown() }
        return try await withThrowingTaskGroup(of: (Int, [GenerationResult]).self) { group in
            for (i, prompt) in prompts.enumerated() {
                group.addTask { (i, try await engine.generate(GenerationRequest(id: "d\(i)", promptTokens: prompt, sampling: sampling))) }
            }
            var collected = [[GenerationResult]](repeating: [], count: prompts.count)
            for try await (i, result) in group { collected[i] = result }
            return collected
        }
    }

    /// Greedy and temperature sampling (no truncation: the two samplers walk the distribution in the same
    /// order), groups of two samples that fork from their prompt, prompts of several lengths.
    @Test(arguments: [0.0, 0.8])
    func deviceDecodePathMatchesTheHostPath(temperature: Double) async throws {
        let model = try EngineFixtures.model("qwen3")
        let prompts = [3, 17, 9, 1, 26].enumerated().map { EngineFixtures.prompt(length: $0.element, seed: UInt64($0.offset), vocabulary: 72) }
        var sampling = EngineFixtures.greedy(maxNewTokens: 10, n: 2)
        sampling.temperature = temperature
        sampling.seed = 77
        let host = try await run(model, deviceDecode: false, sampling: sampling, prompts: prompts)
        let device = try await run(model, deviceDecode: true, sampling: sampling, prompts: prompts)
        for (i, (expected, actual)) in zip(host, device).enumerated() {
            #expect(actual.map(\.outputTokens) == expected.map(\.outputTokens), "request \(i)")
            #expect(actual.map(\.outputLogprobs) == expected.map(\.outputLogprobs), "request \(i)")
        }
    }

    /// Two-batch overlap: each padded decode batch runs as two half batches (the second holding the padding
    /// rows) whose hidden states are put back in row order; every row's result must be what one batch gives.
    @Test func twoBatchOverlapServesWhatOneBatchServes() async throws {
        let model = try EngineFixtures.model("qwen3")
        let prompts = [3, 17, 9, 1, 26].enumerated().map { EngineFixtures.prompt(length: $0.element, seed: UInt64($0.offset + 20), vocabulary: 72) }
        var sampling = EngineFixtures.greedy(maxNewTokens: 12, n: 2)
        sampling.temperature = 0.8
        sampling.seed = 31
        let host = try await run(model, deviceDecode: false, sampling: sampling, prompts: prompts)
        let overlapped = try await run(model, deviceDecode: true, sampling: sampling, prompts: prompts, twoBatchOverlap: true)
        for (i, (expected, actual)) in zip(host, overlapped).enumerated() {
            #expect(actual.map(\.outputTokens) == expected.map(\.outputTokens), "request \(i)")
            #expect(actual.map(\.outputLogprobs) == expected.map(\.outputLogprobs), "request \(i)")
        }
    }

    /// The host's time per decode-step phase: counted on the device path only, every phase but scheduling
    /// inside the decode steps' wall time, and the per-step figures are the differences over the steps.
    @Test func decodeHostPhasesAddUpInsideTheDecodeSteps() async throws {
        let model = try EngineFixtures.model("qwen3")
        for deviceDecode in [false, true] {
            var options = EngineOptions()
            options.blockSize = 4
            options.deviceDecode = deviceDecode
            let engine = try InferenceEngine(model: model, options: options)
            defer { engine.shutdown() }
            _ = try await engine.generate(GenerationRequest(
                id: "phases", promptTokens: EngineFixtures.prompt(length: 5, seed: 3, vocabulary: 72), sampling: EngineFixtures.greedy(maxNewTokens: 8, n: 2)))
            let statistics = await engine.statistics()
            let phases = statistics.decodeHostPhases
            let inside = phases.prepare + phases.launch + phases.sampleSetup + phases.sampleWait + phases.accept
            if deviceDecode {
                #expect(statistics.decodeSteps > 0)
                #expect(phases.prepare > 0 && phases.sampleWait > 0 && phases.accept > 0 && phases.schedule > 0)
                #expect(inside <= statistics.decodeSeconds)
            } else {
                #expect(phases == DecodeHostPhases(), "the host path has no device decode steps")
            }
        }
        var before = DecodeHostPhases(), after = DecodeHostPhases()
        before.prepare = 0.5
        after.prepare = 0.9
        after.accept = 0.2
        let perStep = after.millisecondsPerStep(since: before, steps: 4)
        #expect(perStep.map(\.name) == ["schedule", "prepare", "launch", "sample setup", "sample wait", "accept"])
        #expect(perStep.map(\.milliseconds) == [0, 100, 0, 0, 0, 50])
    }

    /// An inference copy of the model (stacked q/k/v and gate/up weights; norms, RoPE and the cache store
    /// through `Backend.rotateAndCache` on both paths) serves exactly what the model itself serves.
    @Test(arguments: ["qwen3", "qwen2", "llama"])
    func stackedInferenceCopyServesTheSameTokensAndLogprobs(model name: String) async throws {
        let model = try EngineFixtures.model(name)
        let copy = try model.clone(matrixDType: nil)
        let vocabulary = model.config.vocabularySize
        let prompts = [5, 12, 1].enumerated().map { EngineFixtures.prompt(length: $0.element, seed: UInt64($0.offset + 10), vocabulary: vocabulary) }
        var sampling = EngineFixtures.greedy(maxNewTokens: 8, n: 2)
        sampling.temperature = 0.8
        sampling.seed = 5
        let expected = try await run(model, deviceDecode: false, sampling: sampling, prompts: prompts)
        for deviceDecode in [false, true] {
            let actual = try await run(copy, deviceDecode: deviceDecode, sampling: sampling, prompts: prompts)
            #expect(actual.map { $0.map(\.outputTokens) } == expected.map { $0.map(\.outputTokens) }, "device decode \(deviceDecode)")
            #expect(actual.map { $0.map(\.outputLogprobs) } == expected.map { $0.map(\.outputLogprobs) }, "device decode \(deviceDecode)")
        }
    }

    /// The definition of `TokenSampling` on a small row: greedy takes the first maximum with its T = 1
    /// log-prob; top-k 1 takes a maximum; the uniform picks from the truncated set only.
    @Test func tokenSamplingDefinition() {
        let row: [Float] = [1, 3, 3, -2, 0.5, 2.9]
        row.withUnsafeBufferPointer { buffer in
            let greedy = TokenSampling(temperature: 0).reference(buffer.baseAddress!, count: row.count)
            #expect(greedy.token == 1)
            let logSumExp = SoftmaxStatistics.compute(buffer.baseAddress!, count: row.count, temperature: 1).logSumExp
            #expect(greedy.logprob == 3 - logSumExp)
            for uniform in [0.0, 0.3, 0.99] {
                // Ties at the k-th value are all kept: top-k 1 keeps both 3s.
                #expect([1, 2].contains(TokenSampling(temperature: 2, topK: 1, uniform: uniform).reference(buffer.baseAddress!, count: row.count).token))
                let top3 = TokenSampling(temperature: 1, topK: 3, uniform: uniform).reference(buffer.baseAddress!, count: row.count).token
                #expect([1, 2, 5].contains(top3))
                let nucleus = TokenSampling(temperature: 1, topP: 0.5, uniform: uniform).reference(buffer.baseAddress!, count: row.count).token
                #expect([1, 2].contains(nucleus))
            }
        }
    }
}
