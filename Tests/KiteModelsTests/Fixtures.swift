import Foundation
import KiteJSON
import KiteModels
import KiteTensor

enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    static func modelDirectory(_ name: String) -> String { root.appendingPathComponent("models/\(name)").path }

    static let denseModels = ["llama", "llama_linear_tied", "qwen2", "qwen3"]
    /// DeepSeek and Qwen3-MoE fixtures (see scripts/reference/moe_models.py).
    static let sparseModels = ["deepseek_v3", "deepseek_v3_plain", "deepseek_v2", "qwen3_moe", "qwen3_moe_sparse_step"]

    /// transformers' outputs for a fixture model (see scripts/reference/dense_models.py).
    struct Reference {
        let temperature: Float
        let sequences: [[Int32]]
        let lossWeightsLogprob: [[Float]]
        let lossWeightsEntropy: [[Float]]
        let logprobs: [[Double]]
        let entropy: [[Double]]

        init(model: String) throws {
            let text = try String(contentsOfFile: modelDirectory(model) + "/reference.json", encoding: .utf8)
            let json = try JSONValue(parsing: text)
            func matrix(_ key: String) -> [[Double]] {
                (json[key]?.arrayValue ?? []).map { ($0.arrayValue ?? []).compactMap(\.doubleValue) }
            }
            temperature = Float(json["temperature"]?.doubleValue ?? 1)
            sequences = matrix("sequences").map { $0.map { Int32($0) } }
            lossWeightsLogprob = matrix("loss_weights_logprob").map { $0.map(Float.init) }
            lossWeightsEntropy = matrix("loss_weights_entropy").map { $0.map(Float.init) }
            logprobs = matrix("logprobs")
            entropy = matrix("entropy")
        }

        var packedTokens: [Int32] { sequences.flatMap { $0 } }
        var packing: PackedSequences { PackedSequences(lengths: sequences.map(\.count)) }

        /// Per-row loss weights in packed order, zero on each sequence's last row (no next token there).
        func packedWeights(_ weights: [[Float]]) -> [Float] {
            zip(sequences, weights).flatMap { sequence, w in (0..<sequence.count).map { $0 < sequence.count - 1 ? w[$0] : 0 } }
        }
    }
}
