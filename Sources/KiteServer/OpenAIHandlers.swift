import FoundationEssentials
import Hummingbird
import KiteEngine
import KiteJSON
import NIOCore

/// OpenAI's completions and chat completions over the same engine runs as `/generate`.
struct OpenAIHandlers: Sendable {
    let frontend: EngineFrontend
    let native: SGLangHandlers

    var configuration: ServerConfiguration { frontend.configuration }

    static func now() -> Int { Int(Date().timeIntervalSince1970) }

    func models(_ request: Request, context: KiteRequestContext) async throws -> Response {
        jsonResponse(ModelListBody(data: [.init(
            id: configuration.modelName, created: Self.now(), root: frontend.modelPath, maxModelLen: frontend.engine.contextLength)]))
    }

    /// The longest output that fits after `promptLength` tokens, when the client names no limit.
    private func remainingContext(_ promptLength: Int) -> Int {
        max(0, frontend.engine.contextLength - promptLength)
    }

    // MARK: /v1/completions

    func completions(_ request: Request, context: KiteRequestContext) async throws -> Response {
        let body = try JSONBody.decode(CompletionRequestBody.self, from: try await native.readBody(request))
        var promptTokens: [[Int32]] = []
        var promptTexts: [String?] = []
        switch body.prompt {
        case .texts(let texts, _):
            guard let tokenizer = frontend.tokenizer else { throw APIError(EngineError.tokenizerRequired("a text prompt")) }
            for text in texts {
                do {
                    promptTokens.append(try tokenizer.encode(text))
                } catch {
                    throw APIError.badRequest("cannot tokenize the prompt: \(error)", param: "prompt")
                }
                promptTexts.append(text)
            }
        case .tokens(let lists, let batch):
            for (index, ids) in lists.enumerated() {
                promptTokens.append(try SamplingParamsBody.tokenIDs(ids, field: batch ? "prompt[\(index)]" : "prompt"))
                promptTexts.append(nil)
            }
        }
        guard !promptTokens.isEmpty else { throw APIError.badRequest("the prompt list is empty", param: "prompt") }
        guard promptTokens.count <= configuration.maxBatchSize else {
            throw APIError.badRequest("\(promptTokens.count) prompts; at most \(configuration.maxBatchSize) are accepted", param: "prompt")
        }
        let topLogprobs = body.logprobs ?? 0
        guard topLogprobs >= 0, topLogprobs <= 20 else { throw APIError.badRequest("invalid 'logprobs': must be in 0...20", param: "logprobs") }
        var prompts: [PreparedPrompt] = []
        for tokens in promptTokens {
            let sampling = try body.sampling.engineParameters(maxNewTokens: body.maxTokens ?? 16)
            var options = PromptOptions()
            options.returnLogprob = body.logprobs != nil
            options.topLogprobs = topLogprobs
            options.noStopTrim = body.sampling.noStopTrim ?? false
            prompts.append(PreparedPrompt(
                request: GenerationRequest(id: EngineFrontend.newRequestID(), promptTokens: tokens, sampling: sampling, returnLogprob: options.returnLogprob, topLogprobs: topLogprobs),
                options: options))
        }
        let run = try GenerationRun(frontend: frontend, prompts: prompts)
        await run.abortWhenClientLeaves(context.channel)
        let id = "cmpl-" + EngineFrontend.newRequestID()
        let created = Self.now()
        let model = body.model ?? configuration.modelName
        let echo = body.echo ?? false
        let echoes = zip(promptTexts, promptTokens).map { text, tokens in
            echo ? (text ?? frontend.tokenizer.flatMap { try? $0.decode(tokens, skipSpecialTokens: false) } ?? "") : ""
        }

        if body.stream == true {
            let includeUsage = body.streamOptions?.includeUsage ?? false
            return streaming(run) { prompt, sample, progress, delta, result in
                var text = delta.text
                if progress.sentTokens == 0 && progress.sentText == 0 { text = echoes[prompt] + text }
                let choice = CompletionChoice(
                    index: prompt * run.prompts[prompt].request.sampling.n + sample, text: text,
                    logprobs: run.prompts[prompt].options.returnLogprob ? completionLogprobs(delta.tokens, delta.logprobs, top: nil, count: topLogprobs, offset: progress.sentText) : nil,
                    finishReason: result.map { openAIFinishReason($0.finishReason) }, matchedStop: result.flatMap { MatchedStop($0.finishReason) })
                return ServerSentEvents.event(CompletionResponseBody(id: id, created: created, model: model, choices: [choice], usage: nil))
            } usage: { usage in
                includeUsage ? ServerSentEvents.event(CompletionResponseBody(id: id, created: created, model: model, choices: [], usage: usage)) : nil
            }
        }
        defer { run.finish() }
        let results = try await run.collect()
        var choices: [CompletionChoice] = []
        for (promptIndex, samples) in results.enumerated() {
            let prompt = run.prompts[promptIndex]
            for result in samples {
                let text = frontend.reportedText(result, options: prompt.options, skipSpecialTokens: prompt.request.sampling.skipSpecialTokens)
                choices.append(CompletionChoice(
                    index: promptIndex * prompt.request.sampling.n + result.sampleIndex, text: echoes[promptIndex] + text,
                    logprobs: prompt.options.returnLogprob ? completionLogprobs(result.outputTokens[...], result.outputLogprobs[...], top: result.topLogprobs, count: topLogprobs, offset: echoes[promptIndex].count) : nil,
                    finishReason: openAIFinishReason(result.finishReason), matchedStop: MatchedStop(result.finishReason)))
            }
        }
        return jsonResponse(CompletionResponseBody(id: id, created: created, model: model, choices: choices, usage: usage(run, results)))
    }

    private func completionLogprobs(_ tokens: ArraySlice<Int32>, _ logprobs: ArraySlice<Float>, top: [[TokenLogprob]]?, count: Int, offset: Int) -> CompletionLogprobs {
        var strings: [String] = []
        var offsets: [Int] = []
        var position = offset
        for token in tokens {
            let text = tokenString(token)
            strings.append(text)
            offsets.append(position)
            position += text.count
        }
        let alternatives: [[String: Float]]? = count > 0 ? top.map { rows in
            rows.map { row in Dictionary(row.prefix(count).map { (tokenString($0.token), finite($0.logprob)) }, uniquingKeysWith: { first, _ in first }) }
        } : nil
        return CompletionLogprobs(tokens: strings, tokenLogprobs: logprobs.map(finite), topLogprobs: alternatives, textOffset: offsets)
    }

    // MARK: /v1/chat/completions

    func chatCompletions(_ request: Request, context: KiteRequestContext) async throws -> Response {
        let bytes = try await native.readBody(request)
        let body = try JSONBody.decode(ChatCompletionRequestBody.self, from: bytes)
        guard !body.messages.isEmpty else { throw APIError.badRequest("'messages' is empty", param: "messages") }
        guard frontend.tokenizer != nil else { throw APIError(EngineError.tokenizerRequired("a chat completion")) }
        guard let renderer = frontend.chatRenderer else {
            throw APIError.badRequest("this model has no chat template; use /v1/completions or /generate")
        }
        let continueFinal = body.continueFinalMessage ?? false
        let text: String
        do {
            // The template sees the JSON as sent (key order and integers kept), which JSONDecoder does not keep.
            let document = try JSONValue(parsing: Array(bytes.readableBytesView), source: "request body")
            let messages = (document["messages"]?.arrayValue ?? []).map(ChatMessage.flattened)
            text = try renderer.render(
                messages: messages, tools: document["tools"]?.arrayValue, addGenerationPrompt: !continueFinal,
                arguments: document["chat_template_kwargs"]?.objectValue ?? JSONObject())
        } catch {
            throw APIError.badRequest("the chat template failed on these messages: \(error)", param: "messages")
        }
        let tokens: [Int32]
        do {
            tokens = try renderer.encode(rendered: text)
        } catch {
            throw APIError.badRequest("cannot tokenize the rendered conversation: \(error)", param: "messages")
        }
        let wantsLogprobs = body.logprobs ?? false
        let topLogprobs = wantsLogprobs ? (body.topLogprobs ?? 0) : 0
        guard topLogprobs >= 0, topLogprobs <= 20 else { throw APIError.badRequest("invalid 'top_logprobs': must be in 0...20", param: "top_logprobs") }
        let sampling = try body.sampling.engineParameters(maxNewTokens: body.maxTokens ?? remainingContext(tokens.count))
        var options = PromptOptions()
        options.returnLogprob = wantsLogprobs
        options.topLogprobs = topLogprobs
        options.noStopTrim = body.sampling.noStopTrim ?? false
        let prompt = PreparedPrompt(
            request: GenerationRequest(id: EngineFrontend.newRequestID(), promptTokens: tokens, sampling: sampling, returnLogprob: wantsLogprobs, topLogprobs: topLogprobs),
            options: options)
        let run = try GenerationRun(frontend: frontend, prompts: [prompt])
        await run.abortWhenClientLeaves(context.channel)
        let id = "chatcmpl-" + EngineFrontend.newRequestID()
        let created = Self.now()
        let model = body.model ?? configuration.modelName

        if body.stream == true {
            let includeUsage = body.streamOptions?.includeUsage ?? false
            return streaming(run, opening: { sample in
                ServerSentEvents.event(ChatCompletionResponseBody(
                    id: id, object: "chat.completion.chunk", created: created, model: model,
                    choices: [ChatChoice(index: sample, message: ChatMessageBody(role: "assistant", content: ""), isDelta: true)]))
            }) { _, sample, _, delta, result in
                let choice = ChatChoice(
                    index: sample, message: ChatMessageBody(content: delta.text), isDelta: true,
                    logprobs: wantsLogprobs ? chatLogprobs(delta.tokens, delta.logprobs, top: nil) : nil,
                    finishReason: result.map { openAIFinishReason($0.finishReason) }, matchedStop: result.flatMap { MatchedStop($0.finishReason) })
                return ServerSentEvents.event(ChatCompletionResponseBody(id: id, object: "chat.completion.chunk", created: created, model: model, choices: [choice]))
            } usage: { usage in
                includeUsage ? ServerSentEvents.event(ChatCompletionResponseBody(id: id, object: "chat.completion.chunk", created: created, model: model, choices: [], usage: usage)) : nil
            }
        }
        defer { run.finish() }
        let results = try await run.collect()
        let choices = (results.first ?? []).map { result in
            ChatChoice(
                index: result.sampleIndex,
                message: ChatMessageBody(role: "assistant", content: frontend.reportedText(result, options: options, skipSpecialTokens: sampling.skipSpecialTokens)),
                isDelta: false,
                logprobs: wantsLogprobs ? chatLogprobs(result.outputTokens[...], result.outputLogprobs[...], top: topLogprobs > 0 ? result.topLogprobs : nil) : nil,
                finishReason: openAIFinishReason(result.finishReason), matchedStop: MatchedStop(result.finishReason))
        }
        return jsonResponse(ChatCompletionResponseBody(id: id, object: "chat.completion", created: created, model: model, choices: choices, usage: usage(run, results)))
    }

    private func chatLogprobs(_ tokens: ArraySlice<Int32>, _ logprobs: ArraySlice<Float>, top: [[TokenLogprob]]?) -> ChatLogprobs {
        var content: [ChatTokenLogprob] = []
        for (position, (token, logprob)) in zip(tokens, logprobs).enumerated() {
            let text = tokenString(token)
            let alternatives = (top.map { position < $0.count ? $0[position] : [] } ?? []).map {
                let string = tokenString($0.token)
                return ChatTopLogprob(token: string, logprob: finite($0.logprob), bytes: Array(string.utf8))
            }
            content.append(ChatTokenLogprob(token: text, logprob: finite(logprob), bytes: Array(text.utf8), topLogprobs: alternatives))
        }
        return ChatLogprobs(content: content)
    }

    // MARK: Shared

    private func tokenString(_ token: Int32) -> String {
        frontend.tokenText(token) ?? "token_id:\(token)"
    }

    private func finite(_ value: Float) -> Float { value.isFinite ? value : -.greatestFiniteMagnitude }

    private func usage(_ run: GenerationRun, _ results: [[GenerationResult]]) -> UsageBody {
        let prompt = run.prompts.reduce(0) { $0 + $1.request.promptTokens.count }
        let completion = results.joined().reduce(0) { $0 + $1.outputTokens.count }
        return UsageBody(promptTokens: prompt, completionTokens: completion, totalTokens: prompt + completion)
    }

    /// What one streamed chunk adds.
    struct Delta {
        var tokens: ArraySlice<Int32>
        var logprobs: ArraySlice<Float>
        var text: String
    }

    /// An SSE response with a chunk per new token of any choice: `opening` (per choice) first, the final chunk
    /// of a choice carries its finish reason, then the usage chunk if asked for, then `[DONE]`.
    private func streaming(
        _ run: GenerationRun,
        opening: (@Sendable (Int) -> ByteBuffer)? = nil,
        chunk: @escaping @Sendable (_ prompt: Int, _ sample: Int, _ progress: SampleProgress, _ delta: Delta, _ result: GenerationResult?) -> ByteBuffer,
        usage: @escaping @Sendable (UsageBody) -> ByteBuffer?
    ) -> Response {
        let frontend = self.frontend
        let body = ResponseBody { writer in
            defer { run.finish() }
            var progress = run.prompts.map { [SampleProgress](repeating: SampleProgress(), count: $0.request.sampling.n) }
            do {
                if let opening {
                    for sample in 0..<(run.prompts.first?.request.sampling.n ?? 1) { try await writer.write(opening(sample)) }
                }
                let queue = run.eventBatches()
                while let batch = await queue.next() {
                    // Absorb the whole batch, then one chunk per choice that changed, with all it added.
                    var before: [[SampleProgress?]] = progress.map { $0.map { _ in nil } }
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
                            if before[prompt][sample] == nil {
                                before[prompt][sample] = progress[prompt][sample]
                                touched.append((prompt, sample))
                            }
                            progress[prompt][sample].absorb(event)
                        case .failed(_, let error):
                            run.abort()
                            failures.append((error as? EngineError).map(APIError.init) ?? APIError(status: .internalServerError, message: "\(error)"))
                        }
                    }
                    var buffers: [ByteBuffer] = []
                    for (prompt, sample) in touched {
                        guard let previous = before[prompt][sample] else { continue }
                        var state = progress[prompt][sample]
                        if let result = state.result {
                            state.text = frontend.reportedText(result, options: run.prompts[prompt].options, skipSpecialTokens: run.prompts[prompt].request.sampling.skipSpecialTokens)
                        }
                        let delta = Delta(
                            tokens: state.tokens.dropFirst(previous.sentTokens), logprobs: state.logprobs.dropFirst(previous.sentTokens),
                            text: String(state.text.dropFirst(previous.sentText)))
                        buffers.append(chunk(prompt, sample, previous, delta, state.result))
                        progress[prompt][sample].sentTokens = state.tokens.count
                        progress[prompt][sample].sentText = max(previous.sentText, state.text.count)
                    }
                    buffers += failures.map { ServerSentEvents.event($0.body) }
                    try await writer.write(contentsOf: buffers)
                }
                let prompt = run.prompts.reduce(0) { $0 + $1.request.promptTokens.count }
                let completion = progress.joined().reduce(0) { $0 + $1.tokens.count }
                if let buffer = usage(UsageBody(promptTokens: prompt, completionTokens: completion, totalTokens: prompt + completion)) {
                    try await writer.write(buffer)
                }
                try await writer.write(ServerSentEvents.done)
                try await writer.finish(nil)
            } catch {
                run.abort()
                throw error
            }
        }
        return Response(status: .ok, headers: SGLangHandlers.eventStreamHeaders, body: body)
    }
}
