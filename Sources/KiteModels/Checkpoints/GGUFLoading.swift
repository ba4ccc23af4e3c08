import KiteGGUF
import KiteJSON
import KiteTensor

extension ModelConfig {
    /// The configuration transformers builds when it loads this GGUF: llama.cpp's `{arch}.*` metadata
    /// mapped to config.json fields. `source` names the file in errors.
    public init(gguf file: GGUFFile, source: String) throws {
        let hyper = try GGUFModelHyperparameters(file)
        guard ["llama", "qwen2", "qwen3"].contains(hyper.architecture) else {
            throw ModelError.config(path: source, field: "general.architecture", detail: "unsupported architecture '\(hyper.architecture)'; supported: llama, qwen2, qwen3")
        }
        if hyper.hasRopeFrequencyFactors {
            throw ModelError.config(path: source, field: "rope_freqs.weight", detail: "llama 3.1-style RoPE frequency factors stored as a tensor are not supported")
        }
        if let rotated = hyper.ropeDimensionCount, rotated != hyper.keyLength {
            throw ModelError.config(path: source, field: "\(hyper.architecture).rope.dimension_count", detail: "partial rotary embeddings (\(rotated) of \(hyper.keyLength)) are not supported")
        }
        var rope: JSONObject = ["rope_theta": .double(Double(hyper.ropeFrequencyBase))]
        switch hyper.ropeScalingType {
        case nil, "none":
            rope["rope_type"] = "default"
        case "linear", "yarn":
            rope["rope_type"] = .string(hyper.ropeScalingType ?? "default")
            if let factor = hyper.ropeScalingFactor { rope["factor"] = .double(Double(factor)) }
            if let original = hyper.ropeScalingOriginalContextLength { rope["original_max_position_embeddings"] = .int(original) }
        case let other?:
            throw ModelError.config(path: source, field: "\(hyper.architecture).rope.scaling.type", detail: "unsupported RoPE scaling '\(other)'")
        }
        let hasAttentionBias = file.tensorInfo(named: "blk.0.attn_q.bias") != nil
        var json: JSONObject = [
            "model_type": .string(hyper.architecture),
            "vocab_size": .int(hyper.vocabularySize),
            "hidden_size": .int(hyper.embeddingLength),
            "intermediate_size": .int(hyper.feedForwardLength),
            "num_hidden_layers": .int(hyper.blockCount),
            "num_attention_heads": .int(hyper.headCount),
            "num_key_value_heads": .int(hyper.headCountKV),
            "head_dim": .int(hyper.keyLength),
            "max_position_embeddings": .int(hyper.contextLength),
            "rms_norm_eps": .double(Double(hyper.rmsNormEpsilon)),
            "rope_parameters": .object(rope),
            "tie_word_embeddings": .bool(hyper.tiedEmbeddings),
            "hidden_act": "silu",
            "torch_dtype": "float32",
        ]
        if hyper.architecture != "qwen2" { json["attention_bias"] = .bool(hasAttentionBias) }
        if let bos = hyper.bosTokenID { json["bos_token_id"] = .int(bos) }
        if let eos = hyper.eosTokenID { json["eos_token_id"] = .int(eos) }
        try self.init(json: json, source: source)
    }
}

extension ModelConfig {
    /// The configuration of a checkpoint: `config.json` of a Hugging Face directory, or a `.gguf` file's metadata.
    public static func load(checkpoint path: String) throws -> ModelConfig {
        guard path.hasSuffix(".gguf") else { return try load(path: path + "/config.json") }
        let file: GGUFFile
        do { file = try GGUFFile(path: path) } catch { throw ModelError.malformed(path: path, detail: "\(error)") }
        return try ModelConfig(gguf: file, source: path)
    }
}

extension Transformer {
    /// Loads a GGUF model, dequantised to fp32, with Hugging Face names and layouts (llama's Q/K rows
    /// un-permuted), so it computes what transformers computes from the same file.
    public static func load(gguf path: String, backend: any Backend) throws -> Transformer {
        let file: GGUFFile
        do { file = try GGUFFile(path: path) } catch { throw ModelError.malformed(path: path, detail: "\(error)") }
        let config = try ModelConfig(gguf: file, source: path)
        let architecture = config.architecture.rawValue
        var byName: [String: GGUFTensorInfo] = [:]
        for info in file.tensors {
            if let name = GGUFTensorNames.huggingFaceName(for: info.name, architecture: architecture) { byName[name] = info }
        }
        let parameters = ParameterSet()
        for (name, shape) in parameterShapes(config) {
            guard let info = byName[name] else { throw ModelError.missingTensor(path: path, name: name) }
            guard info.shape == shape else {
                throw ModelError.badTensor(path: path, name: "\(info.name) (\(name))", detail: "shape \(info.shape), expected \(shape) from the metadata")
            }
            let tensor = Tensor(zeros: shape)
            do {
                if let heads = GGUFTensorNames.permutationHeads(for: info.name, architecture: architecture, headCount: config.attentionHeads, headCountKV: config.keyValueHeads) {
                    try file.dequantize(info, unpermutingHeads: heads, into: tensor.floats)
                } else {
                    try file.dequantize(info, into: tensor.floats)
                }
            } catch {
                throw ModelError.badTensor(path: path, name: info.name, detail: "\(error)")
            }
            parameters.insert(name, try backend.upload(tensor))
        }
        return try Transformer(config: config, parameters: parameters, backend: backend, source: path)
    }
}
