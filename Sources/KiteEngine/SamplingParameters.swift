/// How to sample one request's continuation, with SGLang's names and defaults.
public struct SamplingParameters: Sendable, Equatable {
    /// 0 means greedy.
    public var temperature: Double = 1
    public var topP: Double = 1
    /// -1 (or 0) keeps every token.
    public var topK: Int = -1
    public var minP: Double = 0
    public var maxNewTokens: Int = 128
    public var stop: [String] = []
    public var stopTokenIDs: [Int32] = []
    public var ignoreEOS = false
    /// Samples per request; they share the prompt's cache blocks and its prefill.
    public var n = 1
    /// Same seed and request give the same tokens. Sample `i` of a request draws from `seed + i`.
    public var seed: UInt64?
    public var skipSpecialTokens = true

    public init() {}

    /// Checks every value, naming the offending field.
    public func validate(vocabularySize: Int, maximumSamples: Int = 1024, maximumNewTokens: Int = 1 << 20) throws(EngineError) {
        guard temperature.isFinite, temperature >= 0 else { throw .invalidRequest(field: "temperature", detail: "must be a finite number >= 0, got \(temperature)") }
        guard topP.isFinite, topP > 0, topP <= 1 else { throw .invalidRequest(field: "top_p", detail: "must be in (0, 1], got \(topP)") }
        guard topK >= -1 else { throw .invalidRequest(field: "top_k", detail: "must be -1 (off) or positive, got \(topK)") }
        guard minP.isFinite, minP >= 0, minP <= 1 else { throw .invalidRequest(field: "min_p", detail: "must be in [0, 1], got \(minP)") }
        guard maxNewTokens >= 0, maxNewTokens <= maximumNewTokens else {
            throw .invalidRequest(field: "max_new_tokens", detail: "must be in 0...\(maximumNewTokens), got \(maxNewTokens)")
        }
        guard n >= 1, n <= maximumSamples else { throw .invalidRequest(field: "n", detail: "must be in 1...\(maximumSamples), got \(n)") }
        for (i, id) in stopTokenIDs.enumerated() where id < 0 || Int(id) >= vocabularySize {
            throw .invalidRequest(field: "stop_token_ids[\(i)]", detail: "token id \(id) is outside the vocabulary (0..<\(vocabularySize))")
        }
        for (i, text) in stop.enumerated() where text.isEmpty {
            throw .invalidRequest(field: "stop[\(i)]", detail: "stop strings must not be empty")
        }
    }
}

/// Why a sample stopped, as SGLang reports it in `meta_info.finish_reason`.
public enum FinishReason: Sendable, Equatable {
    /// An end-of-sequence or stop token was sampled.
    case stopToken(Int32)
    /// The text reached a stop string (the text is cut before it).
    case stopString(String)
    /// `max_new_tokens` or the context length was reached.
    case length(Int)
    /// Aborted by the client or the server.
    case abort(String)
}

/// Errors the engine reports to callers; the HTTP layer maps them to 4xx/5xx with the same message.
public enum EngineError: Error, CustomStringConvertible, Sendable, Equatable {
    case invalidRequest(field: String, detail: String)
    case overloaded(String)
    case notFound(String)
    case shutDown
    case tokenizerRequired(String)
    case internalFailure(String)

    public var description: String {
        switch self {
        case .invalidRequest(let field, let detail): "invalid '\(field)': \(detail)"
        case .overloaded(let detail): "server overloaded: \(detail)"
        case .notFound(let detail): detail
        case .shutDown: "the engine is shut down"
        case .tokenizerRequired(let what): "\(what) needs a tokenizer, and this engine has none"
        case .internalFailure(let detail): "internal error: \(detail)"
        }
    }
}
