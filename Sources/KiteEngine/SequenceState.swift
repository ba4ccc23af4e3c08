import KiteTensor

/// One sample being generated: its tokens, its cache blocks, and its sampling state.
final class SequenceState {
    let request: RequestState
    let sampleIndex: Int
    /// Prompt followed by the tokens generated so far.
    var tokens: [Int32]
    let promptLength: Int
    /// Leading tokens whose keys and values are in this sequence's blocks.
    var computed = 0
    var blockTable: [Int32] = []
    var generator: SeededGenerator
    var outputLogprobs: [Float] = []
    var topLogprobs: [[TokenLogprob]] = []
    var text = ""
    /// `text.count`, kept so that per-token work does not walk the whole text.
    var textCount = 0
    var decoder: (any IncrementalDecoder)?
    var cachedTokenCount = 0
    var finishReason: FinishReason?
    /// Waits for the group leader's prompt to be computed, then forks from it.
    var awaitingFork: Bool
    /// Admission order, for fairness and for choosing whom to preempt (the latest).
    let arrival: UInt64

    init(request: RequestState, sampleIndex: Int, generator: SeededGenerator, arrival: UInt64, awaitingFork: Bool) {
        self.request = request
        self.sampleIndex = sampleIndex
        self.tokens = request.request.promptTokens
        self.promptLength = request.request.promptTokens.count
        self.generator = generator
        self.arrival = arrival
        self.awaitingFork = awaitingFork
    }

    var generatedCount: Int { tokens.count - promptLength }
    var outputTokens: [Int32] { Array(tokens[promptLength...]) }
    /// Tokens still to run through the model before the next sample can be drawn.
    var pending: Int { tokens.count - computed }
    var isFinished: Bool { finishReason != nil }
}

/// A request and its samples, with the channel its events go out on.
final class RequestState {
    let request: GenerationRequest
    let continuation: AsyncThrowingStream<GenerationEvent, any Error>.Continuation
    var samples: [SequenceState] = []
    var unfinished: Int

    init(request: GenerationRequest, continuation: AsyncThrowingStream<GenerationEvent, any Error>.Continuation) {
        self.request = request
        self.continuation = continuation
        self.unfinished = request.sampling.n
    }
}
