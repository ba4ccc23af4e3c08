/// How many tokens each expert of each sparse layer received: the router's load balance, a training and
/// serving metric of mixture-of-experts models.
public struct ExpertLoad: Sendable, Equatable {
    /// Sparse layer index to tokens per expert.
    public var tokensPerExpert: [Int: [Int]]

    public init(tokensPerExpert: [Int: [Int]] = [:]) {
        self.tokensPerExpert = tokensPerExpert
    }

    public var isEmpty: Bool { tokensPerExpert.isEmpty }

    /// Adds one dispatch's counts for `layer`.
    public mutating func add(layer: Int, counts: [Int]) {
        if let existing = tokensPerExpert[layer], existing.count == counts.count {
            tokensPerExpert[layer] = zip(existing, counts).map { $0 + $1 }
        } else {
            tokensPerExpert[layer] = counts
        }
    }

    public mutating func merge(_ other: ExpertLoad) {
        for (layer, counts) in other.tokensPerExpert { add(layer: layer, counts: counts) }
    }

    /// Per layer: the busiest expert's tokens over the mean (1 is perfectly balanced; the number of experts
    /// means one expert took everything).
    public var imbalance: [Int: Double] {
        tokensPerExpert.compactMapValues { counts in
            let total = counts.reduce(0, +)
            guard total > 0, !counts.isEmpty else { return nil }
            return Double(counts.max() ?? 0) * Double(counts.count) / Double(total)
        }
    }

    /// The largest per-layer imbalance (0 when nothing was routed).
    public var maxImbalance: Double { imbalance.values.max() ?? 0 }

    /// The mean per-layer imbalance (0 when nothing was routed).
    public var meanImbalance: Double {
        let values = imbalance.values
        return values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
    }

    /// Token-expert assignments counted, over all layers.
    public var assignments: Int { tokensPerExpert.values.reduce(0) { $0 + $1.reduce(0, +) } }

    /// Experts that received no token, summed over layers.
    public var idleExperts: Int { tokensPerExpert.values.reduce(0) { $0 + $1.filter { $0 == 0 }.count } }

    /// Named scalars for the metrics log: `<prefix>/expert_load_imbalance_max` and `_mean`,
    /// `<prefix>/expert_idle_count`, and `<prefix>/expert_load_imbalance/layer_N` per sparse layer.
    /// Empty when nothing was routed.
    public func metrics(prefix: String) -> [(name: String, value: Double)] {
        let perLayer = imbalance
        guard !perLayer.isEmpty else { return [] }
        var result: [(name: String, value: Double)] = [
            (prefix + "/expert_load_imbalance_max", maxImbalance),
            (prefix + "/expert_load_imbalance_mean", meanImbalance),
            (prefix + "/expert_idle_count", Double(idleExperts)),
        ]
        for layer in perLayer.keys.sorted() {
            result.append((prefix + "/expert_load_imbalance/layer_\(layer)", perLayer[layer] ?? 0))
        }
        return result
    }
}
