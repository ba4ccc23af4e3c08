import KiteJSON

/// The hyper-parameters of a dense decoder (llama, qwen2, qwen3), read from a Hugging Face `config.json`.
///
/// The three architectures are one block with switches: biases on the q/k/v (and o) projections, RMSNorm
/// of each head's queries and keys (qwen3), and tied input/output embeddings.
public struct ModelConfig: Sendable, Equatable {
    public enum Architecture: String, Sendable, CaseIterable {
        case llama, qwen2, qwen3
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
        // qwen3's configuration class defaults head_dim to 128 rather than deriving it.
        let defaultHeadDim = architecture == .qwen3 ? 128 : hiddenSize / attentionHeads
        headDim = try positive("head_dim", try field("head_dim", int) ?? defaultHeadDim)
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
        case .qwen3:
            let attentionBias = try field("attention_bias", bool) ?? false
            qkvBias = attentionBias
            outputBias = attentionBias
            mlpBias = false
            queryKeyNorm = true
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
}
