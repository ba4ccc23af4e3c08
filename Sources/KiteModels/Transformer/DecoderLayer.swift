import KiteTensor

/// One decoder block, bound by Hugging Face name: `x + attention(norm(x))`, then `h + mlp(norm(h))`, where the
/// attention is grouped-query or latent and the MLP dense or a mixture of experts, as the configuration says.
struct DecoderLayer {
    enum Attention {
        case grouped(GroupedQueryAttention)
        case latent(LatentAttention)
    }

    enum MLP {
        case dense(FeedForward)
        case experts(MixtureOfExperts)
    }

    let index: Int
    let inputNorm: Tensor
    let attention: Attention
    let postNorm: Tensor
    let mlp: MLP

    static func prefix(_ layer: Int) -> String { "model.layers.\(layer)." }

    /// Whether layer `layer` routes tokens to experts.
    static func isSparse(_ layer: Int, config: ModelConfig) -> Bool {
        guard let experts = config.experts, layer < experts.sparseLayers.count else { return false }
        return experts.sparseLayers[layer]
    }

    static func parameterShapes(layer: Int, config: ModelConfig) -> [(String, [Int])] {
        let p = prefix(layer)
        var shapes: [(String, [Int])] = [(p + "input_layernorm.weight", [config.hiddenSize])]
        if let latent = config.latentAttention {
            shapes += LatentAttention.parameterShapes(prefix: p + "self_attn.", config: config, dims: latent)
        } else {
            shapes += GroupedQueryAttention.parameterShapes(prefix: p + "self_attn.", config: config)
        }
        shapes.append((p + "post_attention_layernorm.weight", [config.hiddenSize]))
        if let experts = config.experts, isSparse(layer, config: config) {
            shapes += MixtureOfExperts.parameterShapes(prefix: p + "mlp.", config: config, experts: experts)
        } else {
            shapes += FeedForward.parameterShapes(prefix: p + "mlp.", hidden: config.hiddenSize, width: config.intermediateSize, bias: config.mlpBias)
        }
        return shapes
    }

    /// Tensors a layer keeps with its weights that training does not update.
    static func bufferShapes(layer: Int, config: ModelConfig) -> [(String, [Int])] {
        guard let experts = config.experts, isSparse(layer, config: config) else { return [] }
        return MixtureOfExperts.bufferShapes(prefix: prefix(layer) + "mlp.", experts: experts)
    }

    init(index: Int, config: ModelConfig, parameters: ParameterSet, buffers: ParameterSet) throws {
        let p = Self.prefix(index)
        self.index = index
        inputNorm = try parameters.require(p + "input_layernorm.weight")
        postNorm = try parameters.require(p + "post_attention_layernorm.weight")
        if let latent = config.latentAttention {
            attention = .latent(try LatentAttention(prefix: p + "self_attn.", config: config, dims: latent, parameters: parameters, buffers: buffers))
        } else {
            attention = .grouped(try GroupedQueryAttention(prefix: p + "self_attn.", config: config, parameters: parameters, buffers: buffers))
        }
        if let experts = config.experts, Self.isSparse(index, config: config) {
            mlp = .experts(try MixtureOfExperts(prefix: p + "mlp.", config: config, experts: experts, parameters: parameters, buffers: buffers))
        } else {
            mlp = .dense(try FeedForward(prefix: p + "mlp.", bias: config.mlpBias, blockSize: config.quantization?.blockSize ?? 128, parameters: parameters, buffers: buffers))
        }
    }
}

/// What one block computed, kept for its backward.
struct LayerActivations {
    enum Attention {
        case grouped(GroupedQueryAttentionActivations)
        case latent(LatentAttentionActivations)
    }

    enum MLP {
        case dense(FeedForwardActivations)
        case experts(MixtureOfExpertsActivations)
    }

    var input: Tensor
    var normed: Tensor
    var inverseRMS: Tensor
    var attention: Attention
    var middle: Tensor
    var normed2: Tensor
    var inverseRMS2: Tensor
    var mlp: MLP
}
