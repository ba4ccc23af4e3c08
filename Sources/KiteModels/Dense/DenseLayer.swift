import KiteTensor

/// The weights of one decoder block, bound by Hugging Face name.
struct DenseLayer {
    let index: Int
    let inputNorm: Tensor
    let qProj: Tensor, kProj: Tensor, vProj: Tensor, oProj: Tensor
    let qBias: Tensor?, kBias: Tensor?, vBias: Tensor?, oBias: Tensor?
    let qNorm: Tensor?, kNorm: Tensor?
    let postNorm: Tensor
    let gateProj: Tensor, upProj: Tensor, downProj: Tensor
    let gateBias: Tensor?, upBias: Tensor?, downBias: Tensor?

    static func prefix(_ layer: Int) -> String { "model.layers.\(layer)." }

    static func parameterShapes(layer: Int, config: ModelConfig) -> [(String, [Int])] {
        let p = prefix(layer)
        let (d, q, kv, i) = (config.hiddenSize, config.queryWidth, config.keyValueWidth, config.intermediateSize)
        var shapes: [(String, [Int])] = [(p + "input_layernorm.weight", [d])]
        shapes.append((p + "self_attn.q_proj.weight", [q, d]))
        if config.qkvBias { shapes.append((p + "self_attn.q_proj.bias", [q])) }
        shapes.append((p + "self_attn.k_proj.weight", [kv, d]))
        if config.qkvBias { shapes.append((p + "self_attn.k_proj.bias", [kv])) }
        shapes.append((p + "self_attn.v_proj.weight", [kv, d]))
        if config.qkvBias { shapes.append((p + "self_attn.v_proj.bias", [kv])) }
        shapes.append((p + "self_attn.o_proj.weight", [d, q]))
        if config.outputBias { shapes.append((p + "self_attn.o_proj.bias", [d])) }
        if config.queryKeyNorm {
            shapes.append((p + "self_attn.q_norm.weight", [config.headDim]))
            shapes.append((p + "self_attn.k_norm.weight", [config.headDim]))
        }
        shapes.append((p + "post_attention_layernorm.weight", [d]))
        shapes.append((p + "mlp.gate_proj.weight", [i, d]))
        if config.mlpBias { shapes.append((p + "mlp.gate_proj.bias", [i])) }
        shapes.append((p + "mlp.up_proj.weight", [i, d]))
        if config.mlpBias { shapes.append((p + "mlp.up_proj.bias", [i])) }
        shapes.append((p + "mlp.down_proj.weight", [d, i]))
        if config.mlpBias { shapes.append((p + "mlp.down_proj.bias", [d])) }
        return shapes
    }

    init(index: Int, config: ModelConfig, parameters: ParameterSet) throws {
        let p = Self.prefix(index)
        func required(_ name: String) throws -> Tensor { try parameters.require(p + name) }
        func optional(_ name: String, _ present: Bool) throws -> Tensor? { present ? try parameters.require(p + name) : nil }
        self.index = index
        inputNorm = try required("input_layernorm.weight")
        qProj = try required("self_attn.q_proj.weight")
        kProj = try required("self_attn.k_proj.weight")
        vProj = try required("self_attn.v_proj.weight")
        oProj = try required("self_attn.o_proj.weight")
        qBias = try optional("self_attn.q_proj.bias", config.qkvBias)
        kBias = try optional("self_attn.k_proj.bias", config.qkvBias)
        vBias = try optional("self_attn.v_proj.bias", config.qkvBias)
        oBias = try optional("self_attn.o_proj.bias", config.outputBias)
        qNorm = try optional("self_attn.q_norm.weight", config.queryKeyNorm)
        kNorm = try optional("self_attn.k_norm.weight", config.queryKeyNorm)
        postNorm = try required("post_attention_layernorm.weight")
        gateProj = try required("mlp.gate_proj.weight")
        upProj = try required("mlp.up_proj.weight")
        downProj = try required("mlp.down_proj.weight")
        gateBias = try optional("mlp.gate_proj.bias", config.mlpBias)
        upBias = try optional("mlp.up_proj.bias", config.mlpBias)
        downBias = try optional("mlp.down_proj.bias", config.mlpBias)
    }
}

/// Gradient accumulators of one block, bound by the same names as its weights.
struct DenseLayerGradients {
    let inputNorm: Tensor
    let qProj: Tensor, kProj: Tensor, vProj: Tensor, oProj: Tensor
    let qBias: Tensor?, kBias: Tensor?, vBias: Tensor?, oBias: Tensor?
    let qNorm: Tensor?, kNorm: Tensor?
    let postNorm: Tensor
    let gateProj: Tensor, upProj: Tensor, downProj: Tensor
    let gateBias: Tensor?, upBias: Tensor?, downBias: Tensor?

    init(layer: DenseLayer, gradients: ParameterSet) throws {
        let p = DenseLayer.prefix(layer.index)
        func required(_ name: String) throws -> Tensor { try gradients.require(p + name, source: "gradients") }
        func optional(_ name: String, _ present: Bool) throws -> Tensor? { present ? try required(name) : nil }
        inputNorm = try required("input_layernorm.weight")
        qProj = try required("self_attn.q_proj.weight")
        kProj = try required("self_attn.k_proj.weight")
        vProj = try required("self_attn.v_proj.weight")
        oProj = try required("self_attn.o_proj.weight")
        qBias = try optional("self_attn.q_proj.bias", layer.qBias != nil)
        kBias = try optional("self_attn.k_proj.bias", layer.kBias != nil)
        vBias = try optional("self_attn.v_proj.bias", layer.vBias != nil)
        oBias = try optional("self_attn.o_proj.bias", layer.oBias != nil)
        qNorm = try optional("self_attn.q_norm.weight", layer.qNorm != nil)
        kNorm = try optional("self_attn.k_norm.weight", layer.kNorm != nil)
        postNorm = try required("post_attention_layernorm.weight")
        gateProj = try required("mlp.gate_proj.weight")
        upProj = try required("mlp.up_proj.weight")
        downProj = try required("mlp.down_proj.weight")
        gateBias = try optional("mlp.gate_proj.bias", layer.gateBias != nil)
        upBias = try optional("mlp.up_proj.bias", layer.upBias != nil)
        downBias = try optional("mlp.down_proj.bias", layer.downBias != nil)
    }
}
