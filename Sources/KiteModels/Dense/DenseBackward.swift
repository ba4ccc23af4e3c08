import KiteTensor

extension DenseTransformer {
    /// Backward of a training forward: adds d(loss)/d(parameter) into `gradients` (same names as
    /// `parameters`), given d(loss)/d(logprob) and d(loss)/d(entropy) per row.
    public func backward(_ tape: ForwardTape, dLogprobs: Tensor, dEntropy: Tensor, gradients: ParameterSet) throws {
        guard let finalInput = tape.finalInput, let finalNormed = tape.finalNormed, let finalInverseRMS = tape.finalInverseRMS else {
            throw ModelError.invalidInput("backward needs a forward run with keepActivations: true")
        }
        let embeddingGradient = try gradients.require("model.embed_tokens.weight", source: "gradients")
        let outputGradient = config.tieWordEmbeddings ? embeddingGradient : try gradients.require("lm_head.weight", source: "gradients")
        let dNormed = try backend.logprobsAndEntropyBackward(
            dLogprobs: dLogprobs, dEntropy: dEntropy, hidden: finalNormed, weight: outputWeight, targets: tape.targets,
            temperature: tape.temperature, weightGradient: outputGradient)
        var dx = try backend.rmsNormBackward(
            dNormed, input: finalInput, weight: finalNorm, inverseRMS: finalInverseRMS,
            weightGradient: try gradients.require("model.norm.weight", source: "gradients"))
        for layer in layers.reversed() {
            let activations: LayerActivations
            if tape.recompute {
                let (_, recomputed) = try layerForward(layer, tape.layerInputs[layer.index], cos: tape.cos, sin: tape.sin, attention: .packed(tape.layout), keep: true)
                guard let recomputed else { throw ModelError.invalidInput("recomputing layer \(layer.index) kept nothing") }
                activations = recomputed
            } else {
                activations = tape.layers[layer.index]
            }
            dx = try layerBackward(layer, activations, dOutput: dx, layout: tape.layout, cos: tape.cos, sin: tape.sin,
                                   gradients: try DenseLayerGradients(layer: layer, gradients: gradients))
        }
        try backend.embeddingBackward(dOutput: dx, ids: tape.tokens, tableGradient: embeddingGradient)
    }

    /// `y = x W^T + b`: returns dx, adds dW and db.
    func linearBackward(_ dOutput: Tensor, input: Tensor, weight: Tensor, weightGradient: Tensor, biasGradient: Tensor?) throws -> Tensor {
        try backend.matmul(dOutput, input, transposeA: true, transposeB: false, into: weightGradient, alpha: 1, beta: 1)
        if let biasGradient { try backend.accumulateColumnSums(dOutput, into: biasGradient) }
        return try backend.matmul(dOutput, weight, transposeA: false, transposeB: false)
    }

    func layerBackward(_ layer: DenseLayer, _ a: LayerActivations, dOutput: Tensor, layout: AttentionLayout, cos: Tensor, sin: Tensor, gradients g: DenseLayerGradients) throws -> Tensor {
        let tokens = dOutput.shape[0]
        let (heads, kvHeads, headDim) = (config.attentionHeads, config.keyValueHeads, config.headDim)
        // Feed-forward half: output = middle + down(swiglu(gate(n2), up(n2))), n2 = norm(middle).
        let dActivated = try linearBackward(dOutput, input: a.activated, weight: layer.downProj, weightGradient: g.downProj, biasGradient: g.downBias)
        let (dGate, dUp) = try backend.swigluBackward(dOutput: dActivated, gate: a.gate, up: a.up)
        let dNormed2 = try linearBackward(dGate, input: a.normed2, weight: layer.gateProj, weightGradient: g.gateProj, biasGradient: g.gateBias)
        try backend.accumulate(
            try linearBackward(dUp, input: a.normed2, weight: layer.upProj, weightGradient: g.upProj, biasGradient: g.upBias),
            into: dNormed2, scale: 1)
        let dMiddle = try backend.rmsNormBackward(dNormed2, input: a.middle, weight: layer.postNorm, inverseRMS: a.inverseRMS2, weightGradient: g.postNorm)
        try backend.accumulate(dOutput, into: dMiddle, scale: 1)

        // Attention half: middle = x + o(attention(rope(q), rope(k), v)), q/k/v projections of n1 = norm(x).
        let dAttention = try linearBackward(dMiddle, input: a.attention, weight: layer.oProj, weightGradient: g.oProj, biasGradient: g.oBias)
        guard let logSumExp = a.logSumExp else { throw ModelError.invalidInput("layer \(layer.index) ran without packed attention; nothing to differentiate") }
        let (dQuery, dKey, dValue) = try backend.attentionBackward(
            dOutput: dAttention.reshaped([tokens, heads, headDim]), query: a.query, key: a.key, value: a.value,
            output: a.attention.reshaped([tokens, heads, headDim]), logSumExp: logSumExp, layout: layout, scale: attentionScale)
        var dQueryProjected = try backend.rope(dQuery, cos: cos, sin: sin, inverse: true)
        var dKeyProjected = try backend.rope(dKey, cos: cos, sin: sin, inverse: true)
        if let qNorm = layer.qNorm, let kNorm = layer.kNorm, let qInverse = a.queryNormInverseRMS, let kInverse = a.keyNormInverseRMS {
            dQueryProjected = try backend.rmsNormBackward(dQueryProjected, input: a.queryProjected, weight: qNorm, inverseRMS: qInverse, weightGradient: g.qNorm)
            dKeyProjected = try backend.rmsNormBackward(dKeyProjected, input: a.keyProjected, weight: kNorm, inverseRMS: kInverse, weightGradient: g.kNorm)
        }
        let dNormed = try linearBackward(dQueryProjected.reshaped([tokens, heads * headDim]), input: a.normed, weight: layer.qProj, weightGradient: g.qProj, biasGradient: g.qBias)
        try backend.accumulate(
            try linearBackward(dKeyProjected.reshaped([tokens, kvHeads * headDim]), input: a.normed, weight: layer.kProj, weightGradient: g.kProj, biasGradient: g.kBias),
            into: dNormed, scale: 1)
        try backend.accumulate(
            try linearBackward(dValue.reshaped([tokens, kvHeads * headDim]), input: a.normed, weight: layer.vProj, weightGradient: g.vProj, biasGradient: g.vBias),
            into: dNormed, scale: 1)
        let dInput = try backend.rmsNormBackward(dNormed, input: a.input, weight: layer.inputNorm, inverseRMS: a.inverseRMS, weightGradient: g.inputNorm)
        try backend.accumulate(dMiddle, into: dInput, scale: 1)
        return dInput
    }
}
