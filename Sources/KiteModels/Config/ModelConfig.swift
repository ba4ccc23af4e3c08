import KiteJSON

/// The hyper-parameters of a decoder, read from a Hugging Face `config.json`.
///
/// Every architecture is one block with switches: biases on the q/k/v (and o) projections, RMSNorm of each
/// head's queries and keys (qwen3, qwen3_moe), tied input/output embeddings; multi-head latent attention
/// instead of grouped-query attention (`latentAttention`: deepseek_v2, deepseek_v3); and a mixture of experts
/// instead of the dense MLP in some layers (`experts`: qwen3_moe, deepseek_v2, deepseek_v3).
public struct ModelConfig: Sendable, Equatable {
    public enum Architecture: String, Sendable, CaseIterable {
        case llama, qwen2, qwen3
        case qwen3Moe = "qwen3_moe"
        case deepseekV2 = "deepseek_v2"
        case deepseekV3 = "deepseek_v3"
    }

    public var architecture: Architecture
    public var vocabularySize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var attentionHeads: Int
    public var keyValueHeads: Int
    public var headDim: Int
    public var rmsNormEpsilon: Float
    public var maxPositionEmbeddings: Int
    public var tieWordEmbeddings: Bool
    /// Biases on the q, k and v projections.
    public var qkvBias: Bool
    /// A bias on the attention output projection.
    public var outputBias: Bool
    /// Biases on gate, up and down projections (llama's `mlp_bias`).
    public var mlpBias: Bool
    /// Per-head RMSNorm of queries and keys before RoPE (qwen3).
    public var queryKeyNorm: Bool
    public var rope: RopeConfig
    /// Multi-head latent attention (DeepSeek); nil for grouped-query attention.
    public var latentAttention: LatentAttentionConfig?
    /// The mixture of experts and which layers use it; nil for dense models.
    public var experts: ExpertsConfig?
    /// DeepSeek-V3's multi-token-prediction layers (`num_nextn_predict_layers`), stored after the decoder
    /// layers in checkpoints; Kite recognises and skips them.
    public var multiTokenPredictionLayers: Int
    /// Block-scaled fp8 weights (`quantization_config`), when the checkpoint has them.
    public var quantization: BlockQuantization?
    public var bosTokenID: Int?
    public var eosTokenIDs: [Int]
    /// `torch_dtype` / `dtype` as written, e.g. "bfloat16".
    public var storageDType: String?
    /// The document this configuration came from, so that a saved checkpoint keeps every field.
    public var json: JSONObject

    /// Reads a `config.json` document; `source` names it in errors.
    public init(json object: JSONObject, source: String) throws {
        func field<T>(_ key: String, _ read: (String) throws(JSONFieldError) -> T?) throws -> T? {
            do { return try read(key) } catch { throw ModelError.config(path: source, field: error.field, detail: error.message) }
        }
        func required<T>(_ key: String, _ read: (String) throws(JSONFieldError) -> T?) throws -> T {
            guard let value = try field(key, read) else { throw ModelError.config(path: source, field: key, detail: "missing") }
            return value
        }
        func positive(_ key: String, _ value: Int) throws -> Int {
            guard value > 0 else { throw ModelError.config(path: source, field: key, detail: "must be positive, got \(value)") }
            return value
        }
        let int = { (key: String) throws(JSONFieldError) -> Int? in try object.int(key, source: source) }
        let double = { (key: String) throws(JSONFieldError) -> Double? in try object.double(key, source: source) }
        let bool = { (key: String) throws(JSONFieldError) -> Bool? in try object.bool(key, source: source) }
        let string = { (key: String) throws(JSONFieldError) -> String? in try object.string(key, source: source) }

        let modelType: String = try required("model_type", string)
        guard let architecture = Architecture(rawValue: modelType) else {
            throw ModelError.config(path: source, field: "model_type", detail: "unsupported model type '\(modelType)'; supported: \(Architecture.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self.architecture = architecture
        vocabularySize = try positive("vocab_size", try required("vocab_size", int))
        hiddenSize = try positive("hidden_size", try required("hidden_size", int))
        intermediateSize = try positive("intermediate_size", try required("intermediate_size", int))
        layerCount = try positive("num_hidden_layers", try required("num_hidden_layers", int))
        attentionHeads = try positive("num_attention_heads", try required("num_attention_heads", int))
        keyValueHeads = try positive("num_key_value_heads", try field("num_key_value_heads", int) ?? attentionHeads)
        guard attentionHeads % keyValueHeads == 0 else {
            throw ModelError.config(path: source, field: "num_key_value_heads", detail: "\(keyValueHeads) does not divide num_attention_heads \(attentionHeads)")
        }
        let fields = ConfigFields(object: object, source: source)
        switch architecture {
        case .deepseekV2, .deepseekV3:
            let latent = try LatentAttentionConfig(fields: fields, architecture: architecture)
            latentAttention = latent
            // transformers sets head_dim to the rotary width for these models.
            headDim = latent.ropeHeadDim
        default:
            latentAttention = nil
            // qwen3's configuration class defaults head_dim to 128 rather than deriving it.
            let defaultHeadDim = architecture == .qwen3 ? 128 : hiddenSize / attentionHeads
            headDim = try positive("head_dim", try field("head_dim", int) ?? defaultHeadDim)
        }
        switch architecture {
        case .qwen3Moe, .deepseekV2, .deepseekV3: experts = try ExpertsConfig(fields: fields, architecture: architecture, layerCount: layerCount)
        default: experts = nil
        }
        multiTokenPredictionLayers = max(0, try field("num_nextn_predict_layers", int) ?? 0)
        quantization = try Self.quantization(of: object, source: source)
        guard headDim % 2 == 0 else { throw ModelError.config(path: source, field: "head_dim", detail: "must be even for RoPE, got \(headDim)") }
        rmsNormEpsilon = Float(try field("rms_norm_eps", double) ?? 1e-6)
        maxPositionEmbeddings = try positive("max_position_embeddings", try field("max_position_embeddings", int) ?? 2048)
        tieWordEmbeddings = try field("tie_word_embeddings", bool) ?? false
        switch architecture {
        case .llama:
            let attentionBias = try field("attention_bias", bool) ?? false
            qkvBias = attentionBias
            outputBias = attentionBias
            mlpBias = try field("mlp_bias", bool) ?? false
            queryKeyNorm = false
        case .qwen2:
            qkvBias = true
            outputBias = false
            mlpBias = false
            queryKeyNorm = false
        case .qwen3, .qwen3Moe:
            let attentionBias = try field("attention_bias", bool) ?? false
            qkvBias = attentionBias
            outputBias = attentionBias
            mlpBias = false
            queryKeyNorm = true
        case .deepseekV2, .deepseekV3:
            // Latent attention has its own biases (`latentAttention.bias`).
            qkvBias = false
            outputBias = false
            mlpBias = architecture == .deepseekV2 ? try field("mlp_bias", bool) ?? false : false
            queryKeyNorm = false
        }
        let activation = try field("hidden_act", string) ?? "silu"
        guard activation == "silu" else {
            throw ModelError.config(path: source, field: "hidden_act", detail: "only 'silu' is supported, got '\(activation)'")
        }
        if try field("use_sliding_window", bool) == true {
            throw ModelError.config(path: source, field: "use_sliding_window", detail: "sliding-window attention is not supported")
        }
        rope = try RopeConfig(config: object, maxPositionEmbeddings: maxPositionEmbeddings, source: source)
        bosTokenID = try field("bos_token_id", int)
        if let single = object["eos_token_id"]?.intValue {
            eosTokenIDs = [single]
        } else if let list = object["eos_token_id"]?.arrayValue {
            eosTokenIDs = list.compactMap(\.intValue)
        } else {
            eosTokenIDs = []
        }
        storageDType = try field("torch_dtype", string) ?? field("dtype", string)
        json = object
    }

    /// Reads `config.json` from a file.
    public static func load(path: String) throws -> ModelConfig {
        let text = try FileText.read(path)
        let value: JSONValue
        do { value = try JSONValue(parsing: text, source: path) } catch { throw ModelError.malformed(path: path, detail: error.description) }
        guard let object = value.objectValue else { throw ModelError.malformed(path: path, detail: "expected a JSON object, found \(value.typeName)") }
        return try ModelConfig(json: object, source: path)
    }

    /// Query projection width: heads times head dimension.
    public var queryWidth: Int { attentionHeads * headDim }
    /// Key/value projection width.
    public var keyValueWidth: Int { keyValueHeads * headDim }

    /// The softmax scale of attention scores: `1 / sqrt(query head width)`, times YaRN's `mscale_all_dim`
    /// correction squared for latent attention (as DeepSeek scales it).
    public var attentionScale: Float {
        guard let latent = latentAttention else { return 1 / Float(headDim).squareRoot() }
        var scale = 1 / Double(latent.queryHeadDim).squareRoot()
        if rope.kind != .default, let allDim = rope.mscaleAllDim, allDim != 0 {
            let correction = RopeConfig.yarnScale(rope.factor, allDim)
            scale *= correction * correction
        }
        return Float(scale)
    }

    /// Whether any layer routes tokens to experts.
    public var hasExperts: Bool { experts?.sparseLayers.contains(true) ?? false }
}
