import KiteEngine
import NIOCore
import Synchronization

/// What a client asked of one prompt beyond the engine's request: how to report it.
struct PromptOptions: Sendable {
    var returnLogprob = false
    var topLogprobs = 0
    var noStopTrim = false
    var returnTextInLogprobs = false
}

struct PreparedPrompt: Sendable {
    var request: GenerationRequest
    var options = PromptOptions()
}

/// One sample's output so far, built from its stream events.
struct SampleProgress: Sendable {
    var tokens: [Int32] = []
    var logprobs: [Float] = []
    var text = ""
    var result: GenerationResult?
    /// How much of the output earlier chunks carried (incremental streaming).
    var sentTokens = 0
    var sentText = 0

    mutating func absorb(_ event: GenerationEvent) {
        switch event {
        case .tokens(_, let tokens, let logprobs, let delta):
            self.tokens += tokens
            self.logprobs += logprobs
            text += delta
        case .finished(let result):
            self.result = result
            tokens = result.outputTokens
            logprobs = result.outputLogprobs
            text = result.text
        }
    }
}

/// A batch event: which prompt it belongs to.
enum BatchEvent: Sendable {
    case event(prompt: Int, GenerationEvent)
    case failed(prompt: Int, any Error)
}

/// The prompts of one HTTP request while they run in the engine: submitted together, aborted together
/// when the client goes away, released once.
final class GenerationRun: Sendable {
    let frontend: EngineFrontend
    let prompts: [PreparedPrompt]
    let admission: Admission
    let started = ContinuousClock.now
    private let streams: [AsyncThrowingStream<GenerationEvent, any Error>]
    private let watcherToken = Mutex<(ConnectionWatcher, Int)?>(nil)

    /// Admits and submits every prompt, or throws (400 for an invalid one, 503 when the queue is full).
    init(frontend: EngineFrontend, prompts: [PreparedPrompt]) throws(APIError) {
        self.frontend = frontend
        self.prompts = prompts
        admission = try frontend.admit(ids: prompts.map(\.request.id))
        do {
            streams = try frontend.submit(prompts.map(\.request))
        } catch {
            frontend.release(admission)
            throw error
        }
    }

    var secondsSinceStart: Double {
        let elapsed = ContinuousClock.now - started
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    }

    /// Ends every prompt still running with finish reason abort.
    func abort() {
        for prompt in prompts { frontend.engine.abort(requestID: prompt.request.id) }
    }

    /// Aborts the run when the client goes away before the answer is complete: the answer can no longer be
    /// delivered, so the engine stops computing it and its ids are free again (release is idempotent).
    func abortWhenClientLeaves(_ channel: any Channel) async {
        guard let watcher = await ConnectionWatcher.watching(channel) else { return }
        let token = watcher.onEnd { [self] in
            if !admission.isFinished {
                abort()
                frontend.release(admission)
            }
        }
        if let token { watcherToken.withLock { $0 = (watcher, token) } }
    }

    func finish() {
        frontend.release(admission)
        if let (watcher, token) = watcherToken.withLock({ $0 }) { watcher.cancel(token) }
    }

    /// Every prompt's events, interleaved as they happen, in batches: each call of `next()` returns all that
    /// arrived since the last. A slow client thus gets one chunk with the latest state instead of a backlog
    /// (as SGLang's tokenizer manager keeps only the last output), and an abort reaches it at once.
    func eventBatches() -> EventQueue {
        let queue = EventQueue(streams: streams.count)
        for (index, stream) in streams.enumerated() {
            Task {
                do {
                    for try await event in stream { queue.push(.event(prompt: index, event)) }
                } catch {
                    queue.push(.failed(prompt: index, error))
                }
                queue.streamEnded()
            }
        }
        return queue
    }

    /// Waits for every sample; results per prompt in sample order.
    func collect() async throws(APIError) -> [[GenerationResult]] {
        var results = [[GenerationResult]](repeating: [], count: prompts.count)
        var failure: APIError?
        let queue = eventBatches()
        while let batch = await queue.next() {
            for event in batch {
            switch event {
            case .event(let prompt, .finished(let result)):
                results[prompt].append(result)
            case .event:
                break
            case .failed(_, let error):
                if failure == nil {
                    failure = (error as? EngineError).map(APIError.init) ?? APIError(status: .internalServerError, message: "\(error)")
                    abort()
                }
            }
            }
        }
        if let failure { throw failure }
        return results.map { $0.sorted { $0.sampleIndex < $1.sampleIndex } }
    }
}

/// Events of several streams for one consumer, handed over in batches.
final class EventQueue: Sendable {
    private let state: Mutex<State>

    private struct State {
        var events: [BatchEvent] = []
        var remaining: Int
        var waiter: CheckedContinuation<Void, Never>?
    }

    init(streams: Int) {
        state = Mutex(State(remaining: streams))
    }

    func push(_ event: BatchEvent) {
        let waiter = state.withLock { state in
            state.events.append(event)
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    func streamEnded() {
        let waiter = state.withLock { state in
            state.remaining -= 1
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Everything that arrived since the last call, waiting for at least one event; nil when every stream ended.
    func next() async -> [BatchEvent]? {
        while true {
            let ready: [BatchEvent]?? = state.withLock { state in
                if !state.events.isEmpty {
                    defer { state.events = [] }
                    return .some(state.events)
                }
                return state.remaining == 0 ? .some(nil) : nil
            }
            if let ready { return ready }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in
                    if !state.events.isEmpty || state.remaining == 0 { return true }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }
}

extension EngineFrontend {
    /// The text a sample reports: with `no_stop_trim`, the decoded output including the stop string.
    func reportedText(_ result: GenerationResult, options: PromptOptions, skipSpecialTokens: Bool) -> String {
        if options.noStopTrim, case .stopString = result.finishReason, let tokenizer {
            return (try? tokenizer.decode(result.outputTokens, skipSpecialTokens: skipSpecialTokens)) ?? result.text
        }
        return result.text
    }

    /// `[logprob, id, text or null]` for each token.
    func logprobEntries(tokens: ArraySlice<Int32>, logprobs: ArraySlice<Float>, withText: Bool) -> [TokenLogprobEntry] {
        zip(tokens, logprobs).map { token, logprob in
            TokenLogprobEntry(logprob: logprob, tokenID: Int(token), text: withText ? tokenText(token) : nil)
        }
    }

    func tokenText(_ token: Int32) -> String? {
        guard let tokenizer else { return nil }
        return try? tokenizer.decode([token], skipSpecialTokens: false)
    }
}

/// Server-sent events: `data: <json>\n\n`, closed by `data: [DONE]\n\n`.
enum ServerSentEvents {
    static func event<T: Encodable>(_ value: T) -> ByteBuffer {
        var buffer = ByteBuffer(string: "data: ")
        var body = JSONBody.encode(value)
        buffer.writeBuffer(&body)
        buffer.writeString("\n\n")
        return buffer
    }

    static let done = ByteBuffer(string: "data: [DONE]\n\n")
}
