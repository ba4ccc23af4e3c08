import KiteTensor

/// Grouped-query attention, as llama, qwen2, qwen3 and qwen3_moe compute it: q/k/v projections (optional
/// biases), optional per-head RMSNorm of queries and keys (qwen3), RoPE, causal softmax attention over the
/// packed batch or the cache, output projection. Weights are `<prefix>{q,k,v,o}_proj.*` and `<prefix>{q,k}_norm.weight`.
struct GroupedQueryAttention {
    let qProj: LinearWeight, kProj: LinearWeight, vProj: LinearWeight, oProj: LinearWeight
    let qBias: Tensor?, kBias: Tensor?, vBias: Tensor?, oBias: Tensor?
    let qNorm: Tensor?, kNorm: Tensor?
    /// q, k and v as one product, when the weights lie back to back (an inference copy of the model).
    let stackedQKV: StackedProjection?

    static func parameterShapes(prefix p: String, config: ModelConfig) -> [(String, [Int])] {
        let (d, q, kv) = (config.hiddenSize, config.queryWidth, config.keyValueWidth)
        var shapes: [(String, [Int])] = [(p + "q_proj.weight", [q, d])]
        if config.qkvBias { shapes.append((p + "q_proj.bias", [q])) }
        shapes.append((p + "k_proj.weight", [kv, d]))
        if config.qkvBias { shapes.append((p + "k_proj.bias", [kv])) }
        shapes.append((p + "v_proj.weight", [kv, d]))
        if config.qkvBias { shapes.append((p + "v_proj.bias", [kv])) }
        shapes.append((p + "o_proj.weight", [d, q]))
        if config.outputBias { shapes.append((p + "o_proj.bias", [d])) }
        if config.queryKeyNorm {
            shapes.append((p + "q_norm.weight", [config.headDim]))
            shapes.append((p + "k_norm.weight", [config.headDim]))
        }
        return shapes
    }

    init(prefix p: String, config: ModelConfig, parameters: ParameterSet, buffers: ParameterSet) throws {
        let block = config.quantization?.blockSize ?? 128
        func projection(_ name: String) throws -> LinearWeight { try LinearWeight(p + name, parameters: parameters, buffers: buffers, blockSize: block) }
        func optional(_ name: String, _ present: Bool) throws -> Tensor? { present ? try parameters.require(p + name) : nil }
        qProj = try projection("q_proj.weight")
        kProj = try projection("k_proj.weight")
        vProj = try projection("v_proj.weight")
        oProj = try projection("o_proj.weight")
        qBias = try optional("q_proj.bias", config.qkvBias)
        kBias = try optional("k_proj.bias", config.qkvBias)
        vBias = try optional("v_proj.bias", config.qkvBias)
        oBias = try optional("o_proj.bias", config.outputBias)
        qNorm = try optional("q_norm.weight", config.queryKeyNorm)
        kNorm = try optional("k_norm.weight", config.queryKeyNorm)
        stackedQKV = StackedProjection([qProj, kProj, vProj], biases: [qBias, kBias, vBias])
    }
}

/// What grouped-query attention keeps for its backward.
struct GroupedQueryAttentionActivations {
    /// Query and key projections `[T, heads, headDim]` before the per-head norm and RoPE.
    var queryProjected: Tensor
    var keyProjected: Tensor
    var queryNormInverseRMS: Tensor?
    var keyNormInverseRMS: Tensor?
    /// Attention inputs: rotated queries and keys, and values.
    var query: Tensor
    var key: Tensor
    var value: Tensor
    /// Attention output `[T, heads * headDim]`, the output projection's input.
    var attention: Tensor
    var logSumExp: Tensor?
}

extension Transformer {
    /// Attention of the normalised block input `normed` `[T, hidden]`; returns the output projection.
    func groupedQueryAttention(
        _ a: GroupedQueryAttention, layer: Int, normed: Tensor, rope: RotaryTables, source: AttentionSource, keep: Bool
    ) throws -> (output: Tensor, activations: GroupedQueryAttentionActivations?) {
        let tokens = normed.shape[0]
        let (heads, kvHeads, headDim) = (config.attentionHeads, config.keyValueHeads, config.headDim)
        if !keep, case .cache(let cache) = source, let stacked = a.stackedQKV {
            // Inference over the cache: one product for q, k and v, and the norms, RoPE and cache store
            // that follow it in one backend operation (one kernel on accelerators).
            let projections = PackedAttentionProjections(
                projections: try linear(normed, stacked), queryHeads: heads, keyValueHeads: kvHeads, headDim: headDim,
                queryNorm: a.qNorm, keyNorm: a.kNorm, epsilon: config.rmsNormEpsilon, cos: rope.cos, sin: rope.sin)
            let attended = try cache.attend(layer: layer, projections: projections, scale: config.attentionScale, backend: backend)
            return (try linear(attended.reshaped([tokens, heads * headDim]), a.oProj, a.oBias), nil)
        }
        let queryProjected = try linear(normed, a.qProj, a.qBias).reshaped([tokens, heads, headDim])
        let keyProjected = try linear(normed, a.kProj, a.kBias).reshaped([tokens, kvHeads, headDim])
        let value = try linear(normed, a.vProj, a.vBias).reshaped([tokens, kvHeads, headDim])
        var queryNormed = queryProjected, keyNormed = keyProjected
        var queryNormInverse: Tensor?, keyNormInverse: Tensor?
        if let qNorm = a.qNorm, let kNorm = a.kNorm {
            let q = try backend.rmsNorm(queryProjected, weight: qNorm, epsilon: config.rmsNormEpsilon)
            let k = try backend.rmsNorm(keyProjected, weight: kNorm, epsilon: config.rmsNormEpsilon)
            (queryNormed, queryNormInverse) = (q.output, q.inverseRMS)
            (keyNormed, keyNormInverse) = (k.output, k.inverseRMS)
        }
        let query = try backend.rope(queryNormed, cos: rope.cos, sin: rope.sin, inverse: false)
        let key = try backend.rope(keyNormed, cos: rope.cos, sin: rope.sin, inverse: false)
        let attended: Tensor
        var logSumExp: Tensor?
        switch source {
        case .packed(let layout):
            (attended, logSumExp) = try backend.attention(query: query, key: key, value: value, layout: layout, scale: config.attentionScale)
        case .cache(let cache):
            attended = try cache.attend(layer: layer, query: query, key: key, value: value, scale: config.attentionScale, backend: backend)
        }
        let attention = attended.reshaped([tokens, heads * headDim])
        let output = try linear(attention, a.oProj, a.oBias)
        guard keep else { return (output, nil) }
        return (output, GroupedQueryAttentionActivations(
            queryProjected: queryProjected, keyProjected: keyProjected, queryNormInverseRMS: queryNormInverse,
            keyNormInverseRMS: keyNormInverse, query: query, key: key, value: value, attention: attention, logSumExp: logSumExp))
    }

    /// Backward of `groupedQueryAttention`: returns d(loss)/d(normed) and adds the weights' gradients under `prefix`.
    func groupedQueryAttentionBackward(
        _ a: GroupedQueryAttention, _ saved: GroupedQueryAttentionActivations, normed: Tensor, dOutput: Tensor,
        layout: AttentionLayout, rope: RotaryTables, gradients g: GradientLookup
    ) throws -> Tensor {
        let tokens = dOutput.shape[0]
        let (heads, kvHeads, headDim) = (config.attentionHeads, config.keyValueHeads, config.headDim)
        let dAttention = try linearBackward(dOutput, input: saved.attention, weight: a.oProj, weightGradient: try g("o_proj.weight"), biasGradient: try g.optional("o_proj.bias", a.oBias != nil))
        guard let logSumExp = saved.logSumExp else { throw ModelError.invalidInput("attention ran without packed sequences; nothing to differentiate") }
        let (dQuery, dKey, dValue) = try backend.attentionBackward(
            dOutput: dAttention.reshaped([tokens, heads, headDim]), query: saved.query, key: saved.key, value: saved.value,
            output: saved.attention.reshaped([tokens, heads, headDim]), logSumExp: logSumExp, layout: layout, scale: config.attentionScale)
        var dQueryProjected = try backend.rope(dQuery, cos: rope.cos, sin: rope.sin, inverse: true)
        var dKeyProjected = try backend.rope(dKey, cos: rope.cos, sin: rope.sin, inverse: true)
        if let qNorm = a.qNorm, let kNorm = a.kNorm, let qInverse = saved.queryNormInverseRMS, let kInverse = saved.keyNormInverseRMS {
            dQueryProjected = try backend.rmsNormBackward(dQueryProjected, input: saved.queryProjected, weight: qNorm, inverseRMS: qInverse, weightGradient: try g("q_norm.weight"))
            dKeyProjected = try backend.rmsNormBackward(dKeyProjected, input: saved.keyProjected, weight: kNorm, inverseRMS: kInverse, weightGradient: try g("k_norm.weight"))
        }
        let dNormed = try linearBackward(dQueryProjected.reshaped([tokens, heads * headDim]), input: normed, weight: a.qProj, weightGradient: try g("q_proj.weight"), biasGradient: try g.optional("q_proj.bias", a.qBias != nil))
        try backend.accumulate(
            try linearBackward(dKeyProjected.reshaped([tokens, kvHeads * headDim]), input: normed, weight: a.kProj, weightGradient: try g("k_proj.weight"), biasGradient: try g.optional("k_proj.bias", a.kBias != nil)),
            into: dNormed, scale: 1)
        try backend.accumulate(
            try linearBackward(dValue.reshaped([tokens, kvHeads * headDim]), input: normed, weight: a.vProj, weightGradient: try g("v_proj.weight"), biasGradient: try g.optional("v_proj.bias", a.vBias != nil)),
            into: dNormed, scale: 1)
        return dNormed
    }
}
