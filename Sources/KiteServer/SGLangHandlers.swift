import FoundationEssentials
import HTTPTypes
import Hummingbird
import KiteEngine
import NIOCore

/// SGLang's native endpoints: each reads its body, calls the engine, and writes SGLang's answer.
struct SGLangHandlers: Sendable {
    let frontend: EngineFrontend

    var configuration: ServerConfiguration { frontend.configuration }

    // MARK: /generate

    func generate(_ request: Request, context: KiteRequestContext) async throws -> Response {
        let body = try await readBody(request)
        let decoded = try JSONBody.decode(GenerateRequestBody.self, from: body)
        let (prompts, isBatch) = try prepare(decoded)
        let run = try GenerationRun(frontend: frontend, prompts: prompts)
        let single = !isBatch && prompts.count == 1 && prompts[0].request.sampling.n == 1
        await run.abortWhenClientLeaves(context.channel)
        if decoded.stream == true {
            return streamingResponse(run, indexed: !single)
        }
        defer { run.finish() }
        let results = try await run.collect()
        let latency = run.secondsSinceStart
        var answers: [GenerateResponseBody] = []
        for (prompt, samples) in zip(prompts, results) {
            for result in samples { answers.append(answer(prompt, progress: nil, result: result, latency: latency)) }
        }
        if single, let only = answers.first { return jsonResponse(only) }
        return jsonResponse(answers)
    }

    /// Prompts of a request as engine requests; every inconsistency is a 400 naming the field.
    func prepare(_ body: GenerateRequestBody) throws(APIError) -> ([PreparedPrompt], Bool) {
        let tokenLists: [[Int32]]
        let isBatch: Bool
        switch (body.text, body.inputIDs) {
        case (.some, .some):
            throw .badRequest("give either 'text' or 'input_ids', not both", param: "text")
        case (nil, nil):
            throw .badRequest("missing the prompt: give 'text' or 'input_ids'", param: "input_ids")
        case (.some(let text), nil):
            guard let tokenizer = frontend.tokenizer else { throw APIError(EngineError.tokenizerRequired("a 'text' prompt")) }
            isBatch = text.isBatch
            var lists: [[Int32]] = []
            for (index, item) in text.values.enumerated() {
                do {
                    lists.append(try tokenizer.encode(item))
                } catch {
                    throw .badRequest("cannot tokenize 'text\(isBatch ? "[\(index)]" : "")': \(error)", param: "text")
                }
            }
            tokenLists = lists
        case (nil, .some(let ids)):
            isBatch = ids.isBatch
            var lists: [[Int32]] = []
            for (index, list) in ids.values.enumerated() {
                lists.append(try SamplingParamsBody.tokenIDs(list, field: isBatch ? "input_ids[\(index)]" : "input_ids"))
            }
            tokenLists = lists
        }
        let count = tokenLists.count
        guard count >= 1 else { throw .badRequest("the batch is empty", param: isBatch && body.text != nil ? "text" : "input_ids") }
        guard count <= configuration.maxBatchSize else {
            throw .badRequest("the batch has \(count) prompts; at most \(configuration.maxBatchSize) are accepted", param: "input_ids")
        }
        try checkBatchLength(body.samplingParams, "sampling_params", count: count)
        try checkBatchLength(body.rid, "rid", count: count)
        try checkBatchLength(body.returnLogprob, "return_logprob", count: count)
        try checkBatchLength(body.topLogprobsNum, "top_logprobs_num", count: count)
        try checkBatchLength(body.logprobStartLen, "logprob_start_len", count: count)
        try checkBatchLength(body.returnRoutedExperts, "return_routed_experts", count: count)
        if isBatch, case .one = body.rid { throw .badRequest("'rid' must be a list for a batch", param: "rid") }
        if let starts = body.logprobStartLen?.values, starts.contains(where: { $0 >= 0 }) {
            throw .badRequest("prompt log-probs ('logprob_start_len' >= 0) are not supported by this server", param: "logprob_start_len")
        }

        var prompts: [PreparedPrompt] = []
        for index in 0..<count {
            let parameters = body.samplingParams?.value(at: index) ?? SamplingParamsBody()
            let sampling = try parameters.engineParameters()
            var options = PromptOptions()
            options.returnLogprob = body.returnLogprob?.value(at: index) ?? false
            options.topLogprobs = body.topLogprobsNum?.value(at: index) ?? 0
            options.noStopTrim = parameters.noStopTrim ?? false
            options.returnTextInLogprobs = body.returnTextInLogprobs ?? false
            guard options.topLogprobs >= 0 else { throw .badRequest("invalid 'top_logprobs_num': must be >= 0", param: "top_logprobs_num") }
            let id = body.rid?.value(at: index) ?? EngineFrontend.newRequestID()
            let request = GenerationRequest(
                id: id, promptTokens: tokenLists[index], sampling: sampling,
                returnLogprob: options.returnLogprob, topLogprobs: options.returnLogprob ? options.topLogprobs : 0,
                returnRoutedExperts: body.returnRoutedExperts?.value(at: index) ?? false)
            prompts.append(PreparedPrompt(request: request, options: options))
        }
        return (prompts, isBatch)
    }

    private func checkBatchLength<T>(_ value: OneOrMany<T>?, _ field: String, count: Int) throws(APIError) {
        if case .many(let values) = value, values.count != count {
            throw .badRequest("'\(field)' has \(values.count) entries for \(count) prompts", param: field)
        }
    }

    /// SGLang's answer for one sample: the finished result, or the progress so far while streaming.
    func answer(_ prompt: PreparedPrompt, progress: SampleProgress?, result: GenerationResult?, latency: Double?, index: Int? = nil) -> GenerateResponseBody {
        let options = prompt.options
        let incremental = configuration.incrementalStreamingOutput && progress != nil
        var tokens: ArraySlice<Int32>
        var logprobs: ArraySlice<Float>
        var text: String
        if let result {
            tokens = result.outputTokens[...]
            logprobs = result.outputLogprobs[...]
            text = frontend.reportedText(result, options: options, skipSpecialTokens: prompt.request.sampling.skipSpecialTokens)
        } else {
            tokens = progress?.tokens[...] ?? []
            logprobs = progress?.logprobs[...] ?? []
            text = progress?.text ?? ""
        }
        let completionTokens = tokens.count
        if incremental, let progress {
            tokens = tokens.dropFirst(progress.sentTokens)
            logprobs = logprobs.dropFirst(progress.sentTokens)
            text = String(text.dropFirst(progress.sentText))
        }
        var meta = GenerateResponseBody.MetaInfo(
            id: prompt.request.id, finishReason: result.map { FinishReasonBody($0.finishReason) },
            promptTokens: prompt.request.promptTokens.count, completionTokens: completionTokens,
            cachedTokens: result?.cachedTokenCount ?? 0, weightVersion: result?.weightVersion ?? "",
            e2eLatency: result == nil ? nil : latency)
        if options.returnLogprob {
            meta.outputTokenLogprobs = frontend.logprobEntries(tokens: tokens, logprobs: logprobs, withText: options.returnTextInLogprobs)
            meta.inputTokenLogprobs = []
            if options.topLogprobs > 0, let result {
                meta.outputTopLogprobs = result.topLogprobs.map { alternatives in
                    alternatives.map { TokenLogprobEntry(logprob: $0.logprob, tokenID: Int($0.token), text: options.returnTextInLogprobs ? frontend.tokenText($0.token) : nil) }
                }
            }
        }
        meta.routedExperts = result?.routedExperts.map { RoutedExpertsEncoding.encode($0.values) }
        return GenerateResponseBody(text: text, outputIDs: tokens.map(Int.init), metaInfo: meta, index: index)
    }

    /// One SSE chunk per new token of any sample, each sample's last chunk with its finish reason.
    func streamingResponse(_ run: GenerationRun, indexed: Bool) -> Response {
        let handlers = self
        let body = ResponseBody { writer in
            defer { run.finish() }
            var progress = run.prompts.map { [SampleProgress](repeating: SampleProgress(), count: $0.request.sampling.n) }
            let weightVersion = await handlers.frontend.engine.statistics().weightVersion
            do {
                let queue = run.eventBatches()
                while let batch = await queue.next() {
                    // Absorb the whole batch, then one chunk per sample that changed: its latest state.
                    var touched: [(Int, Int)] = []
                    var failures: [APIError] = []
                    for event in batch {
                        switch event {
                        case .event(let prompt, let event):
                            let sample: Int
                            switch event {
                            case .tokens(let index, _, _, _): sample = index
                            case .finished(let result): sample = result.sampleIndex
                            }
                            guard sample < progress[prompt].count else { continue }
                            progress[prompt][sample].absorb(event)
                            if !touched.contains(where: { $0 == (prompt, sample) }) { touched.append((prompt, sample)) }
                        case .failed(_, let error):
                            run.abort()
                            failures.append((error as? EngineError).map(APIError.init) ?? APIError(status: .internalServerError, message: "\(error)"))
                        }
                    }
                    var buffers: [ByteBuffer] = []
                    for (prompt, sample) in touched {
                        let state = progress[prompt][sample]
                        var chunk = handlers.answer(
                            run.prompts[prompt], progress: state, result: state.result, latency: run.secondsSinceStart,
                            index: indexed ? prompt * run.prompts[prompt].request.sampling.n + sample : nil)
                        if state.result == nil { chunk.metaInfo.weightVersion = weightVersion }
                        progress[prompt][sample].sentTokens = state.tokens.count
                        progress[prompt][sample].sentText = state.text.count
                        buffers.append(ServerSentEvents.event(chunk))
                    }
                    buffers += failures.map { ServerSentEvents.event($0.body) }
                    try await writer.write(contentsOf: buffers)
                }
                try await writer.write(ServerSentEvents.done)
                try await writer.finish(nil)
            } catch {
                // The client went away: nothing more to send, and nothing left to compute for it.
                run.abort()
                throw error
            }
        }
        return Response(status: .ok, headers: Self.eventStreamHeaders, body: body)
    }

    static let eventStreamHeaders: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]

    // MARK: Health and information

    func health(_ request: Request, context: KiteRequestContext) async throws -> Response {
        guard !frontend.isDraining else { throw APIError.unavailable("the server is shutting down") }
        return Response(status: .ok)
    }

    /// Generates one token; 200 when the engine answers in time.
    func healthGenerate(_ request: Request, context: KiteRequestContext) async throws -> Response {
        var sampling = SamplingParameters()
        sampling.maxNewTokens = 1
        sampling.temperature = 0
        let prompt = PreparedPrompt(request: GenerationRequest(id: "HEALTH_CHECK_" + EngineFrontend.newRequestID(), promptTokens: [0], sampling: sampling))
        let run = try GenerationRun(frontend: frontend, prompts: [prompt])
        defer { run.finish() }
        let timeout = configuration.healthGenerateTimeout
        let healthy = await withTaskGroup(of: Bool.self) { group in
            group.addTask { (try? await run.collect()) != nil }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(Int(timeout * 1000)))
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            run.abort()
            return first
        }
        guard healthy else { throw APIError.unavailable("the engine did not generate a token within \(timeout) s") }
        return Response(status: .ok)
    }

    func modelInfo(_ request: Request, context: KiteRequestContext) async throws -> Response {
        let statistics = await frontend.engine.statistics()
        return jsonResponse(ModelInfoBody(
            modelPath: frontend.modelPath, tokenizerPath: configuration.tokenizerPath ?? (frontend.tokenizer == nil ? nil : frontend.modelPath),
            isGeneration: true, weightVersion: statistics.weightVersion, hasImageUnderstanding: false,
            vocabSize: frontend.engine.model.config.vocabularySize, contextLength: frontend.engine.contextLength))
    }

    func serverInfo(_ request: Request, context: KiteRequestContext) async throws -> Response {
        let statistics = await frontend.engine.statistics()
        let options = frontend.engine.options
        return jsonResponse(ServerInfoBody(
            modelPath: frontend.modelPath, servedModelName: configuration.modelName, host: configuration.host, port: frontend.port,
            contextLength: frontend.engine.contextLength, maxTotalTokens: statistics.totalBlocks * statistics.blockSize,
            maxRunningRequests: options.maxRunningRequests, maxQueuedRequests: options.maxQueuedRequests,
            chunkedPrefillSize: options.chunkedPrefillSize, pageSize: statistics.blockSize, disableRadixCache: options.disableRadixCache,
            weightVersion: statistics.weightVersion, version: KiteServerVersion.string,
            internalStates: [.init(
                numRunningReqs: statistics.runningSequences, numWaitingReqs: statistics.waitingSequences,
                totalBlocks: statistics.totalBlocks, freeBlocks: statistics.freeBlocks, cachedBlocks: statistics.cachedBlocks,
                peakUsedBlocks: statistics.peakUsedBlocks, memoryReleased: statistics.memoryReleased,
                generatedTokens: statistics.generatedTokens, prefilledTokens: statistics.prefilledTokens,
                cachedPromptTokens: statistics.cachedPromptTokens, preemptions: statistics.preemptions, steps: statistics.steps)]))
    }

    func loads(_ request: Request, context: KiteRequestContext) async throws -> Response {
        let statistics = await frontend.engine.statistics()
        let used = (statistics.totalBlocks - statistics.freeBlocks - statistics.cachedBlocks) * statistics.blockSize
        return jsonResponse(LoadsBody(loads: [.init(
            dpRank: 0, numRunningReqs: statistics.runningSequences, numWaitingReqs: statistics.waitingSequences,
            numTotalReqs: statistics.runningSequences + statistics.waitingSequences, numUsedTokens: max(0, used),
            maxTotalNumTokens: statistics.totalBlocks * statistics.blockSize)]))
    }

    // MARK: Control

    func flushCache(_ request: Request, context: KiteRequestContext) async throws -> Response {
        guard await frontend.engine.flushCache() else {
            throw APIError.badRequest("the cache was not flushed: requests are running or waiting")
        }
        return Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "Cache flushed.\n")))
    }

    func abortRequest(_ request: Request, context: KiteRequestContext) async throws -> Response {
        let body = try await readBody(request)
        let decoded = body.readableBytes == 0 ? AbortRequestBody() : try JSONBody.decode(AbortRequestBody.self, from: body)
        if decoded.abortAll == true {
            frontend.engine.abortAll()
        } else if let rid = decoded.rid, !rid.isEmpty {
            frontend.engine.abort(requestID: rid)
        } else {
            throw APIError.badRequest("give 'rid' or 'abort_all': true", param: "rid")
        }
        return Response(status: .ok)
    }

    func updateWeightsFromDisk(_ request: Request, context: KiteRequestContext) async throws -> Response {
        let decoded = try JSONBody.decode(UpdateWeightsFromDiskBody.self, from: try await readBody(request))
        if let format = decoded.loadFormat, !["auto", "safetensors"].contains(format) {
            throw APIError.badRequest("load_format '\(format)' is not supported; use 'auto'", param: "load_format")
        }
        if decoded.abortAllRequests == true { frontend.engine.abortAll() }
        let version = try await frontend.updateWeights(fromDisk: decoded.modelPath, version: decoded.weightVersion)
        return jsonResponse(SuccessBody(success: true, message: "Succeeded to update model weights.", weightVersion: version))
    }

    func releaseMemory(_ request: Request, context: KiteRequestContext) async throws -> Response {
        _ = try await optionalBody(MemoryOccupationBody.self, request)
        await frontend.engine.releaseMemory()
        return jsonResponse(SuccessBody(success: true, message: "Released the key/value cache."))
    }

    func resumeMemory(_ request: Request, context: KiteRequestContext) async throws -> Response {
        _ = try await optionalBody(MemoryOccupationBody.self, request)
        do {
            try await frontend.engine.resumeMemory()
        } catch {
            throw APIError(status: .internalServerError, message: "cannot allocate the key/value cache: \(error)")
        }
        return jsonResponse(SuccessBody(success: true, message: "Resumed the key/value cache."))
    }

    // MARK: Bodies

    func readBody(_ request: Request) async throws -> ByteBuffer {
        try await request.body.collect(upTo: configuration.maxRequestBodyBytes)
    }

    private func optionalBody<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T? {
        let body = try await readBody(request)
        return body.readableBytes == 0 ? nil : try JSONBody.decode(type, from: body)
    }
}

func jsonResponse<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
    Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: JSONBody.encode(value)))
}

enum KiteServerVersion {
    static let string = "kite-0.1.0"
}
