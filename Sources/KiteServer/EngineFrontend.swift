import Dispatch
import FoundationEssentials
import KiteEngine
import KiteJSON
import KiteModels
import Synchronization

/// Renders a conversation into a prompt (a model's chat template).
public protocol ChatPromptRenderer: Sendable {
    /// `messages` and `tools` are the request's JSON as sent (key order kept; text content parts joined);
    /// `arguments` are extra template variables (`chat_template_kwargs`, e.g. `enable_thinking`).
    func render(messages: [JSONValue], tools: [JSONValue]?, addGenerationPrompt: Bool, arguments: JSONObject) throws -> String
    /// The rendered prompt's tokens. Templates write their own special tokens, so none are added (as
    /// transformers' `apply_chat_template(tokenize=True)`).
    func encode(rendered: String) throws -> [Int32]
}

/// The server's side of the engine: admits requests (ids unique while they run, nothing new while shutting
/// down), tracks what is in flight, and turns submissions into engine streams. Handlers are thin calls on it.
public final class EngineFrontend: Sendable {
    public let engine: InferenceEngine
    public let tokenizer: (any EngineTokenizer)?
    public let chatRenderer: (any ChatPromptRenderer)?
    public let configuration: ServerConfiguration
    private let state: Mutex<State>

    private struct State {
        var runningIDs: Set<String> = []
        var inFlight = 0
        var draining = false
        var modelPath: String
        var boundPort: Int?
    }

    public init(engine: InferenceEngine, tokenizer: (any EngineTokenizer)? = nil, chatRenderer: (any ChatPromptRenderer)? = nil, configuration: ServerConfiguration) {
        self.engine = engine
        self.tokenizer = tokenizer ?? engine.tokenizer
        self.chatRenderer = chatRenderer
        self.configuration = configuration
        state = Mutex(State(modelPath: configuration.modelPath))
    }

    public var modelPath: String { state.withLock { $0.modelPath } }
    /// The port the listener bound (the configured one may be 0).
    public var port: Int {
        get { state.withLock { $0.boundPort } ?? configuration.port }
        set { state.withLock { $0.boundPort = newValue } }
    }
    public var inFlightRequests: Int { state.withLock { $0.inFlight } }
    public var isDraining: Bool { state.withLock { $0.draining } }

    static func newRequestID() -> String {
        UUID().uuidString.lowercased().replacing("-", with: "")
    }

    // MARK: Admission

    /// Registers a request's ids; they stay reserved until `release`. Refused while shutting down.
    func admit(ids: [String]) throws(APIError) -> Admission {
        try state.withLock { state throws(APIError) in
            if state.draining { throw APIError.unavailable("the server is shutting down") }
            var seen = Set<String>()
            for id in ids {
                guard !state.runningIDs.contains(id), seen.insert(id).inserted else {
                    throw APIError.badRequest("a request with rid '\(id)' is already running", param: "rid")
                }
            }
            state.runningIDs.formUnion(ids)
            state.inFlight += 1
            return Admission(ids: ids)
        }
    }

    func release(_ admission: Admission) {
        guard admission.finish() else { return }
        state.withLock { state in
            state.runningIDs.subtract(admission.ids)
            state.inFlight -= 1
        }
    }

    /// Submits every prompt, or none: when one is refused, those already queued are aborted.
    func submit(_ requests: [GenerationRequest]) throws(APIError) -> [AsyncThrowingStream<GenerationEvent, any Error>] {
        var streams: [AsyncThrowingStream<GenerationEvent, any Error>] = []
        for (index, request) in requests.enumerated() {
            do {
                streams.append(try engine.submit(request))
            } catch {
                for earlier in requests[..<index] { engine.abort(requestID: earlier.id) }
                var mapped = APIError(error)
                if requests.count > 1, mapped.status == .badRequest { mapped.message = "prompt \(index): " + mapped.message }
                throw mapped
            }
        }
        return streams
    }

    // MARK: Shutdown

    /// Refuses new requests from now on.
    public func beginDraining() {
        state.withLock { $0.draining = true }
    }

    /// Waits until no request is in flight or `timeout` seconds pass; true when idle.
    public func waitUntilIdle(timeout: Double) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while inFlightRequests > 0 {
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    // MARK: Weights

    /// Loads a checkpoint off the engine thread, checks it fits the served architecture, then copies it into
    /// the model between two engine steps.
    func updateWeights(fromDisk path: String, version: String?) async throws(APIError) -> String {
        let model = engine.model
        let loaded: any CausalLanguageModel
        do {
            loaded = try await Self.offloaded { try ModelLoading.load(path: path, backend: model.backend) }
        } catch {
            throw APIError.badRequest("cannot load weights from '\(path)': \(error)", param: "model_path")
        }
        let expected = Transformer.parameterShapes(model.config)
        let found = Transformer.parameterShapes(loaded.config)
        guard expected.map(\.0) == found.map(\.0), expected.map(\.1) == found.map(\.1) else {
            throw APIError.badRequest("the checkpoint at '\(path)' has a different architecture than the served model", param: "model_path")
        }
        let current = await engine.statistics().weightVersion
        let newVersion = version ?? current
        do {
            try await engine.updateWeights(version: newVersion) { target in
                try WeightSync.copy(from: loaded, into: target)
            }
        } catch {
            throw APIError(status: .internalServerError, message: "updating the weights failed: \(error)")
        }
        state.withLock { $0.modelPath = path }
        return newVersion
    }

    /// Runs blocking work (file reads, weight conversion) on a Dispatch thread rather than the cooperative pool.
    static func offloaded<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
        }
    }
}

/// A request's claim on its ids; released exactly once.
final class Admission: Sendable {
    let ids: [String]
    private let finished = Atomic<Bool>(false)

    init(ids: [String]) { self.ids = ids }

    /// True the first time only.
    func finish() -> Bool {
        !finished.exchange(true, ordering: .acquiringAndReleasing)
    }

    var isFinished: Bool { finished.load(ordering: .acquiring) }
}
