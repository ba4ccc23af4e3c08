import KiteModels

/// One generation request to the in-process engine.
public struct GenerationRequest: Sendable {
    public var id: String
    public var promptTokens: [Int32]
    public var sampling: SamplingParameters
    /// Return the log-prob of every sampled token (always computed; this controls what is reported).
    public var returnLogprob: Bool
    /// Also return the `topLogprobs` most likely alternatives at every position.
    public var topLogprobs: Int
    /// Send a `.tokens` event for every token; when false only the `.finished` events come (cheaper).
    public var stream: Bool
    /// SGLang's `return_routed_experts`: each result carries the experts its tokens were routed to (needs
    /// `EngineOptions.enableReturnRoutedExperts`).
    public var returnRoutedExperts: Bool

    public init(
        id: String, promptTokens: [Int32], sampling: SamplingParameters = SamplingParameters(), returnLogprob: Bool = false, topLogprobs: Int = 0,
        stream: Bool = true, returnRoutedExperts: Bool = false
    ) {
        self.id = id
        self.promptTokens = promptTokens
        self.sampling = sampling
        self.returnLogprob = returnLogprob
        self.topLogprobs = topLogprobs
        self.stream = stream
        self.returnRoutedExperts = returnRoutedExperts
    }
}

/// A token with its log-prob, as in SGLang's `output_token_logprobs` entries.
public struct TokenLogprob: Sendable, Equatable {
    public var token: Int32
    public var logprob: Float

    public init(token: Int32, logprob: Float) {
        self.token = token
        self.logprob = logprob
    }
}

/// A finished sample.
public struct GenerationResult: Sendable, Equatable {
    public var requestID: String
    public var sampleIndex: Int
    public var outputTokens: [Int32]
    /// Log-prob of each output token under `log_softmax(logits / temperature)` before truncation
    /// (temperature 1 for greedy requests).
    public var outputLogprobs: [Float]
    /// The most likely alternatives at each position, when asked for.
    public var topLogprobs: [[TokenLogprob]]
    /// Decoded output (empty without a tokenizer).
    public var text: String
    public var finishReason: FinishReason
    public var promptTokenCount: Int
    /// Prompt tokens served from cache instead of computed for this sample.
    public var cachedTokenCount: Int
    /// The weights' version when the sample finished.
    public var weightVersion: String
    /// With `returnRoutedExperts`, SGLang's `routed_experts`: the experts of every token the model ran, prompt
    /// and output but the last token (which was sampled, never computed), `[prompt + output - 1, layers, topK]`
    /// over every hidden layer, zeros in dense layers; each row from the forward that computed the token's
    /// cache slot (a prefix shared from the cache included), the latest one after a preemption. Nil for dense
    /// models, and when not asked for.
    public var routedExperts: RoutedExperts?

    public init(
        requestID: String, sampleIndex: Int, outputTokens: [Int32], outputLogprobs: [Float], topLogprobs: [[TokenLogprob]] = [],
        text: String, finishReason: FinishReason, promptTokenCount: Int, cachedTokenCount: Int, weightVersion: String,
        routedExperts: RoutedExperts? = nil
    ) {
        self.routedExperts = routedExperts
        self.requestID = requestID
        self.sampleIndex = sampleIndex
        self.outputTokens = outputTokens
        self.outputLogprobs = outputLogprobs
        self.topLogprobs = topLogprobs
        self.text = text
        self.finishReason = finishReason
        self.promptTokenCount = promptTokenCount
        self.cachedTokenCount = cachedTokenCount
        self.weightVersion = weightVersion
    }
}

/// What a running request streams: new tokens of one sample, then that sample's result.
public enum GenerationEvent: Sendable {
    case tokens(sampleIndex: Int, tokens: [Int32], logprobs: [Float], text: String)
    case finished(GenerationResult)
}

/// Text for an engine: encode prompts, decode outputs incrementally (stop strings, streaming).
public protocol EngineTokenizer: Sendable {
    var vocabularySize: Int { get }
    /// Tokens that end a sample unless `ignore_eos`.
    var endOfSequenceTokenIDs: [Int32] { get }
    func encode(_ text: String) throws -> [Int32]
    func decode(_ tokens: [Int32], skipSpecialTokens: Bool) throws -> String
    /// A decoder that turns tokens into text as they arrive, emitting only complete characters.
    func makeIncrementalDecoder(skipSpecialTokens: Bool) -> any IncrementalDecoder
}

/// Turns a stream of token ids into text.
public protocol IncrementalDecoder {
    /// Adds one token; returns the text that became complete.
    mutating func push(_ token: Int32) throws -> String
    /// Whatever text is still held back (an incomplete character) at the end.
    mutating func finish() -> String
}
