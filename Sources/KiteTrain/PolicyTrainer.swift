import KiteModels
import KiteTensor

/// A sequence to train on: prompt and response tokens; log-probs and entropies are taken for the
/// `responseLength` last tokens (each scored by the logits at the position before it).
public struct TrainingSequence: Sendable, Equatable {
    public var tokens: [Int32]
    public var responseLength: Int
    /// Routing replay: the experts every token goes to in every sparse layer, `[tokens, sparse layers, topK]`
    /// (recorded by `score(_:temperature:maxTokensPerBatch:recordRouting:)`, or the engine's). Nil routes freely.
    /// Within one micro-batch, either every sequence has it or none.
    public var routedExperts: RoutedExperts?

    public init(tokens: [Int32], responseLength: Int, routedExperts: RoutedExperts? = nil) {
        self.tokens = tokens
        self.responseLength = responseLength
        self.routedExperts = routedExperts
    }
}

/// What a micro-batch's forward gives the loss: per sequence, the log-prob and entropy of each response token.
public struct ResponseScores: Sendable {
    public var logprobs: [[Float]]
    public var entropy: [[Float]]
    /// Per sequence, the experts its tokens were routed to, when the forward recorded them.
    public var routedExperts: [RoutedExperts]?
}

/// The gradient of the loss with respect to each response token's log-prob and entropy.
public struct ResponseGradients: Sendable {
    public var dLogprobs: [[Float]]
    public var dEntropy: [[Float]]

    public init(dLogprobs: [[Float]], dEntropy: [[Float]]) {
        self.dLogprobs = dLogprobs
        self.dEntropy = dEntropy
    }
}

/// What one optimizer step did.
public struct StepReport: Sendable, Equatable {
    public var step: Int
    public var learningRate: Double
    /// Before clipping.
    public var gradientNorm: Double
    public var tokens: Int
    public var microBatches: Int
    /// Tokens per expert of each sparse layer over the step's training forwards (empty for dense models):
    /// the router's load balance.
    public var expertLoad: ExpertLoad = ExpertLoad()
}

/// Trains a `CausalLanguageModel` with AdamW on fp32 master weights: forward and backward over packed
/// micro-batches with gradient accumulation, global-norm clipping, a learning-rate schedule, and optional
/// recomputation. The loss is the caller's: it receives each micro-batch's response scores and returns their
/// gradients, so the same trainer runs supervised warm-up and every RL objective.
public final class PolicyTrainer: @unchecked Sendable {
    public let model: any CausalLanguageModel
    public let optimizer: AdamW
    public let gradients: ParameterSet
    public var schedule: LearningRateSchedule
    /// `--clip-grad`; 0 turns clipping off.
    public var clipGradient: Double
    /// `--recompute-granularity full`.
    public var recompute: Bool

    public init(model: any CausalLanguageModel, optimizer: AdamWConfig, schedule: LearningRateSchedule, clipGradient: Double = 1.0, recompute: Bool = false) throws {
        self.model = model
        self.optimizer = try AdamW(parameters: model.parameters, config: optimizer, backend: model.backend)
        self.gradients = try model.parameters.zerosLike(backend: model.backend)
        self.schedule = schedule
        self.clipGradient = clipGradient
        self.recompute = recompute
    }

    public var stepCount: Int { optimizer.stepCount }

    /// Response log-probs and entropies without gradients (old or reference log-probs), in batches of at most
    /// `maxTokensPerBatch` tokens (a longer sequence goes alone). Sequences with `routedExperts` replay them;
    /// `recordRouting` records the experts of the others (slime's R2 records in the old-log-prob forward).
    public func score(_ sequences: [TrainingSequence], temperature: Float, maxTokensPerBatch: Int = 8192, recordRouting: Bool = false) throws -> ResponseScores {
        var logprobs = [[Float]](repeating: [], count: sequences.count)
        var entropy = [[Float]](repeating: [], count: sequences.count)
        var routed: [RoutedExperts?] = Array(repeating: nil, count: sequences.count)
        for batch in Self.batches(sequences.map(\.tokens.count), maxTokens: maxTokensPerBatch) {
            let scores = try forward(batch.map { sequences[$0] }, temperature: temperature, keep: false, recordRouting: recordRouting).scores
            for (position, index) in batch.enumerated() {
                logprobs[index] = scores.logprobs[position]
                entropy[index] = scores.entropy[position]
                routed[index] = scores.routedExperts?[position]
            }
        }
        let complete = routed.compactMap { $0 }
        return ResponseScores(logprobs: logprobs, entropy: entropy, routedExperts: recordRouting && complete.count == sequences.count ? complete : nil)
    }

    /// One optimizer step over `microBatches` (gradients accumulate across them). `loss(i, scores)` returns
    /// the gradients of the step's loss with respect to micro-batch `i`'s response scores.
    @discardableResult
    public func step(
        microBatches: [[TrainingSequence]], temperature: Float,
        loss: (Int, ResponseScores) throws -> ResponseGradients
    ) throws -> StepReport {
        try GradientClipping.zero(gradients, backend: model.backend)
        _ = model.takeExpertLoad()
        var tokens = 0
        for (index, batch) in microBatches.enumerated() where !batch.isEmpty {
            let (scores, tape, layout) = try forward(batch, temperature: temperature, keep: true)
            let upstream = try loss(index, scores)
            guard upstream.dLogprobs.count == batch.count, upstream.dEntropy.count == batch.count else {
                throw ModelError.invalidInput("loss returned gradients for \(upstream.dLogprobs.count) sequences, expected \(batch.count)")
            }
            let rows = layout.totalLength
            var dLogprobs = [Float](repeating: 0, count: rows), dEntropy = [Float](repeating: 0, count: rows)
            for (s, sequence) in batch.enumerated() {
                guard upstream.dLogprobs[s].count == sequence.responseLength, upstream.dEntropy[s].count == sequence.responseLength else {
                    throw ModelError.invalidInput("loss gradients of sequence \(s) have \(upstream.dLogprobs[s].count) entries for \(sequence.responseLength) response tokens")
                }
                let first = Self.firstResponseRow(sequence, start: layout.range(s).lowerBound)
                for i in 0..<sequence.responseLength {
                    dLogprobs[first + i] = upstream.dLogprobs[s][i]
                    dEntropy[first + i] = upstream.dEntropy[s][i]
                }
            }
            guard let tape else { throw ModelError.invalidInput("training forward kept no activations") }
            try model.backward(tape, dLogprobs: try model.backend.upload(Tensor(dLogprobs, shape: [rows])),
                               dEntropy: try model.backend.upload(Tensor(dEntropy, shape: [rows])), gradients: gradients)
            tokens += rows
        }
        let norm = try GradientClipping.globalNorm(gradients, backend: model.backend)
        let rate = schedule.rate(atStep: optimizer.stepCount + 1)
        try optimizer.step(parameters: model.parameters, gradients: gradients, learningRate: Float(rate),
                           gradientScale: GradientClipping.scale(norm: norm, maxNorm: clipGradient))
        return StepReport(
            step: optimizer.stepCount, learningRate: rate, gradientNorm: norm, tokens: tokens, microBatches: microBatches.count,
            expertLoad: model.takeExpertLoad())
    }

    /// Packed forward of a micro-batch; returns each sequence's response scores. Replays the sequences'
    /// routing when they carry it; otherwise records it when `recordRouting`.
    func forward(_ batch: [TrainingSequence], temperature: Float, keep: Bool, recordRouting: Bool = false) throws -> (scores: ResponseScores, tape: ForwardTape?, layout: PackedSequences) {
        for (s, sequence) in batch.enumerated() where sequence.responseLength < 0 || sequence.responseLength >= sequence.tokens.count {
            throw ModelError.invalidInput("sequence \(s): response length \(sequence.responseLength) must be in 0..<\(sequence.tokens.count) (a prompt token comes first)")
        }
        let layout = PackedSequences(lengths: batch.map(\.tokens.count))
        let tokens = batch.flatMap(\.tokens)
        let routing = try Self.routing(for: batch, record: recordRouting)
        let result = try model.forward(
            tokens: tokens, sequences: layout, targets: nil, temperature: temperature, keepActivations: keep, recompute: recompute, routing: routing)
        let logprobs = try model.backend.download(result.logprobs).toFloats()
        let entropy = try model.backend.download(result.entropy).toFloats()
        var scores = ResponseScores(logprobs: [], entropy: [])
        for (s, sequence) in batch.enumerated() {
            let first = Self.firstResponseRow(sequence, start: layout.range(s).lowerBound)
            scores.logprobs.append(Array(logprobs[first..<(first + sequence.responseLength)]))
            scores.entropy.append(Array(entropy[first..<(first + sequence.responseLength)]))
        }
        if let routing, routing.mode == .record {
            let record = try routing.recorded()
            scores.routedExperts = try (0..<batch.count).map { try record.tokens(layout.range($0)) }
        }
        return (scores, result.tape, layout)
    }

    /// The routing of a micro-batch: its sequences' records packed in its order (replay), a new record, or
    /// nil (free routing).
    static func routing(for batch: [TrainingSequence], record: Bool) throws -> ExpertRouting? {
        let carrying = batch.filter { $0.routedExperts != nil }.count
        if carrying == 0 { return record ? .recording() : nil }
        guard carrying == batch.count else {
            throw ModelError.invalidInput("routing replay: \(carrying) of the micro-batch's \(batch.count) sequences carry routed experts; all or none must")
        }
        var parts: [RoutedExperts] = []
        for (s, sequence) in batch.enumerated() {
            guard let routed = sequence.routedExperts else { continue }
            guard routed.tokenCount == sequence.tokens.count else {
                throw ModelError.invalidInput("routing replay: sequence \(s) has \(sequence.tokens.count) tokens but routed experts for \(routed.tokenCount)")
            }
            parts.append(routed)
        }
        return .replaying(try RoutedExperts.concatenating(parts))
    }

    /// The packed row whose logits score the first response token.
    static func firstResponseRow(_ sequence: TrainingSequence, start: Int) -> Int {
        start + sequence.tokens.count - sequence.responseLength - 1
    }

    /// Consecutive groups of indices whose lengths sum to at most `maxTokens` (a longer one goes alone).
    static func batches(_ lengths: [Int], maxTokens: Int) -> [[Int]] {
        var batches: [[Int]] = []
        var current: [Int] = [], size = 0
        for (index, length) in lengths.enumerated() {
            if !current.isEmpty && size + length > maxTokens {
                batches.append(current)
                current = []
                size = 0
            }
            current.append(index)
            size += length
        }
        if !current.isEmpty { batches.append(current) }
        return batches
    }
}
