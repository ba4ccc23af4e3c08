import KiteTensor

extension Transformer {
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
                let (_, recomputed) = try layerForward(
                    layer, tape.layerInputs[layer.index], rope: tape.rope, attention: .packed(tape.layout), keep: true, record: false, routing: tape.routing)
                guard let recomputed else { throw ModelError.invalidInput("recomputing layer \(layer.index) kept nothing") }
                activations = recomputed
            } else {
                activations = tape.layers[layer.index]
            }
            dx = try layerBackward(layer, activations, dOutput: dx, layout: tape.layout, rope: tape.rope, gradients: gradients)
        }
        try backend.embeddingBackward(dOutput: dx, ids: tape.tokens, tableGradient: embeddingGradient)
    }

    func layerBackward(_ layer: DecoderLayer, _ a: LayerActivations, dOutput: Tensor, layout: AttentionLayout, rope: RotaryTables, gradients: ParameterSet) throws -> Tensor {
        let p = DecoderLayer.prefix(layer.index)
        let g = GradientLookup(gradients: gradients, prefix: p)
        // Feed-forward half: output = middle + mlp(n2), n2 = norm(middle).
        let mlpGradients = GradientLookup(gradients: gradients, prefix: p + "mlp.")
        let dNormed2: Tensor
        switch (layer.mlp, a.mlp) {
        case (.dense(let mlp), .dense(let saved)):
            dNormed2 = try feedForwardBackward(mlp, saved, input: a.normed2, dOutput: dOutput, gradients: mlpGradients)
        case (.experts(let mlp), .experts(let saved)):
            dNormed2 = try mixtureOfExpertsBackward(mlp, saved, input: a.normed2, dOutput: dOutput, gradients: mlpGradients)
        default:
            throw ModelError.invalidInput("layer \(layer.index): activations of another kind of MLP")
        }
        let dMiddle = try backend.rmsNormBackward(dNormed2, input: a.middle, weight: layer.postNorm, inverseRMS: a.inverseRMS2, weightGradient: try g("post_attention_layernorm.weight"))
        try backend.accumulate(dOutput, into: dMiddle, scale: 1)

        // Attention half: middle = x + attention(n1), n1 = norm(x).
        let attentionGradients = GradientLookup(gradients: gradients, prefix: p + "self_attn.")
        let dNormed: Tensor
        switch (layer.attention, a.attention) {
        case (.grouped(let attention), .grouped(let saved)):
            dNormed = try groupedQueryAttentionBackward(attention, saved, normed: a.normed, dOutput: dMiddle, layout: layout, rope: rope, gradients: attentionGradients)
        case (.latent(let attention), .latent(let saved)):
            dNormed = try latentAttentionBackward(attention, saved, normed: a.normed, dOutput: dMiddle, layout: layout, rope: rope, gradients: attentionGradients)
        default:
            throw ModelError.invalidInput("layer \(layer.index): activations of another kind of attention")
        }
        let dInput = try backend.rmsNormBackward(dNormed, input: a.input, weight: layer.inputNorm, inverseRMS: a.inverseRMS, weightGradient: try g("input_layernorm.weight"))
        try backend.accumulate(dMiddle, into: dInput, scale: 1)
        return dInput
    }
}
