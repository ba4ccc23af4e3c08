import Dispatch
import KiteModels
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The in-process inference engine: continuous batching over a paged key/value cache, callable from Swift
/// (the colocated trainer, the HTTP server) with an async interface and cancellation.
///
/// All model work happens on one dedicated thread, so a long forward never blocks the caller's tasks.
/// Requests, aborts and control calls are queued to that thread and applied between steps.
public final class InferenceEngine: @unchecked Sendable {
    public let model: any CausalLanguageModel
    public let tokenizer: (any EngineTokenizer)?
    public let options: EngineOptions
    private let core: EngineCore
    private let inbox = Mutex<Inbox>(Inbox())
    private let wakeup = DispatchSemaphore(value: 0)
    private var thread = pthread_t()

    private struct Inbox {
        var commands: [@Sendable (EngineCore) -> Void] = []
        var queued = 0
        var shutDown = false
        /// The engine thread has exited: commands run at once on the caller's thread, under the inbox lock.
        var stopped = false
    }

    public init(model: any CausalLanguageModel, tokenizer: (any EngineTokenizer)? = nil, options: EngineOptions = EngineOptions()) throws {
        self.model = model
        self.tokenizer = tokenizer
        self.options = options
        core = try EngineCore(model: model, tokenizer: tokenizer, options: options)
        let box = Unmanaged.passRetained(self)
        let created = pthread_create(&thread, nil, { argument in
            guard let argument else { return nil }
            let engine = Unmanaged<InferenceEngine>.fromOpaque(argument).takeRetainedValue()
            engine.loop()
            return nil
        }, box.toOpaque())
        guard created == 0 else {
            box.release()
            throw EngineError.internalFailure("cannot start the engine thread: error \(created)")
        }
    }

    /// Longest prompt plus output the engine accepts.
    public var contextLength: Int { core.contextLength }

    // MARK: Requests

    /// Queues a request; its events arrive on the returned stream. Invalid requests throw at once; a full
    /// queue throws `.overloaded`. Cancelling the consuming task does not abort: call `abort(requestID:)`.
    public func submit(_ request: GenerationRequest) throws(EngineError) -> AsyncThrowingStream<GenerationEvent, any Error> {
        try core.validateStatically(request)
        let (stream, continuation) = AsyncThrowingStream<GenerationEvent, any Error>.makeStream()
        let accepted: Result<Void, EngineError> = inbox.withLock { inbox in
            if inbox.shutDown { return .failure(.shutDown) }
            if inbox.queued + request.sampling.n > options.maxQueuedRequests {
                return .failure(.overloaded("\(inbox.queued) samples are queued or running; the limit is \(options.maxQueuedRequests)"))
            }
            inbox.queued += request.sampling.n
            inbox.commands.append { core in
                do {
                    try core.validate(request)
                    core.admit(RequestState(request: request, continuation: continuation))
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            return .success(())
        }
        if case .failure(let error) = accepted {
            continuation.finish(throwing: error)
            throw error
        }
        continuation.onTermination = { [weak self] _ in
            self?.inbox.withLock { $0.queued -= request.sampling.n }
        }
        wakeup.signal()
        return stream
    }

    /// Runs a request to completion; results are in sample order. Cancelling the task aborts the request.
    public func generate(_ request: GenerationRequest) async throws -> [GenerationResult] {
        var quiet = request
        quiet.stream = false
        let stream = try submit(quiet)
        return try await withTaskCancellationHandler {
            var results: [GenerationResult] = []
            for try await event in stream {
                if case .finished(let result) = event { results.append(result) }
            }
            return results.sorted { $0.sampleIndex < $1.sampleIndex }
        } onCancel: {
            self.abort(requestID: request.id)
        }
    }

    /// Ends a request's samples with finish reason `abort` and frees their blocks.
    public func abort(requestID: String) {
        enqueue { core in _ = core.abort(requestID: requestID) }
    }

    /// Aborts every queued and running request.
    public func abortAll() {
        enqueue { core in core.abortAll() }
    }

    // MARK: Control

    /// Drops the prefix cache; false while requests are in flight.
    public func flushCache() async -> Bool {
        await perform { core in core.flushCache() }
    }

    /// Frees the key/value cache (requests wait until `resumeMemory`).
    public func releaseMemory() async {
        await perform { core in core.releaseMemory() }
    }

    public func resumeMemory() async throws {
        try await perform { core in Result { try core.resumeMemory() } }.get()
    }

    /// Applies new weights between steps: `update` writes the model's parameters (a copy from the trainer,
    /// or a checkpoint read from disk); cached prefixes are dropped and running sequences recompute theirs.
    public func updateWeights(version: String, _ update: @escaping @Sendable (any CausalLanguageModel) throws -> Void) async throws {
        try await perform { core in
            Result {
                // The step in flight read the old weights: its tokens are accepted before they change.
                core.settleInFlight()
                try update(core.model)
                core.weightsChanged(version: version)
            }
        }.get()
    }

    /// Starts a new peak of cache blocks in use (see `EngineStatistics.peakUsedBlocks`).
    public func resetPeakMemory() async {
        await perform { core in core.pool.resetPeak() }
    }

    public func statistics() async -> EngineStatistics {
        await perform { core in core.statistics }
    }

    /// Aborts everything and stops the engine thread.
    public func shutdown() {
        enqueue { core in core.abortAll(message: "server shutting down") }
        inbox.withLock { $0.shutDown = true }
        wakeup.signal()
    }

    // MARK: The engine thread

    private func enqueue(_ command: @escaping @Sendable (EngineCore) -> Void) {
        let queued = inbox.withLock { inbox in
            // After shutdown nothing would run a queued command, and a caller awaiting it would wait forever.
            if inbox.stopped {
                command(core)
                return false
            }
            inbox.commands.append(command)
            return true
        }
        if queued { wakeup.signal() }
    }

    private func perform<T: Sendable>(_ body: @escaping @Sendable (EngineCore) -> T) async -> T {
        await withCheckedContinuation { continuation in
            enqueue { core in continuation.resume(returning: body(core)) }
        }
    }

    private func loop() {
        while true {
            let (commands, shutDown) = inbox.withLock { inbox in
                defer { inbox.commands = [] }
                return (inbox.commands, inbox.shutDown)
            }
            for command in commands { command(core) }
            if shutDown {
                inbox.withLock { inbox in
                    for command in inbox.commands { command(core) }
                    inbox.commands = []
                    inbox.stopped = true
                }
                break
            }
            do {
                if try core.step() { continue }
            } catch {
                // A failing forward must not take the server down: fail what was running and go on.
                core.abortAll(message: "internal error: \(error)")
            }
            wakeup.wait()
        }
    }
}
