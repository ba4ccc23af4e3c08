import KiteTensor

/// Projections of one input read as a single matrix: grouped-query attention's q, k and v weights, or the
/// MLP's gate and up weights, when they lie back to back in one allocation (inference copies of a model are
/// laid out so, see `Transformer.clone(matrixDType:stackProjections:)`). One product then replaces two or
/// three, and its output rows hold the projections side by side. The separate weights stay views of the same
/// memory, so training code and weight syncs, which address them by name, see no difference.
struct StackedProjection {
    /// `[sum of the output widths, in]`.
    let weight: Tensor
    /// The biases stacked likewise, or nil when the projections have none.
    let bias: Tensor?

    /// Nil unless every weight is unquantised and they are consecutive views of one storage, and the biases
    /// are either all absent or consecutive likewise.
    init?(_ projections: [LinearWeight], biases: [Tensor?]) {
        guard projections.allSatisfy({ !$0.isQuantized }), let weight = Tensor.contiguousStack(projections.map(\.weight)) else { return nil }
        let present = biases.compactMap { $0 }
        if present.isEmpty {
            bias = nil
        } else {
            guard present.count == biases.count, let stacked = Tensor.contiguousStack(present) else { return nil }
            bias = stacked
        }
        self.weight = weight
    }

    /// Names of the weights (and biases) an inference copy stacks, in the order they are stacked: per
    /// layer with grouped-query attention, q/k/v; per layer with a dense MLP, gate/up.
    static func groups(_ config: ModelConfig) -> [[String]] {
        var groups: [[String]] = []
        for layer in 0..<config.layerCount {
            let p = DecoderLayer.prefix(layer)
            if config.latentAttention == nil {
                groups.append(["q_proj", "k_proj", "v_proj"].map { p + "self_attn.\($0).weight" })
                if config.qkvBias { groups.append(["q_proj", "k_proj", "v_proj"].map { p + "self_attn.\($0).bias" }) }
            }
            if !DecoderLayer.isSparse(layer, config: config) {
                groups.append(["gate_proj", "up_proj"].map { p + "mlp.\($0).weight" })
                if config.mlpBias { groups.append(["gate_proj", "up_proj"].map { p + "mlp.\($0).bias" }) }
            }
        }
        return groups
    }
}

extension Transformer {
    /// `y = x W^T + b` over the stacked weight.
    func linear(_ x: Tensor, _ stacked: StackedProjection) throws -> Tensor {
        let y = try backend.matmul(x, stacked.weight, transposeA: false, transposeB: true)
        if let bias = stacked.bias { try backend.addBias(y, bias: bias) }
        return y
    }

    /// Fresh tensors on the backend for `set`'s members of the stacked groups: one allocation per group whose
    /// members are all present, floating-point and unquantised, of one stored dtype and trailing shape, and a
    /// view of it per member (filled by the caller). `dtype` maps a source tensor to the dtype of its copy.
    func stackedCopies(of set: ParameterSet, dtype: (Tensor) -> DType) throws -> [String: Tensor] {
        var views: [String: Tensor] = [:]
        for group in StackedProjection.groups(config) {
            let members = group.compactMap { set[$0] }
            guard members.count == group.count, let first = members.first, first.rank >= 1 else { continue }
            let target = dtype(first)
            let trailing = Array(first.shape.dropFirst())
            guard members.allSatisfy({ $0.dtype.isFloatingPoint && $0.dtype != .fp8e4m3 && $0.dtype != .fp8e5m2 && dtype($0) == target && Array($0.shape.dropFirst()) == trailing })
            else { continue }
            let stacked = try backend.zeros([members.reduce(0) { $0 + $1.shape[0] }] + trailing, dtype: target)
            var row = 0
            for (name, member) in zip(group, members) {
                views[name] = stacked.rows(row..<(row + member.shape[0]))
                row += member.shape[0]
            }
        }
        return views
    }
}
