/// A model's hyper-parameters as llama.cpp stores them in GGUF metadata (`{arch}.*` keys), with
/// llama.cpp's defaults for the optional ones. Kite's `ModelConfig` is built from this.
public struct GGUFModelHyperparameters: Sendable, Equatable {
    /// `general.architecture`: `llama`, `qwen2`, `qwen3`, ...
    public var architecture: String
    /// `{arch}.vocab_size`, or the length of `tokenizer.ggml.tokens` when absent.
    public var vocabularySize: Int
    /// `{arch}.context_length` (max_position_embeddings).
    public var contextLength: Int
    /// `{arch}.embedding_length` (hidden_size).
    public var embeddingLength: Int
    /// `{arch}.block_count` (num_hidden_layers).
    public var blockCount: Int
    /// `{arch}.feed_forward_length` (intermediate_size).
    public var feedForwardLength: Int
    /// `{arch}.attention.head_count` (num_attention_heads).
    public var headCount: Int
    /// `{arch}.attention.head_count_kv` (num_key_value_heads); defaults to `headCount`.
    public var headCountKV: Int
    /// `{arch}.attention.key_length` (head_dim); defaults to `embeddingLength / headCount`.
    public var keyLength: Int
    /// `{arch}.attention.value_length`; defaults to `embeddingLength / headCount`.
    public var valueLength: Int
    /// `{arch}.rope.freq_base` (rope_theta); defaults to 10000.
    public var ropeFrequencyBase: Float
    /// `{arch}.rope.dimension_count`: how many dimensions of a head are rotated, if stated.
    public var ropeDimensionCount: Int?
    /// `{arch}.rope.scaling.type` (`none`, `linear`, `yarn`, ...), if stated; `linear` when only the
    /// older `{arch}.rope.scale_linear` is present.
    public var ropeScalingType: String?
    /// `{arch}.rope.scaling.factor` (or `{arch}.rope.scale_linear`), if stated.
    public var ropeScalingFactor: Float?
    /// `{arch}.rope.scaling.original_context_length`, if stated.
    public var ropeScalingOriginalContextLength: Int?
    /// Whether the file has a `rope_freqs.weight` tensor: llama 3.1-style per-dimension frequency factors
    /// that llama.cpp stores as a tensor instead of `rope_scaling` metadata.
    public var hasRopeFrequencyFactors: Bool
    /// `{arch}.attention.layer_norm_rms_epsilon` (rms_norm_eps). Stored as f32 in GGUF, so 1e-5 reads
    /// back as 9.99999974e-6.
    public var rmsNormEpsilon: Float
    /// True when the file has no `output.weight` tensor: the LM head reuses the token embedding.
    public var tiedEmbeddings: Bool
    /// `tokenizer.ggml.bos_token_id`, if present.
    public var bosTokenID: Int?
    /// `tokenizer.ggml.eos_token_id`, if present.
    public var eosTokenID: Int?

    /// Reads the hyper-parameters of `file`; throws `missingKey` / `typeMismatch` naming the key.
    public init(_ file: GGUFFile) throws {
        try self.init(metadata: file.metadata, tensorNames: Set(file.tensors.map(\.name)))
    }

    /// Reads the hyper-parameters from metadata and the set of tensor names (for tied embeddings).
    public init(metadata: GGUFMetadata, tensorNames: Set<String>) throws {
        let arch = try metadata.string("general.architecture")
        let key = { (suffix: String) in "\(arch).\(suffix)" }
        func optionalInt(_ name: String) throws -> Int? {
            metadata.contains(name) ? try metadata.int(name) : nil
        }
        func optionalFloat(_ name: String) throws -> Float? {
            metadata.contains(name) ? try metadata.float(name) : nil
        }
        func positive(_ name: String, _ value: Int) throws -> Int {
            guard value > 0 else {
                throw GGUFError(.invalidValue, path: metadata.path, "metadata key '\(name)' is \(value), expected a positive integer")
            }
            return value
        }

        architecture = arch
        if let size = try optionalInt(key("vocab_size")) {
            vocabularySize = try positive(key("vocab_size"), size)
        } else if case .array(let tokens) = metadata["tokenizer.ggml.tokens"] {
            vocabularySize = tokens.count
        } else {
            throw GGUFError(.missingKey, path: metadata.path,
                            "metadata keys '\(key("vocab_size"))' and 'tokenizer.ggml.tokens' are both missing; one gives the vocabulary size")
        }
        contextLength = try positive(key("context_length"), metadata.int(key("context_length")))
        embeddingLength = try positive(key("embedding_length"), metadata.int(key("embedding_length")))
        blockCount = try positive(key("block_count"), metadata.int(key("block_count")))
        feedForwardLength = try positive(key("feed_forward_length"), metadata.int(key("feed_forward_length")))
        headCount = try positive(key("attention.head_count"), metadata.int(key("attention.head_count")))
        headCountKV = try positive(key("attention.head_count_kv"),
                                   optionalInt(key("attention.head_count_kv")) ?? headCount)
        let defaultHeadDim = embeddingLength / headCount
        keyLength = try positive(key("attention.key_length"), optionalInt(key("attention.key_length")) ?? defaultHeadDim)
        valueLength = try positive(key("attention.value_length"),
                                   optionalInt(key("attention.value_length")) ?? defaultHeadDim)
        ropeFrequencyBase = try optionalFloat(key("rope.freq_base")) ?? 10000
        ropeDimensionCount = try optionalInt(key("rope.dimension_count"))
        let linearScale = try optionalFloat(key("rope.scale_linear"))
        ropeScalingType = metadata.contains(key("rope.scaling.type"))
            ? try metadata.string(key("rope.scaling.type")) : (linearScale == nil ? nil : "linear")
        ropeScalingFactor = try optionalFloat(key("rope.scaling.factor")) ?? linearScale
        ropeScalingOriginalContextLength = try optionalInt(key("rope.scaling.original_context_length"))
        hasRopeFrequencyFactors = tensorNames.contains("rope_freqs.weight")
        rmsNormEpsilon = try metadata.float(key("attention.layer_norm_rms_epsilon"))
        tiedEmbeddings = !tensorNames.contains("output.weight")
        bosTokenID = try optionalInt("tokenizer.ggml.bos_token_id")
        eosTokenID = try optionalInt("tokenizer.ggml.eos_token_id")
    }
}
