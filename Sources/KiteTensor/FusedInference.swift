/// One product's output over stacked q, k and v weights, and what turns it into attention inputs: each row
/// `[(queryHeads + 2 * keyValueHeads) * headDim]` holds a token's query heads, then its key heads, then its
/// value heads. Queries and keys get the per-head RMSNorm when `queryNorm` / `keyNorm` are given (qwen3),
/// then RoPE with `cos` / `sin` `[T, headDim / 2]`, exactly as `rmsNorm` and `rope` compute them.
public struct PackedAttentionProjections: @unchecked Sendable {
    public var projections: Tensor
    public var queryHeads: Int
    public var keyValueHeads: Int
    public var headDim: Int
    public var queryNorm: Tensor?
    public var keyNorm: Tensor?
    public var epsilon: Float
    public var cos: Tensor
    public var sin: Tensor

    public init(
        projections: Tensor, queryHeads: Int, keyValueHeads: Int, headDim: Int, queryNorm: Tensor?, keyNorm: Tensor?,
        epsilon: Float, cos: Tensor, sin: Tensor
    ) {
        self.projections = projections
        self.queryHeads = queryHeads
        self.keyValueHeads = keyValueHeads
        self.headDim = headDim
        self.queryNorm = queryNorm
        self.keyNorm = keyNorm
        self.epsilon = epsilon
        self.cos = cos
        self.sin = sin
    }

    /// Tokens (rows of `projections`).
    public var tokens: Int { projections.shape.first ?? 0 }
    /// Columns of one row.
    public var width: Int { (queryHeads + 2 * keyValueHeads) * headDim }

    /// Checks the shapes against each other, naming `operation` in the error.
    public func validate(_ operation: String) throws {
        guard queryHeads > 0, keyValueHeads > 0, headDim > 0, headDim % 2 == 0, projections.rank == 2, projections.shape[1] == width,
            cos.shape == [tokens, headDim / 2], sin.shape == cos.shape,
            queryNorm.map({ $0.shape == [headDim] }) ?? true, keyNorm.map({ $0.shape == [headDim] }) ?? true
        else {
            throw KiteTensorError.shapeMismatch(
                operation: operation,
                detail: "projections \(projections.shape) for \(queryHeads) + 2 x \(keyValueHeads) heads of \(headDim), cos \(cos.shape), sin \(sin.shape), norms \(queryNorm?.shape ?? []) / \(keyNorm?.shape ?? [])")
        }
    }

    /// Rotated queries `[T, Hq, D]`, rotated keys and values `[T, Hkv, D]`, computed with `backend`'s
    /// separate operations (split, per-head norms, RoPE): what the fused kernels must reproduce.
    public func attentionInputs(on backend: any Backend) throws -> (query: Tensor, key: Tensor, value: Tensor) {
        try validate("attentionInputs")
        let (q, kv) = (queryHeads * headDim, keyValueHeads * headDim)
        let parts = try backend.splitColumns(projections, widths: [q, kv, kv], summingGroups: nil)
        var query = parts[0].reshaped([tokens, queryHeads, headDim]), key = parts[1].reshaped([tokens, keyValueHeads, headDim])
        if let queryNorm { query = try backend.rmsNorm(query, weight: queryNorm, epsilon: epsilon).output }
        if let keyNorm { key = try backend.rmsNorm(key, weight: keyNorm, epsilon: epsilon).output }
        return (try backend.rope(query, cos: cos, sin: sin, inverse: false), try backend.rope(key, cos: cos, sin: sin, inverse: false),
                parts[2].reshaped([tokens, keyValueHeads, headDim]))
    }
}

/// The fused inference steps as compositions of the separate operations. The CPU backend runs these as they
/// are (so its results are those of the separate operations, bit for bit); accelerators override them with
/// single kernels of the same arithmetic and fall back to these where a kernel does not cover a shape.
extension Backend {
    public func addRMSNorm(_ x: Tensor, into target: Tensor, weight: Tensor, epsilon: Float) throws -> Tensor {
        try composedAddRMSNorm(x, into: target, weight: weight, epsilon: epsilon)
    }

    public func swiglu(packed: Tensor) throws -> Tensor {
        try composedSwiglu(packed: packed)
    }

    public func rotateAndCache(_ projections: PackedAttentionProjections, keyCache: Tensor, valueCache: Tensor, slotIndices: Tensor) throws -> Tensor {
        try composedRotateAndCache(projections, keyCache: keyCache, valueCache: valueCache, slotIndices: slotIndices)
    }

    /// `addRMSNorm` as `accumulate`, then `rmsNorm`.
    public func composedAddRMSNorm(_ x: Tensor, into target: Tensor, weight: Tensor, epsilon: Float) throws -> Tensor {
        try accumulate(x, into: target, scale: 1)
        return try rmsNorm(target, weight: weight, epsilon: epsilon).output
    }

    /// `swiglu(packed:)` as `splitColumns`, then `swiglu(gate:up:)`.
    public func composedSwiglu(packed: Tensor) throws -> Tensor {
        guard let columns = packed.shape.last, columns % 2 == 0 else {
            throw KiteTensorError.shapeMismatch(operation: "swiglu(packed:)", detail: "input \(packed.shape), expected an even last dimension")
        }
        let halves = try splitColumns(packed, widths: [columns / 2, columns / 2], summingGroups: nil)
        return try swiglu(gate: halves[0], up: halves[1])
    }

    /// `rotateAndCache` as `PackedAttentionProjections.attentionInputs`, then `storeKeyValues`.
    public func composedRotateAndCache(_ projections: PackedAttentionProjections, keyCache: Tensor, valueCache: Tensor, slotIndices: Tensor) throws -> Tensor {
        let (query, key, value) = try projections.attentionInputs(on: self)
        try storeKeyValues(key: key, value: value, keyCache: keyCache, valueCache: valueCache, slotIndices: slotIndices)
        return query
    }
}
