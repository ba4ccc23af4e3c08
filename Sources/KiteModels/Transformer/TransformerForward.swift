import KiteTensor

/// Where a block's attention takes keys and values from.
enum AttentionSource {
    /// The batch itself: packed sequences (training; prefill without a cache).
    case packed(AttentionLayout)
    /// A cache the batch's keys are appended to (prefill, decode).
    case cache(any KeyValueCache)
}

/// Everything a training forward keeps for the backward.
public final class ForwardTape: @unchecked Sendable {
    let tokens: Tensor
    let layout: AttentionLayout
    let rope: RotaryTables
    let targets: Tensor
    let temperature: Float
    /// Full activations per block, or only each block's input when recomputing.
    var layers: [LayerActivations] = []
    var layerInputs: [Tensor] = []
    let recompute: Bool
    var finalInput: Tensor?
    var finalNormed: Tensor?
    var finalInverseRMS: Tensor?
    /// The experts the forward used, replayed when backward recomputes a layer (nil: route freely again).
    var routing: ExpertRouting?

    init(tokens: Tensor, layout: AttentionLayout, rope: RotaryTables, targets: Tensor, temperature: Float, recompute: Bool) {
        self.tokens = tokens
        self.layout = layout
        self.rope = rope
        self.targets = targets
        self.temperature = temperature
        self.recompute = recompute
    }
}

/// Log-probabilities and entropies of a training forward, and the tape its backward needs.
public struct TrainingForwardResult: @unchecked Sendable {
    /// `logprobs[t] = log p(targets[t] | tokens[..<=t])` under `softmax(logits / temperature)`; 0 where the target is -1.
    public let logprobs: Tensor
    public let entropy: Tensor
    /// Nil when activations were not kept.
    public let tape: ForwardTape?
}

extension Transformer {
    /// The next token of each row within its own sequence, -1 at each sequence's last row.
    public static func nextTokenTargets(tokens: [Int32], sequences: PackedSequences) -> [Int32] {
        var targets = [Int32](repeating: -1, count: tokens.count)
        for s in 0..<sequences.count {
            let range = sequences.range(s)
            for row in range where row + 1 < range.upperBound { targets[row] = tokens[row + 1] }
        }
        return targets
    }

    /// Training-mode forward over packed sequences: per-row log-prob of `targets` (default: the next token)
    /// and entropy, both under `softmax(logits / temperature)`.
    ///
    /// - Parameters:
    ///   - keepActivations: keep the tape for `backward` (false for reference / old log-probs).
    ///   - recompute: keep only each block's input and recompute the block during backward.
    ///   - routing: record the experts each sparse layer chooses, or replay recorded ones (`ExpertRouting`).
    public func forward(
        tokens: [Int32], sequences: PackedSequences, targets: [Int32]? = nil, temperature: Float = 1,
        keepActivations: Bool = true, recompute: Bool = false, routing: ExpertRouting? = nil
    ) throws -> TrainingForwardResult {
        guard tokens.count == sequences.totalLength else {
            throw ModelError.invalidInput("\(tokens.count) tokens for packed sequences of total length \(sequences.totalLength)")
        }
        try validate(tokens: tokens)
        let targetValues = targets ?? Self.nextTokenTargets(tokens: tokens, sequences: sequences)
        guard targetValues.count == tokens.count else {
            throw ModelError.invalidInput("\(targetValues.count) targets for \(tokens.count) tokens")
        }
        for (position, target) in targetValues.enumerated() where target < -1 || Int(target) >= config.vocabularySize {
            throw ModelError.invalidInput("target id \(target) at position \(position) is outside the vocabulary (0..<\(config.vocabularySize)); use -1 for no target")
        }
        let tokenTensor = try backend.upload(Tensor(int32: tokens))
        let targetTensor = try backend.upload(Tensor(int32: targetValues))
        let rope = try rotaryTables(positions: sequences.positions())
        let layout = AttentionLayout(selfAttention: sequences)
        let tape = ForwardTape(tokens: tokenTensor, layout: layout, rope: rope, targets: targetTensor, temperature: temperature, recompute: recompute)
        try beginRouting(routing, tokens: tokens.count)

        var x = try backend.embedding(ids: tokenTensor, table: embedding)
        for layer in layers {
            let keep = keepActivations && !recompute
            if keepActivations && recompute { tape.layerInputs.append(x) }
            let (output, activations) = try layerForward(layer, x, rope: rope, attention: .packed(layout), keep: keep, record: true, routing: routing)
            if let activations { tape.layers.append(activations) }
            x = output
        }
        if let routing, keepActivations && recompute {
            tape.routing = routing.mode == .replay ? routing : .replaying(try routing.recorded())
        }
        let (normed, inverseRMS) = try backend.rmsNorm(x, weight: finalNorm, epsilon: config.rmsNormEpsilon)
        let (logprobs, entropy) = try backend.logprobsAndEntropy(hidden: normed, weight: outputWeight, targets: targetTensor, temperature: temperature)
        guard keepActivations else { return TrainingForwardResult(logprobs: logprobs, entropy: entropy, tape: nil) }
        tape.finalInput = x
        tape.finalNormed = normed
        tape.finalInverseRMS = inverseRMS
        return TrainingForwardResult(logprobs: logprobs, entropy: entropy, tape: tape)
    }

    /// Inference forward of new tokens whose keys and values join `cache`: returns the final normalised
    /// hidden states `[T, hidden]` (feed rows of it to `logits`).
    /// `routing` records (or replays) each sparse layer's experts of these tokens.
    public func forwardHidden(tokens: [Int32], positions: [Int32], cache: any KeyValueCache, routing: ExpertRouting?) throws -> Tensor {
        guard tokens.count == positions.count else {
            throw ModelError.invalidInput("\(tokens.count) tokens but \(positions.count) positions")
        }
        try validate(tokens: tokens)
        return try hiddenStates(tokens: tokens, rope: try rotaryTables(positions: positions), attention: .cache(cache), routing: routing)
    }

    public func forwardHidden(tokens: [Int32], positions: [Int32], cache: any KeyValueCache) throws -> Tensor {
        try forwardHidden(tokens: tokens, positions: positions, cache: cache, routing: nil)
    }

    /// The final normalised hidden states `[T, hidden]` of packed sequences computed the training way, with
    /// no cache (latent attention expanded rather than absorbed).
    public func forwardHidden(tokens: [Int32], sequences: PackedSequences, routing: ExpertRouting? = nil) throws -> Tensor {
        guard tokens.count == sequences.totalLength else {
            throw ModelError.invalidInput("\(tokens.count) tokens for packed sequences of total length \(sequences.totalLength)")
        }
        try validate(tokens: tokens)
        return try hiddenStates(
            tokens: tokens, rope: try rotaryTables(positions: sequences.positions()), attention: .packed(AttentionLayout(selfAttention: sequences)),
            routing: routing)
    }

    func hiddenStates(tokens: [Int32], rope: RotaryTables, attention: AttentionSource, routing: ExpertRouting? = nil) throws -> Tensor {
        try beginRouting(routing, tokens: tokens.count)
        return try inferenceLayers(try backend.embedding(ids: try backend.upload(Tensor(int32: tokens)), table: embedding), rope: rope, attention: attention,
                                   routing: routing)
    }

    /// Every block and the final norm over embedded tokens `x`, inference-style (`inferenceLayer`); `routing`
    /// records or replays the sparse blocks' experts (checked by `beginRouting` first).
    func inferenceLayers(_ x: Tensor, rope: RotaryTables, attention: AttentionSource, routing: ExpertRouting? = nil) throws -> Tensor {
        var stream = ResidualStream(partial: x, residual: nil)
        for layer in layers {
            stream = try inferenceLayer(layer, stream, rope: rope, attention: attention, record: true, routing: routing)
        }
        return try normalized(stream, weight: finalNorm).normed
    }

    /// Checks a routing record or replay against a forward of `tokens` tokens before any layer runs.
    func beginRouting(_ routing: ExpertRouting?, tokens: Int) throws {
        try routing?.begin(tokens: tokens, sparseLayers: config.sparseLayerIndices.count, topK: max(config.routedExpertsPerToken, 1))
    }

    /// `forwardHidden` with the tokens and positions already in i32 tensors on the backend's device (the
    /// engine's decode steps): no host copy, so the work can be captured as a device graph. Rotary angles
    /// come from a table of every position below `positionLimit`, computed on the host once with the same
    /// arithmetic as `rotaryTables`, so the values are those of the other forwards to the bit.
    public func forwardHidden(tokenIDs: Tensor, positions: Tensor, positionLimit: Int, cache: any KeyValueCache) throws -> Tensor {
        guard tokenIDs.dtype == .i32, positions.dtype == .i32, tokenIDs.rank == 1, positions.shape == tokenIDs.shape else {
            throw ModelError.invalidInput("token ids \(tokenIDs) and positions \(positions); expected two i32 vectors of one length")
        }
        let table = try rotaryTable(limit: positionLimit)
        let rope = RotaryTables(cos: try backend.gatherRows(table.cos, indices: positions), sin: try backend.gatherRows(table.sin, indices: positions))
        return try inferenceLayers(try backend.embedding(ids: tokenIDs, table: embedding), rope: rope, attention: .cache(cache))
    }

    /// cos and sin `[limit, headDim / 2]` of positions 0 ..< limit, kept while the limit stays the same.
    func rotaryTable(limit: Int) throws -> (cos: Tensor, sin: Tensor) {
        if let cached = rotaryTableCache.withLock({ $0 }), cached.limit >= limit { return (cached.cos, cached.sin) }
        let tables = try computeRotaryTables(positions: (0..<Int32(max(limit, 1))).map { $0 })
        rotaryTableCache.withLock { $0 = (max(limit, 1), tables.cos, tables.sin) }
        return (tables.cos, tables.sin)
    }

    /// One token per row of final hidden states `[R, hidden]`, sampled on the backend with its log-prob (see
    /// `TokenSampling`).
    public func sampleTokens(hidden: Tensor, rows: [TokenSampling]) throws -> [SampledToken] {
        try backend.sampleTokens(hidden: hidden, weight: outputWeight, rows: rows)
    }

    /// `sampleTokens` with the tokens left on the device and read back later (`Backend.sampleTokensDeferred`).
    public func sampleTokensDeferred(hidden: Tensor, rows: [TokenSampling]) throws -> any DeferredSamples {
        try backend.sampleTokensDeferred(hidden: hidden, weight: outputWeight, rows: rows)
    }

    /// Logits `[T, vocabulary]` of final hidden states `[T, hidden]`.
    public func logits(hidden: Tensor) throws -> Tensor {
        try backend.matmul(hidden, outputWeight, transposeA: false, transposeB: true)
    }

    /// One decoder block. Returns its output and, when `keep`, what its backward needs; `record` adds the
    /// block's expert load to the model's statistics; `routing` records or replays a sparse block's experts.
    func layerForward(
        _ layer: DecoderLayer, _ x: Tensor, rope: RotaryTables, attention source: AttentionSource, keep: Bool, record: Bool,
        routing: ExpertRouting? = nil
    ) throws -> (output: Tensor, activations: LayerActivations?) {
        let (normed, inverseRMS) = try backend.rmsNorm(x, weight: layer.inputNorm, epsilon: config.rmsNormEpsilon)
        let (middle, attentionSaved) = try attentionBlock(layer, normed: normed, rope: rope, source: source, keep: keep)
        try backend.accumulate(x, into: middle, scale: 1)
        let (normed2, inverseRMS2) = try backend.rmsNorm(middle, weight: layer.postNorm, epsilon: config.rmsNormEpsilon)
        let (output, mlpSaved) = try mlpBlock(layer, input: normed2, keep: keep, record: record, stacked: false, routing: routing)
        try backend.accumulate(middle, into: output, scale: 1)
        guard keep, let attentionSaved, let mlpSaved else { return (output, nil) }
        return (output, LayerActivations(
            input: x, normed: normed, inverseRMS: inverseRMS, attention: attentionSaved, middle: middle, normed2: normed2,
            inverseRMS2: inverseRMS2, mlp: mlpSaved))
    }

    /// One decoder block of an inference forward (prefill, decode, scoring without a backward): the
    /// arithmetic of `layerForward`, with each residual add done by the RMSNorm that follows it (one
    /// operation, `Backend.addRMSNorm`) and the stacked projections of an inference copy of the model. The
    /// block's own output is left pending in the returned stream, for the next norm to add.
    func inferenceLayer(
        _ layer: DecoderLayer, _ stream: ResidualStream, rope: RotaryTables, attention source: AttentionSource, record: Bool, routing: ExpertRouting? = nil
    ) throws -> ResidualStream {
        let (x, normed) = try normalized(stream, weight: layer.inputNorm)
        let middle = try attentionBlock(layer, normed: normed, rope: rope, source: source, keep: false).output
        let normed2 = try backend.addRMSNorm(x, into: middle, weight: layer.postNorm, epsilon: config.rmsNormEpsilon)
        let output = try mlpBlock(layer, input: normed2, keep: false, record: record, stacked: true, routing: routing).output
        return ResidualStream(partial: output, residual: middle)
    }

    /// The hidden state that `stream` stands for (its pending residual added into `partial`, in place) and
    /// its RMSNorm with `weight`.
    func normalized(_ stream: ResidualStream, weight: Tensor) throws -> (hidden: Tensor, normed: Tensor) {
        guard let residual = stream.residual else {
            return (stream.partial, try backend.rmsNorm(stream.partial, weight: weight, epsilon: config.rmsNormEpsilon).output)
        }
        return (stream.partial, try backend.addRMSNorm(residual, into: stream.partial, weight: weight, epsilon: config.rmsNormEpsilon))
    }

    /// The attention half of a block, before its residual add.
    func attentionBlock(_ layer: DecoderLayer, normed: Tensor, rope: RotaryTables, source: AttentionSource, keep: Bool) throws -> (output: Tensor, saved: LayerActivations.Attention?) {
        switch layer.attention {
        case .grouped(let attention):
            let (output, saved) = try groupedQueryAttention(attention, layer: layer.index, normed: normed, rope: rope, source: source, keep: keep)
            return (output, saved.map { .grouped($0) })
        case .latent(let attention):
            let (output, saved) = try latentAttention(attention, layer: layer.index, normed: normed, rope: rope, source: source, keep: keep)
            return (output, saved.map { .latent($0) })
        }
    }

    /// The MLP half of a block, before its residual add; `stacked` lets a dense MLP use its stacked gate/up
    /// product (inference only).
    func mlpBlock(
        _ layer: DecoderLayer, input: Tensor, keep: Bool, record: Bool, stacked: Bool, routing: ExpertRouting? = nil
    ) throws -> (output: Tensor, saved: LayerActivations.MLP?) {
        switch layer.mlp {
        case .dense(let mlp):
            let (output, saved) = try feedForward(mlp, input: input, keep: keep, stacked: stacked)
            return (output, saved.map { .dense($0) })
        case .experts(let mlp):
            let (output, saved) = try mixtureOfExperts(mlp, layer: layer.index, input: input, keep: keep, record: record, routing: routing)
            return (output, saved.map { .experts($0) })
        }
    }
}

/// The residual stream of an inference forward between blocks: the hidden state is `partial`, plus
/// `residual` while the last block's residual add is pending (the next RMSNorm adds it, in one operation).
struct ResidualStream {
    var partial: Tensor
    var residual: Tensor?
}
