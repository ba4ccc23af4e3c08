import Testing
@testable import KiteEngine
import KiteModels
import KiteTensor

/// The overlap schedule (a decode step queued before the previous one's tokens are read, its input tokens
/// copied on the device) run on the CPU through the backend's reference `sampleTokensDeferred`: whatever the
/// batch does (stops, lengths, forks, a queue, preemption, aborts, a memory release), every request must get
/// exactly what the step-by-step schedule and the host path give it.
@Suite(.serialized)
struct OverlapScheduleTests {
    enum Path: CaseIterable {
        case host, stepByStep, overlapped
    }

    static func options(_ path: Path) -> EngineOptions {
        var options = EngineOptions()
        options.blockSize = 4
        options.chunkedPrefillSize = 32
        options.deviceDecode = path != .host
        options.disableOverlapSchedule = path == .stepByStep
        return options
    }

    static func serve(_ model: Transformer, _ options: EngineOptions, _ requests: [GenerationRequest]) async throws -> (results: [[GenerationResult]], statistics: EngineStatistics) {
        let engine = try InferenceEngine(model: model, options: options)
        defer { engine.shutdown() }
        let results = try await withThrowingTaskGroup(of: (Int, [GenerationResult]).self) { group in
            for (i, request) in requests.enumerated() { group.addTask { (i, try await engine.generate(request)) } }
            var collected = [[GenerationResult]](repeating: [], count: requests.count)
            for try await (i, result) in group { collected[i] = result }
            return collected
        }
        return (results, await engine.statistics())
    }

    static func expectSame(_ actual: [[GenerationResult]], _ expected: [[GenerationResult]], _ label: String) {
        for (i, (a, e)) in zip(actual, expected).enumerated() {
            #expect(a.map(\.outputTokens) == e.map(\.outputTokens), "\(label), request \(i)")
            #expect(a.map(\.outputLogprobs) == e.map(\.outputLogprobs), "\(label), request \(i)")
            #expect(a.map(\.finishReason) == e.map(\.finishReason), "\(label), request \(i)")
        }
    }

    /// Requests of different lengths, groups that fork, temperature sampling and a stop token that ends
    /// some samples early: the three paths agree in every token, log-prob and finish reason, and every
    /// block comes back.
    @Test func stopsLengthsAndForksMatchTheStepByStepSchedule() async throws {
        let model = try EngineFixtures.model("qwen3")
        let lengths = [3, 17, 9, 1, 26, 6]
        func requests(stop: [Int32]) -> [GenerationRequest] {
            lengths.enumerated().map { i, length in
                var sampling = EngineFixtures.greedy(maxNewTokens: 4 + 3 * i, n: i % 2 == 0 ? 2 : 1)
                sampling.temperature = 0.8
                sampling.seed = 90 + UInt64(i)
                sampling.stopTokenIDs = stop
                return GenerationRequest(id: "o\(i)", promptTokens: EngineFixtures.prompt(length: length, seed: UInt64(i) + 50, vocabulary: 72), sampling: sampling)
            }
        }
        // A stop token that some sample meets before its length: the second token of the longest request.
        let free = try await Self.serve(model, Self.options(.host), requests(stop: [])).results
        let stop = [free[5][0].outputTokens[1]]
        let expected = try await Self.serve(model, Self.options(.host), requests(stop: stop)).results
        #expect(expected.joined().contains { if case .stopToken = $0.finishReason { true } else { false } }, "the stop token must end a sample")
        for path in [Path.stepByStep, .overlapped] {
            let (results, statistics) = try await Self.serve(model, Self.options(path), requests(stop: stop))
            Self.expectSame(results, expected, "\(path)")
            #expect(statistics.freeBlocks + statistics.cachedBlocks == statistics.totalBlocks, "\(path)")
            #expect(statistics.decodeSteps > 0, "\(path)")
            if path == .stepByStep { #expect(statistics.overlapDiscardedRows == 0) }
        }
    }

    /// One request that stops on its fourth token: under the overlap schedule the step after it was already
    /// queued, so exactly one row is computed and discarded; the tokens are those of the step-by-step schedule.
    @Test func aStopTokenCostsOneDiscardedRow() async throws {
        let model = try EngineFixtures.model("qwen3")
        let prompt = EngineFixtures.prompt(length: 7, seed: 8, vocabulary: 72)
        let free = try await Self.serve(model, Self.options(.stepByStep), [GenerationRequest(id: "free", promptTokens: prompt, sampling: EngineFixtures.greedy(maxNewTokens: 12))]).results[0][0]
        var sampling = EngineFixtures.greedy(maxNewTokens: 12)
        let stop = free.outputTokens[3]
        sampling.stopTokenIDs = [stop]
        let cut = try #require(free.outputTokens.firstIndex(of: stop))
        for path in [Path.stepByStep, .overlapped] {
            let (results, statistics) = try await Self.serve(model, Self.options(path), [GenerationRequest(id: "stop", promptTokens: prompt, sampling: sampling)])
            #expect(results[0][0].outputTokens == Array(free.outputTokens[...cut]), "\(path)")
            #expect(results[0][0].finishReason == .stopToken(stop), "\(path)")
            #expect(statistics.overlapDiscardedRows == (path == .overlapped && cut > 0 ? 1 : 0), "\(path)")
            // Ending by length is known ahead: no row is discarded for it.
            let (_, lengthOnly) = try await Self.serve(model, Self.options(path), [GenerationRequest(id: "len", promptTokens: prompt, sampling: EngineFixtures.greedy(maxNewTokens: 12))])
            #expect(lengthOnly.overlapDiscardedRows == 0, "\(path)")
            #expect(lengthOnly.generatedTokens == 12, "\(path)")
        }
    }

    /// More requests than may run at once and a cache too small for them: sequences queue, are preempted and
    /// recomputed; the greedy outputs equal the full-recompute reference.
    @Test func aQueueAndPreemptionServeTheReferenceTokens() async throws {
        let model = try EngineFixtures.model("llama")
        var options = Self.options(.overlapped)
        options.maxTotalTokens = 64
        options.maxRunningRequests = 4
        options.disableRadixCache = true
        let prompts = (0..<6).map { EngineFixtures.prompt(length: 10 + $0, seed: 40 + UInt64($0), vocabulary: 96) }
        let (results, statistics) = try await Self.serve(model, options, prompts.enumerated().map {
            GenerationRequest(id: "q\($0.offset)", promptTokens: $0.element, sampling: EngineFixtures.greedy(maxNewTokens: 30))
        })
        for (i, prompt) in prompts.enumerated() {
            #expect(results[i].first?.outputTokens == (try EngineFixtures.referenceGreedy(model, prompt: prompt, count: 30)), "request \(i)")
        }
        #expect(statistics.preemptions > 0, "the test must actually preempt")
        #expect(statistics.freeBlocks == statistics.totalBlocks)
    }

    /// Driving the engine's core step by step: a memory release and an abort that come while a decode step
    /// is in flight. The aborted request ends with `abort` after a prefix of its tokens; the others finish
    /// with the reference tokens, and every block comes back.
    @Test func abortAndMemoryReleaseWhileAStepIsInFlight() async throws {
        let model = try EngineFixtures.model("qwen3")
        let prompts = (0..<3).map { EngineFixtures.prompt(length: 5 + 4 * $0, seed: 70 + UInt64($0), vocabulary: 72) }
        let expected = try prompts.map { try EngineFixtures.referenceGreedy(model, prompt: $0, count: 24) }
        var options = Self.options(.overlapped)
        options.disableRadixCache = true
        let core = try EngineCore(model: model, tokenizer: nil, options: options)
        var streams: [AsyncThrowingStream<GenerationEvent, any Error>] = []
        for (i, prompt) in prompts.enumerated() {
            let (stream, continuation) = AsyncThrowingStream<GenerationEvent, any Error>.makeStream()
            core.admit(RequestState(request: GenerationRequest(id: "s\(i)", promptTokens: prompt, sampling: EngineFixtures.greedy(maxNewTokens: 24)), continuation: continuation))
            streams.append(stream)
        }
        for _ in 0..<4 { _ = try core.step() }
        #expect(core.hasStepInFlight)
        core.releaseMemory()
        #expect(!core.hasStepInFlight, "releasing memory accepts the step in flight first")
        try core.resumeMemory()
        for _ in 0..<4 { _ = try core.step() }
        #expect(core.hasStepInFlight)
        #expect(core.abort(requestID: "s0"))
        var steps = 0
        while try core.step() {
            steps += 1
            try #require(steps < 200, "the engine must go idle")
        }
        var finished: [GenerationResult] = []
        for stream in streams {
            // Every request has finished, so every stream holds all its events and then ends.
            for try await event in stream {
                if case .finished(let result) = event { finished.append(result) }
            }
        }
        try #require(finished.count == 3)
        #expect({ if case .abort = finished[0].finishReason { true } else { false } }())
        #expect(!finished[0].outputTokens.isEmpty && finished[0].outputTokens.count < 24)
        #expect(Array(expected[0].prefix(finished[0].outputTokens.count)) == finished[0].outputTokens)
        for i in 1..<prompts.count { #expect(finished[i].outputTokens == expected[i], "request \(i)") }
        let statistics = core.statistics
        #expect(statistics.freeBlocks == statistics.totalBlocks && statistics.runningSequences == 0)
        #expect(statistics.preemptions == 3, "the memory release preempts the three running sequences")
    }
}
