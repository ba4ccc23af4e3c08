import KiteTensor
import Synchronization

/// The experts tokens were routed to: i32 `[tokens, layers, topK]`, row-major, so `values[(t * layers + l) *
/// topK + j]` is token `t`'s `j`-th expert in layer `l`, in the order `route` chose them.
///
/// Which layers depends on where a record lives. A forward records and replays the model's sparse layers, in
/// order (`ModelConfig.sparseLayerIndices`). SGLang's `routed_experts` and slime's `rollout_routed_experts`
/// have every hidden layer, dense ones holding zeros: `spreading(to:at:)` and `selectingLayers(_:)` convert.
/// Records are per token, so they survive any packing: a sample's rows are `tokens(range)` of its micro-batch's
/// record, and a micro-batch's record is its samples' records `concatenating`.
public struct RoutedExperts: Sendable, Equatable {
    public let tokenCount: Int
    public let layerCount: Int
    public let topK: Int
    public let values: [Int32]

    /// Checks that `values` holds `tokenCount * layerCount * topK` entries.
    public init(tokenCount: Int, layerCount: Int, topK: Int, values: [Int32]) throws(ModelError) {
        guard tokenCount >= 0, layerCount >= 0, topK >= 1 else {
            throw .invalidInput("routed experts: \(tokenCount) tokens, \(layerCount) layers, top-k \(topK): expected counts >= 0 and top-k >= 1")
        }
        guard values.count == tokenCount * layerCount * topK else {
            throw .invalidInput("routed experts: \(values.count) values for [\(tokenCount), \(layerCount), \(topK)] (expected \(tokenCount * layerCount * topK))")
        }
        self.tokenCount = tokenCount
        self.layerCount = layerCount
        self.topK = topK
        self.values = values
    }

    /// Layer `layer`'s experts of every token, `[tokens, topK]` row-major (what `route` returns for one layer).
    public func layer(_ layer: Int) -> [Int32] {
        var out: [Int32] = []
        out.reserveCapacity(tokenCount * topK)
        for t in 0..<tokenCount {
            let start = (t * layerCount + layer) * topK
            out += values[start..<(start + topK)]
        }
        return out
    }

    /// The rows of tokens `range`.
    public func tokens(_ range: Range<Int>) throws(ModelError) -> RoutedExperts {
        guard range.lowerBound >= 0, range.upperBound <= tokenCount else {
            throw .invalidInput("routed experts: tokens \(range) of a record of \(tokenCount) tokens")
        }
        let width = layerCount * topK
        return try RoutedExperts(tokenCount: range.count, layerCount: layerCount, topK: topK,
                                 values: Array(values[(range.lowerBound * width)..<(range.upperBound * width)]))
    }

    /// Records joined along tokens, in order; they must agree on layers and top-k.
    public static func concatenating(_ parts: [RoutedExperts]) throws(ModelError) -> RoutedExperts {
        guard let first = parts.first else { throw .invalidInput("routed experts: nothing to concatenate") }
        for (index, part) in parts.enumerated() where part.layerCount != first.layerCount || part.topK != first.topK {
            throw .invalidInput("routed experts: part \(index) has \(part.layerCount) layers of top-\(part.topK), part 0 \(first.layerCount) of top-\(first.topK)")
        }
        return try RoutedExperts(tokenCount: parts.reduce(0) { $0 + $1.tokenCount }, layerCount: first.layerCount, topK: first.topK,
                                 values: parts.flatMap(\.values))
    }

    /// Layers `indices` of every token, in that order (a record of every hidden layer down to its sparse ones).
    public func selectingLayers(_ indices: [Int]) throws(ModelError) -> RoutedExperts {
        if let bad = indices.first(where: { $0 < 0 || $0 >= layerCount }) {
            throw .invalidInput("routed experts: layer \(bad) of a record of \(layerCount) layers")
        }
        var out: [Int32] = []
        out.reserveCapacity(tokenCount * indices.count * topK)
        for t in 0..<tokenCount {
            for l in indices {
                let start = (t * layerCount + l) * topK
                out += values[start..<(start + topK)]
            }
        }
        return try RoutedExperts(tokenCount: tokenCount, layerCount: indices.count, topK: topK, values: out)
    }

    /// This record's layers placed at `indices` of `layers` layers, zeros in the others (sparse layers to
    /// every hidden layer, as SGLang returns them).
    public func spreading(to layers: Int, at indices: [Int]) throws(ModelError) -> RoutedExperts {
        guard indices.count == layerCount, indices.allSatisfy({ $0 >= 0 && $0 < layers }), Set(indices).count == indices.count else {
            throw .invalidInput("routed experts: \(layerCount) layers cannot go to positions \(indices) of \(layers)")
        }
        var out = [Int32](repeating: 0, count: tokenCount * layers * topK)
        for t in 0..<tokenCount {
            for (l, target) in indices.enumerated() {
                let from = (t * layerCount + l) * topK, to = (t * layers + target) * topK
                for j in 0..<topK { out[to + j] = values[from + j] }
            }
        }
        return try RoutedExperts(tokenCount: tokenCount, layerCount: layers, topK: topK, values: out)
    }

    /// One more token whose experts in every layer are `0 ..< topK`: a valid choice for a row that no output
    /// depends on (the last token of a sequence, which the engine never runs through the model; slime pads it
    /// the same way).
    public func appendingPlaceholderToken() throws(ModelError) -> RoutedExperts {
        let row = (0..<layerCount).flatMap { _ in (0..<Int32(topK)).map { $0 } }
        return try RoutedExperts(tokenCount: tokenCount + 1, layerCount: layerCount, topK: topK, values: values + row)
    }
}

/// What a forward does with its sparse layers' choice of experts (slime's routing replay).
///
/// - `recording()`: every sparse layer keeps the experts `route` chose for every token; `recorded()` returns
///   them, `[tokens, sparse layers, topK]`, after the forward.
/// - `replaying(_:)`: every sparse layer routes each token to the given experts instead of choosing; the gate
///   weights still come from the current router logits (`Backend.routeWeights`), so the router is trained
///   through them, and everything after the choice (renormalisation, `routed_scaling_factor`) is as usual.
///
/// Dense layers neither record nor replay. One object serves one forward (and that forward's recomputation
/// in backward); its shape is checked against the forward's before any layer runs.
public final class ExpertRouting: Sendable {
    public enum Mode: Sendable, Equatable {
        case record, replay
    }

    public let mode: Mode
    let replayed: RoutedExperts?
    private let state = Mutex<(tokens: Int, topK: Int, layers: [[Int32]?])?>(nil)

    private init(mode: Mode, replayed: RoutedExperts?) {
        self.mode = mode
        self.replayed = replayed
    }

    public static func recording() -> ExpertRouting { ExpertRouting(mode: .record, replayed: nil) }

    public static func replaying(_ experts: RoutedExperts) -> ExpertRouting { ExpertRouting(mode: .replay, replayed: experts) }

    /// Checks the routing against a forward of `tokens` tokens through `sparseLayers` sparse layers of top-`topK`
    /// routing, and (recording) starts an empty record.
    func begin(tokens: Int, sparseLayers: Int, topK: Int) throws(ModelError) {
        if let replayed {
            guard replayed.layerCount == sparseLayers else {
                throw .invalidInput("routing replay: the record has \(replayed.layerCount) sparse layers, the model \(sparseLayers)")
            }
            guard sparseLayers == 0 || replayed.topK == topK else {
                throw .invalidInput("routing replay: the record has top-\(replayed.topK) experts per token, the model routes to \(topK)")
            }
            guard replayed.tokenCount == tokens else {
                throw .invalidInput("routing replay: the record has \(replayed.tokenCount) tokens, the forward \(tokens)")
            }
        }
        state.withLock { $0 = (tokens, topK, Array(repeating: nil, count: sparseLayers)) }
    }

    /// Replay: sparse layer `layer`'s experts, i32 `[tokens, topK]` on the host.
    func experts(sparseLayer layer: Int) -> Tensor? {
        guard let replayed else { return nil }
        return Tensor(int32: replayed.layer(layer), shape: [replayed.tokenCount, replayed.topK])
    }

    /// Record: sparse layer `layer` chose `experts` (i32 `[tokens, topK]` on the host).
    func record(sparseLayer layer: Int, experts: Tensor) throws(ModelError) {
        guard mode == .record else { return }
        let values = experts.toInt32s()
        try state.withLock { state throws(ModelError) in
            guard var current = state, layer < current.layers.count, experts.shape == [current.tokens, current.topK] else {
                throw .invalidInput("routing record: experts \(experts.shape) of sparse layer \(layer) do not fit the forward")
            }
            current.layers[layer] = values
            state = current
        }
    }

    /// Record: the experts of every sparse layer, `[tokens, sparse layers, topK]`. Throws when no forward ran
    /// or a layer is missing.
    public func recorded() throws(ModelError) -> RoutedExperts {
        if let replayed { return replayed }
        guard let current = state.withLock({ $0 }) else {
            throw .invalidInput("routing record: no forward has run with this record")
        }
        let (tokens, topK, layers) = (current.tokens, current.topK, current.layers)
        if let missing = layers.firstIndex(where: { $0 == nil }) {
            throw .invalidInput("routing record: sparse layer \(missing) recorded nothing (a forward that stopped early?)")
        }
        var values = [Int32](repeating: 0, count: tokens * layers.count * topK)
        for (l, layer) in layers.enumerated() {
            guard let layer else { continue }
            for t in 0..<tokens {
                let to = (t * layers.count + l) * topK
                for j in 0..<topK { values[to + j] = layer[t * topK + j] }
            }
        }
        return try RoutedExperts(tokenCount: tokens, layerCount: layers.count, topK: topK, values: values)
    }
}

extension ModelConfig {
    /// The indices of the layers that route tokens to experts, in order (empty for dense models).
    public var sparseLayerIndices: [Int] {
        guard let experts else { return [] }
        return experts.sparseLayers.indices.filter { experts.sparseLayers[$0] }
    }

    /// Experts per token of the sparse layers (0 for dense models).
    public var routedExpertsPerToken: Int { experts?.routing.topK ?? 0 }
}
