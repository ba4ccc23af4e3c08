import KiteTensor

/// Multi-head latent attention (DeepSeek-V2/V3, `LatentAttentionConfig`).
///
/// Two ways to compute the same scores:
/// - **Expanded** (training, and any forward over a packed batch): every token's latent `c` goes through
///   `kv_b_proj` to per-head keys `[W_uk c | rope(k_r)]` and values `W_uv c`, and attention runs as usual.
/// - **Absorbed** (inference over a cache): `q_nope . (W_uk c) = (W_uk^T q_nope) . c`, so each head's query is
///   moved into latent space instead and every head attends to the same cached rows `[c | rope(k_r)]` (one
///   key head), whose first `kv_lora_rank` columns also serve as the value; `W_uv` then maps each head's
///   latent output back. The cache holds `kv_lora_rank + qk_rope_head_dim` numbers per token and layer.
struct LatentAttention {
    let dims: LatentAttentionConfig
    let qProj: LinearWeight?
    let qAProj: LinearWeight?, qABias: Tensor?, qANorm: Tensor?, qBProj: LinearWeight?
    let kvAProj: LinearWeight, kvABias: Tensor?, kvANorm: Tensor, kvBProj: LinearWeight
    let oProj: LinearWeight, oBias: Tensor?
    /// Rotary columns in the order that pairs `(0, 1), (2, 3), ...` as `(i, i + d/2)`, and back.
    let deinterleave: [Int], interleave: [Int]

    /// transformers builds the two latent norms with their default epsilon, not `rms_norm_eps`.
    static let latentNormEpsilon: Float = 1e-6

    static func parameterShapes(prefix p: String, config: ModelConfig, dims m: LatentAttentionConfig) -> [(String, [Int])] {
        let (d, h) = (config.hiddenSize, config.attentionHeads)
        var shapes: [(String, [Int])] = []
        if let rank = m.queryRank {
            shapes.append((p + "q_a_proj.weight", [rank, d]))
            if m.bias { shapes.append((p + "q_a_proj.bias", [rank])) }
            shapes.append((p + "q_a_layernorm.weight", [rank]))
            shapes.append((p + "q_b_proj.weight", [h * m.queryHeadDim, rank]))
        } else {
            shapes.append((p + "q_proj.weight", [h * m.queryHeadDim, d]))
        }
        shapes.append((p + "kv_a_proj_with_mqa.weight", [m.cacheWidth, d]))
        if m.bias { shapes.append((p + "kv_a_proj_with_mqa.bias", [m.cacheWidth])) }
        shapes.append((p + "kv_a_layernorm.weight", [m.latentRank]))
        shapes.append((p + "kv_b_proj.weight", [h * (m.nopeHeadDim + m.valueHeadDim), m.latentRank]))
        shapes.append((p + "o_proj.weight", [d, h * m.valueHeadDim]))
        if m.bias { shapes.append((p + "o_proj.bias", [d])) }
        return shapes
    }

    init(prefix p: String, config: ModelConfig, dims m: LatentAttentionConfig, parameters: ParameterSet, buffers: ParameterSet) throws {
        let block = config.quantization?.blockSize ?? 128
        func projection(_ name: String) throws -> LinearWeight { try LinearWeight(p + name, parameters: parameters, buffers: buffers, blockSize: block) }
        func optional(_ name: String, _ present: Bool) throws -> Tensor? { present ? try parameters.require(p + name) : nil }
        dims = m
        let lowRank = m.queryRank != nil
        qProj = lowRank ? nil : try projection("q_proj.weight")
        qAProj = lowRank ? try projection("q_a_proj.weight") : nil
        qABias = try optional("q_a_proj.bias", lowRank && m.bias)
        qANorm = try optional("q_a_layernorm.weight", lowRank)
        qBProj = lowRank ? try projection("q_b_proj.weight") : nil
        kvAProj = try projection("kv_a_proj_with_mqa.weight")
        kvABias = try optional("kv_a_proj_with_mqa.bias", m.bias)
        kvANorm = try parameters.require(p + "kv_a_layernorm.weight")
        kvBProj = try projection("kv_b_proj.weight")
        oProj = try projection("o_proj.weight")
        oBias = try optional("o_proj.bias", m.bias)
        let half = m.ropeHeadDim / 2
        deinterleave = (0..<half).map { 2 * $0 } + (0..<half).map { 2 * $0 + 1 }
        var inverse = [Int](repeating: 0, count: m.ropeHeadDim)
        for (position, column) in deinterleave.enumerated() { inverse[column] = position }
        interleave = inverse
    }
}

/// What the expanded computation keeps for its backward.
struct LatentAttentionActivations {
    /// The query bottleneck `[T, q_lora_rank]`, before and after its norm (nil without one).
    var queryLatent: Tensor?
    var queryLatentNormed: Tensor?
    var queryLatentInverseRMS: Tensor?
    /// The compressed latent `[T, kv_lora_rank]`, before and after its norm.
    var latent: Tensor
    var latentNormed: Tensor
    var latentInverseRMS: Tensor
    /// Attention inputs `[T, heads, qk_head_dim]` (queries, keys) and `[T, heads, v_head_dim]` (values).
    var query: Tensor
    var key: Tensor
    var value: Tensor
    /// Attention output `[T, heads * v_head_dim]`, the output projection's input.
    var attention: Tensor
    var logSumExp: Tensor
}

extension Transformer {
    /// Latent attention of the normalised block input `normed` `[T, hidden]`: expanded over a packed batch,
    /// absorbed over a cache. Returns the output projection.
    func latentAttention(
        _ a: LatentAttention, layer: Int, normed x: Tensor, rope: RotaryTables, source: AttentionSource, keep: Bool
    ) throws -> (output: Tensor, activations: LatentAttentionActivations?) {
        let m = a.dims
        let (tokens, heads) = (x.shape[0], config.attentionHeads)
        // Queries, per head [nope | rope].
        var queryLatent: Tensor?, queryLatentNormed: Tensor?, queryLatentInverse: Tensor?
        let q: Tensor
        if let qAProj = a.qAProj, let qANorm = a.qANorm, let qBProj = a.qBProj {
            let bottleneck = try linear(x, qAProj, a.qABias)
            let (normedBottleneck, inverse) = try backend.rmsNorm(bottleneck, weight: qANorm, epsilon: LatentAttention.latentNormEpsilon)
            (queryLatent, queryLatentNormed, queryLatentInverse) = (bottleneck, normedBottleneck, inverse)
            q = try linear(normedBottleneck, qBProj, nil)
        } else if let qProj = a.qProj {
            q = try linear(x, qProj, nil)
        } else {
            throw ModelError.invalidInput("layer \(layer): latent attention has no query projection")
        }
        let queryParts = try backend.splitColumns(q.reshaped([tokens, heads, m.queryHeadDim]), widths: [m.nopeHeadDim, m.ropeHeadDim], summingGroups: nil)
        let queryRotated = try rotateLatent(queryParts[1], a, rope: rope, inverse: false)
        // The compressed latent and the one rotary key all heads share.
        let compressed = try linear(x, a.kvAProj, a.kvABias)
        let compressedParts = try backend.splitColumns(compressed, widths: [m.latentRank, m.ropeHeadDim], summingGroups: nil)
        let (latentNormed, latentInverse) = try backend.rmsNorm(compressedParts[0], weight: a.kvANorm, epsilon: LatentAttention.latentNormEpsilon)
        let keyRotated = try rotateLatent(compressedParts[1].reshaped([tokens, 1, m.ropeHeadDim]), a, rope: rope, inverse: false)

        switch source {
        case .cache(let cache):
            let output = try absorbedAttention(a, layer: layer, queryNope: queryParts[0], queryRotated: queryRotated, latentNormed: latentNormed, keyRotated: keyRotated, cache: cache)
            return (output, nil)
        case .packed(let layout):
            let expanded = try linear(latentNormed, a.kvBProj, nil).reshaped([tokens, heads, m.nopeHeadDim + m.valueHeadDim])
            let keyValue = try backend.splitColumns(expanded, widths: [m.nopeHeadDim, m.valueHeadDim], summingGroups: nil)
            let query = try backend.concatenateColumns([queryParts[0], queryRotated])
            let key = try backend.concatenateColumns([keyValue[0], keyRotated])
            let (attended, logSumExp) = try backend.attention(query: query, key: key, value: keyValue[1], layout: layout, scale: config.attentionScale)
            let attention = attended.reshaped([tokens, heads * m.valueHeadDim])
            let output = try linear(attention, a.oProj, a.oBias)
            guard keep else { return (output, nil) }
            return (output, LatentAttentionActivations(
                queryLatent: queryLatent, queryLatentNormed: queryLatentNormed, queryLatentInverseRMS: queryLatentInverse,
                latent: compressedParts[0], latentNormed: latentNormed, latentInverseRMS: latentInverse,
                query: query, key: key, value: keyValue[1], attention: attention, logSumExp: logSumExp))
        }
    }

    /// The absorbed computation over a cache of `[latent | rotated key]` rows.
    func absorbedAttention(
        _ a: LatentAttention, layer: Int, queryNope: Tensor, queryRotated: Tensor, latentNormed: Tensor, keyRotated: Tensor, cache: any KeyValueCache
    ) throws -> Tensor {
        let m = a.dims
        let (tokens, heads, rank) = (queryNope.shape[0], config.attentionHeads, m.latentRank)
        // kv_b_proj's rows per head are [W_uk (nope rows) | W_uv (value rows)], each against the latent.
        let upProjection = try a.kvBProj.materialized(backend).reshaped([heads, (m.nopeHeadDim + m.valueHeadDim) * rank])
        let perHead = try backend.splitColumns(upProjection, widths: [m.nopeHeadDim * rank, m.valueHeadDim * rank], summingGroups: nil)
        let keyUp = perHead[0].reshaped([heads, m.nopeHeadDim, rank]), valueUp = perHead[1].reshaped([heads, m.valueHeadDim, rank])
        // Each head's query in latent space: q_nope W_uk, [T, heads, rank].
        let queryLatent = try backend.swapLeadingDimensions(
            try backend.matmul(try backend.swapLeadingDimensions(queryNope), keyUp, transposeA: false, transposeB: false))
        let query = try backend.concatenateColumns([queryLatent, queryRotated])
        let row = try backend.concatenateColumns([latentNormed, keyRotated.reshaped([tokens, m.ropeHeadDim])]).reshaped([tokens, 1, m.cacheWidth])
        let attended = try cache.attendLatent(layer: layer, query: query, key: row, scale: config.attentionScale, backend: backend)
        let latentOutput = try backend.splitColumns(attended, widths: [rank, m.ropeHeadDim], summingGroups: nil)[0]
        // Back from latent space per head: o_latent W_uv^T, [T, heads, v_head_dim].
        let output = try backend.swapLeadingDimensions(
            try backend.matmul(try backend.swapLeadingDimensions(latentOutput), valueUp, transposeA: false, transposeB: true))
        return try linear(output.reshaped([tokens, heads * m.valueHeadDim]), a.oProj, a.oBias)
    }

    /// RoPE on the rotary columns `[T, heads, qk_rope_head_dim]`, in DeepSeek's interleaved pairing when the
    /// model uses it (the result is in the paired order; only dot products of queries and keys see it).
    /// `inverse` is the backward.
    func rotateLatent(_ x: Tensor, _ a: LatentAttention, rope: RotaryTables, inverse: Bool) throws -> Tensor {
        guard a.dims.interleavedRope else { return try backend.rope(x, cos: rope.cos, sin: rope.sin, inverse: inverse) }
        if inverse {
            return try backend.gatherColumns(try backend.rope(x, cos: rope.cos, sin: rope.sin, inverse: true), columns: a.interleave)
        }
        return try backend.rope(try backend.gatherColumns(x, columns: a.deinterleave), cos: rope.cos, sin: rope.sin, inverse: false)
    }

    /// Backward of the expanded computation: returns d(loss)/d(normed) and adds the weights' gradients.
    func latentAttentionBackward(
        _ a: LatentAttention, _ saved: LatentAttentionActivations, normed x: Tensor, dOutput: Tensor,
        layout: AttentionLayout, rope: RotaryTables, gradients g: GradientLookup
    ) throws -> Tensor {
        let m = a.dims
        let (tokens, heads) = (x.shape[0], config.attentionHeads)
        let dAttention = try linearBackward(dOutput, input: saved.attention, weight: a.oProj, weightGradient: try g("o_proj.weight"), biasGradient: try g.optional("o_proj.bias", a.oBias != nil))
        let (dQuery, dKey, dValue) = try backend.attentionBackward(
            dOutput: dAttention.reshaped([tokens, heads, m.valueHeadDim]), query: saved.query, key: saved.key, value: saved.value,
            output: saved.attention.reshaped([tokens, heads, m.valueHeadDim]), logSumExp: saved.logSumExp, layout: layout, scale: config.attentionScale)
        // Keys: per-head nope parts go back through kv_b_proj with the values; the shared rotary key sums its heads.
        let dKeyParts = try backend.splitColumns(dKey, widths: [m.nopeHeadDim, m.ropeHeadDim], summingGroups: [1, heads])
        let dExpanded = try backend.concatenateColumns([dKeyParts[0], dValue]).reshaped([tokens, heads * (m.nopeHeadDim + m.valueHeadDim)])
        let dLatentNormed = try linearBackward(dExpanded, input: saved.latentNormed, weight: a.kvBProj, weightGradient: try g("kv_b_proj.weight"), biasGradient: nil)
        let dLatent = try backend.rmsNormBackward(dLatentNormed, input: saved.latent, weight: a.kvANorm, inverseRMS: saved.latentInverseRMS, weightGradient: try g("kv_a_layernorm.weight"))
        let dKeyRope = try rotateLatent(dKeyParts[1].reshaped([tokens, 1, m.ropeHeadDim]), a, rope: rope, inverse: true)
        let dCompressed = try backend.concatenateColumns([dLatent, dKeyRope.reshaped([tokens, m.ropeHeadDim])])
        let dInput = try linearBackward(dCompressed, input: x, weight: a.kvAProj, weightGradient: try g("kv_a_proj_with_mqa.weight"), biasGradient: try g.optional("kv_a_proj_with_mqa.bias", a.kvABias != nil))
        // Queries.
        let dQueryParts = try backend.splitColumns(dQuery, widths: [m.nopeHeadDim, m.ropeHeadDim], summingGroups: nil)
        let dQueryRope = try rotateLatent(dQueryParts[1], a, rope: rope, inverse: true)
        let dQ = try backend.concatenateColumns([dQueryParts[0], dQueryRope]).reshaped([tokens, heads * m.queryHeadDim])
        if let qAProj = a.qAProj, let qANorm = a.qANorm, let qBProj = a.qBProj,
            let bottleneck = saved.queryLatent, let normedBottleneck = saved.queryLatentNormed, let inverse = saved.queryLatentInverseRMS
        {
            let dNormedBottleneck = try linearBackward(dQ, input: normedBottleneck, weight: qBProj, weightGradient: try g("q_b_proj.weight"), biasGradient: nil)
            let dBottleneck = try backend.rmsNormBackward(dNormedBottleneck, input: bottleneck, weight: qANorm, inverseRMS: inverse, weightGradient: try g("q_a_layernorm.weight"))
            try backend.accumulate(
                try linearBackward(dBottleneck, input: x, weight: qAProj, weightGradient: try g("q_a_proj.weight"), biasGradient: try g.optional("q_a_proj.bias", a.qABias != nil)),
                into: dInput, scale: 1)
        } else if let qProj = a.qProj {
            try backend.accumulate(try linearBackward(dQ, input: x, weight: qProj, weightGradient: try g("q_proj.weight"), biasGradient: nil), into: dInput, scale: 1)
        }
        return dInput
    }
}
