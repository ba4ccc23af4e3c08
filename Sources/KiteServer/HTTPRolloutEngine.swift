import AsyncHTTPClient
import KiteEngine
import KiteModels
import KiteRL
import KiteTrain
import Logging
import NIOCore

/// Rollout against engines behind HTTP (`kite serve`, `kite router`, or SGLang servers): slime's
/// disaggregated mode. Requests go to the least-loaded healthy engine with prefix affinity (a `WorkerPool`),
/// and to another one when an engine dies mid-request.
///
/// Weight sync is `/update_weights_from_disk` on every engine: the trainer writes its weights as a Hugging
/// Face directory under `weightDirectory` (which the engines must see at the same path: one machine or a
/// shared file system), every engine loads it, and only then is the previous version's directory removed.
public final class HTTPRolloutEngine: RolloutEngine {
    public let pool: WorkerPool
    public let weightDirectory: String
    /// Hidden layers and experts per token of the served model: how SGLang's flat `routed_experts` reshapes.
    public let routedExpertsShape: (layers: Int, topK: Int)?
    private let log: @Sendable (String) -> Void

    /// - Parameters:
    ///   - urls: engine or router base URLs (`http://host:port`).
    ///   - weightDirectory: where weight syncs are written for the engines to read.
    ///   - routedExpertsShape: for requests with `returnRoutedExperts`, the model's hidden layers and experts per token.
    public init(
        urls: [String], apiKey: String? = nil, weightDirectory: String, routedExpertsShape: (layers: Int, topK: Int)? = nil,
        httpClient: HTTPClient = .shared, log: @escaping @Sendable (String) -> Void = { _ in }
    ) throws(RLError) {
        self.routedExpertsShape = routedExpertsShape
        guard !urls.isEmpty else { throw .invalidOption(name: "--rollout-engine-url", message: "needs at least one URL") }
        for url in urls where !(url.hasPrefix("http://") || url.hasPrefix("https://")) {
            throw .invalidOption(name: "--rollout-engine-url", message: "'\(url)' is not an http:// or https:// URL")
        }
        var options = WorkerPool.Options()
        options.workerAPIKey = apiKey
        pool = WorkerPool(urls: urls, options: options, httpClient: httpClient)
        self.weightDirectory = weightDirectory
        self.log = log
    }

    /// Fails with the engines' addresses unless every one answers `/health` within `timeout` seconds.
    public func waitUntilHealthy(timeout: Double) async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while true {
            let left = max(0.05, Double((deadline - ContinuousClock.now).components.seconds) + Double((deadline - ContinuousClock.now).components.attoseconds) * 1e-18)
            let probe = TimeAmount.milliseconds(Int64(min(5, left) * 1000))
            var down: [WorkerPool.WorkerStatus] = []
            for worker in pool.workers where !(await pool.client(for: worker).health(timeout: probe)) { down.append(worker) }
            if down.isEmpty { return }
            if ContinuousClock.now >= deadline {
                throw RLError.invalidOption(name: "--rollout-engine-url", message: "no answer from \(down.map(\.url).joined(separator: ", ")) within \(Int(timeout)) s")
            }
            try await Task.sleep(for: .milliseconds(250))
        }
    }

    public func generate(_ request: GenerationRequest) async throws -> [GenerationResult] {
        let sampling = request.sampling
        var parameters = SamplingParamsBody(
            maxNewTokens: sampling.maxNewTokens, temperature: sampling.temperature, topP: sampling.topP, topK: sampling.topK,
            stop: sampling.stop.isEmpty ? nil : sampling.stop, stopTokenIDs: sampling.stopTokenIDs.isEmpty ? nil : sampling.stopTokenIDs.map(Int.init),
            ignoreEOS: sampling.ignoreEOS, n: sampling.n, seed: sampling.seed.map { Int(Int64(bitPattern: $0)) })
        parameters.minP = sampling.minP
        parameters.skipSpecialTokens = sampling.skipSpecialTokens
        let body = GenerateRequestBody(
            inputIDs: request.promptTokens.map(Int.init), samplingParams: parameters, rid: request.id, returnLogprob: true,
            topLogprobsNum: request.topLogprobs > 0 ? request.topLogprobs : nil, stream: false,
            returnRoutedExperts: request.returnRoutedExperts ? true : nil)
        let shape = request.returnRoutedExperts ? routedExpertsShape : nil
        if request.returnRoutedExperts && shape == nil {
            throw RLError.invalidOption(name: "--use-rollout-routing-replay", message: "the HTTP rollout engine was not told the model's layers and top-k")
        }
        let answers = try await pool.generate(body)
        guard answers.count == sampling.n else {
            throw SGLangClientError.malformed("request \(request.id) asked for \(sampling.n) samples; the engine answered \(answers.count)")
        }
        return try answers.enumerated().map { index, answer in try Self.result(answer, requestID: request.id, sampleIndex: index, routedExpertsShape: shape) }
    }

    /// One engine answer as the in-process engine would have returned it; a missing or inconsistent field is
    /// an error naming it (a sample without its log-probs cannot be trained on).
    /// With `routedExpertsShape`, `meta_info.routed_experts` must be there and hold one row per token but the last.
    static func result(_ answer: GenerateResponseBody, requestID: String, sampleIndex: Int, routedExpertsShape: (layers: Int, topK: Int)? = nil) throws -> GenerationResult {
        let meta = answer.metaInfo
        var tokens: [Int32] = []
        tokens.reserveCapacity(answer.outputIDs.count)
        for id in answer.outputIDs {
            guard let narrow = Int32(exactly: id), narrow >= 0 else { throw SGLangClientError.malformed("output_ids of \(requestID) holds \(id)") }
            tokens.append(narrow)
        }
        guard let entries = meta.outputTokenLogprobs else {
            throw SGLangClientError.malformed("meta_info.output_token_logprobs is missing from the answer to \(requestID)")
        }
        guard entries.count == tokens.count, zip(entries, tokens).allSatisfy({ $0.tokenID == Int($1) }) else {
            throw SGLangClientError.malformed("meta_info.output_token_logprobs of \(requestID) does not match output_ids (\(entries.count) entries for \(tokens.count) tokens)")
        }
        let top = (meta.outputTopLogprobs ?? []).map { position in
            position.compactMap { entry in Int32(exactly: entry.tokenID).map { TokenLogprob(token: $0, logprob: entry.logprob) } }
        }
        var routed: RoutedExperts?
        if let shape = routedExpertsShape {
            guard let text = meta.routedExperts else {
                throw SGLangClientError.malformed("meta_info.routed_experts is missing from the answer to \(requestID) (is the engine started with --enable-return-routed-experts?)")
            }
            guard let values = RoutedExpertsEncoding.decode(text) else {
                throw SGLangClientError.malformed("meta_info.routed_experts of \(requestID) is not base64 of i32 values")
            }
            let rows = meta.promptTokens + tokens.count - 1
            guard values.count == rows * shape.layers * shape.topK else {
                throw SGLangClientError.malformed("meta_info.routed_experts of \(requestID) holds \(values.count) values; expected [\(rows), \(shape.layers), \(shape.topK)]")
            }
            routed = try RoutedExperts(tokenCount: rows, layerCount: shape.layers, topK: shape.topK, values: values)
        }
        return GenerationResult(
            requestID: requestID, sampleIndex: sampleIndex, outputTokens: tokens, outputLogprobs: entries.map(\.logprob), topLogprobs: top,
            text: answer.text, finishReason: try finishReason(meta.finishReason, requestID: requestID), promptTokenCount: meta.promptTokens,
            cachedTokenCount: meta.cachedTokens, weightVersion: meta.weightVersion, routedExperts: routed)
    }

    static func finishReason(_ body: FinishReasonBody?, requestID: String) throws -> FinishReason {
        guard let body else { throw SGLangClientError.malformed("meta_info.finish_reason is missing from the answer to \(requestID)") }
        switch body.type {
        case "stop":
            if let token = body.matchedToken, let narrow = Int32(exactly: token) { return .stopToken(narrow) }
            return .stopString(body.matchedText ?? "")
        case "length": return .length(body.length ?? 0)
        case "abort": return .abort(body.message ?? "aborted")
        default: throw SGLangClientError.malformed("meta_info.finish_reason.type of \(requestID) is '\(body.type)'; expected stop, length or abort")
        }
    }

    /// Aborts the request on every engine (only the one running it has it; the others answer at once).
    public func abort(requestID: String) async {
        await withTaskGroup(of: Void.self) { group in
            for worker in pool.workers where worker.healthy {
                let client = pool.client(for: worker)
                group.addTask { try? await client.abort(rid: requestID) }
            }
        }
    }

    /// Engines on their own devices keep their memory while the trainer runs: nothing to release.
    public func releaseMemory() async throws {}
    public func resumeMemory() async throws {}

    /// Writes the weights to `weightDirectory/weights_v<version>`, has every engine load them, then removes
    /// the directory of the version before. An engine that fails to load fails the sync, naming it.
    public func updateWeights(from model: any CausalLanguageModel, version: String) async throws {
        let directory = weightDirectory + "/weights_v" + version
        let staging = directory + ".partial"
        try FileText.makeDirectory(weightDirectory)
        if FileText.exists(staging) { try FileText.removeTree(staging) }
        try TrainingCheckpoint.exportHuggingFace(model: model, to: staging)
        if FileText.exists(directory) { try FileText.removeTree(directory) }
        try FileText.move(staging, to: directory)

        let workers = pool.workers
        let failures = await withTaskGroup(of: String?.self) { group in
            for worker in workers {
                let client = pool.client(for: worker)
                group.addTask {
                    do {
                        let loaded = try await client.updateWeightsFromDisk(modelPath: directory, weightVersion: version)
                        if let loaded, loaded != version { return "\(worker.url) reports version \(loaded) after loading version \(version)" }
                        return nil
                    } catch {
                        return "\(worker.url): \(error)"
                    }
                }
            }
            var failures: [String] = []
            for await failure in group { if let failure { failures.append(failure) } }
            return failures
        }
        guard failures.isEmpty else {
            throw RLError.invalidOption(name: "--rollout-engine-url", message: "weight sync to version \(version) failed: \(failures.joined(separator: "; "))")
        }
        // The engines hold the new weights; the previous versions' files are no longer read.
        for name in try FileText.list(weightDirectory) where name.hasPrefix("weights_v") && name != "weights_v" + version {
            try? FileText.removeTree(weightDirectory + "/" + name)
        }
        log("weight sync: \(workers.count) engine(s) loaded version \(version) from \(directory)")
    }
}
