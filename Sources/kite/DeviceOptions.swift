import ArgumentParser
import KiteCUDA
import KiteJSON
import KiteModels
import KiteTensor

/// `--device` and `--precision`, shared by commands that run a model.
struct DeviceOptions: ParsableArguments {
    @Option(help: "Where to compute: cpu, or cuda / cuda:N for a GPU.")
    var device: String = "cpu"

    @Option(help: "GPU precision: bf16 (bf16 activations, fp32 accumulation and master weights) or fp32.")
    var precision: String = "bf16"

    func validate() throws {
        _ = try parsedDevice()
        guard CUDABackend.Precision(rawValue: precision) != nil else {
            throw ValidationError("--precision must be bf16 or fp32, got '\(precision)'")
        }
    }

    func parsedDevice() throws -> Device {
        if device == "cpu" { return .cpu }
        if device == "cuda" { return .cuda(0) }
        if device.hasPrefix("cuda:"), let ordinal = Int(device.dropFirst(5)), ordinal >= 0 { return .cuda(ordinal) }
        throw ValidationError("--device must be cpu, cuda or cuda:N, got '\(device)'")
    }

    /// The backend the options name; a GPU that cannot be used is reported as the driver's error.
    /// `deterministic` asks a GPU for batch-invariant kernels (`CUDABackend.deterministic`).
    func makeBackend(deterministic: Bool = false) throws -> any Backend {
        switch try parsedDevice() {
        case .cpu: return CPUBackend()
        case .cuda(let ordinal):
            return try CUDABackend(ordinal: ordinal, precision: CUDABackend.Precision(rawValue: precision) ?? .bf16, deterministic: deterministic)
        }
    }
}

/// The Qwen3-0.6B architecture (vocabulary 151,936, hidden 1024, 16 heads / 8 KV heads of 128, tied
/// embeddings), with `layers` layers.
func qwen3SmallConfig(layers: Int = 28, vocabulary: Int = 151_936, hidden: Int = 1024, intermediate: Int = 3072,
                      heads: Int = 16, kvHeads: Int = 8, headDim: Int = 128) throws -> ModelConfig {
    let object: JSONObject = [
        "model_type": "qwen3", "vocab_size": .int(vocabulary), "hidden_size": .int(hidden), "intermediate_size": .int(intermediate),
        "num_hidden_layers": .int(layers), "num_attention_heads": .int(heads), "num_key_value_heads": .int(kvHeads),
        "head_dim": .int(headDim), "max_position_embeddings": 40960, "rms_norm_eps": 1e-6, "rope_theta": 1_000_000,
        "tie_word_embeddings": true, "attention_bias": false, "hidden_act": "silu",
    ]
    return try ModelConfig(json: object, source: "qwen3 (\(layers) layers, vocabulary \(vocabulary))")
}
