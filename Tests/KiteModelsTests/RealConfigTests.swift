import Foundation
import Testing
import KiteJSON
import KiteModels
import KiteTensor

/// The config.json files of DeepSeek-V3 (671B, fp8) and Qwen3-30B-A3B as published (Tests/Fixtures/configs),
/// read into the architecture transformers builds: parameter count, layer kinds, routing, cache size, and
/// DeepSeek's YaRN scales (values from transformers 5.24's `yarn_apply_mscale` and rotary embedding).
struct RealConfigTests {
    func config(_ name: String) throws -> ModelConfig {
        try ModelConfig.load(path: Fixtures.root.appendingPathComponent("configs/\(name).json").path)
    }

    func elementCount(_ config: ModelConfig) -> Int {
        Transformer.parameterShapes(config).reduce(0) { $0 + $1.1.reduce(1, *) }
    }

    @Test func deepseekV3() throws {
        let config = try config("deepseek_v3")
        #expect(config.architecture == .deepseekV3)
        #expect(elementCount(config) == 671_026_404_352)
        let latent = try #require(config.latentAttention)
        #expect(latent.queryRank == 1536 && latent.latentRank == 512 && latent.cacheWidth == 576 && latent.interleavedRope)
        let experts = try #require(config.experts)
        #expect(experts.sparseLayers == (0..<61).map { $0 >= 3 })
        #expect(experts.routing == RoutingParameters(scoring: .sigmoid, topK: 8, groups: 8, topGroups: 4, groupScore: .sumOfTopTwo, normalize: true, normalizationEpsilon: 1e-20, scale: 2.5))
        #expect(experts.expertCount == 256 && experts.sharedExpertCount == 1 && experts.correctionBias)
        #expect(config.multiTokenPredictionLayers == 1)
        #expect(config.quantization == BlockQuantization(blockSize: 128))
        #expect(abs(Double(config.attentionScale) - 0.1352337788608801) < 1e-7)
        #expect(config.rope.kind == .yarn && config.rope.attentionScaling == 1 && config.headDim == 64)
        let frequencies = config.rope.inverseFrequencies(dim: config.headDim)
        let expected: [Float] = [1.0, 0.7498942017555237, 0.5623413324356079, 5.928434347879374e-06, 4.445698323252145e-06, 3.3338035336782923e-06]
        for (ours, theirs) in zip(Array(frequencies.prefix(3)) + Array(frequencies.suffix(3)), expected) { #expect(abs(ours - theirs) <= 1e-6 * theirs) }
        #expect(Transformer.bufferShapes(config).count == 58)
        let shapes = Dictionary(uniqueKeysWithValues: Transformer.parameterShapes(config))
        #expect(shapes["model.layers.3.mlp.experts.255.down_proj.weight"] == [7168, 2048])
        #expect(shapes["model.layers.60.self_attn.kv_a_proj_with_mqa.weight"] == [576, 7168])
        #expect(shapes["model.layers.2.mlp.gate_proj.weight"] == [18432, 7168])
    }

    @Test func qwen3MoE() throws {
        let config = try config("qwen3_moe")
        #expect(config.architecture == .qwen3Moe)
        #expect(elementCount(config) == 30_532_122_624)
        #expect(config.latentAttention == nil && config.headDim == 128 && config.queryKeyNorm)
        let experts = try #require(config.experts)
        #expect(experts.sparseLayers == Array(repeating: true, count: 48))
        #expect(experts.routing == RoutingParameters(scoring: .softmax, topK: 8, normalize: true))
        #expect(experts.sharedExpertCount == 0 && !experts.correctionBias && Transformer.bufferShapes(config).isEmpty)
        #expect(abs(config.attentionScale - 1 / Float(128).squareRoot()) < 1e-9)
    }

    /// A field that cannot describe a supported model is named in the error.
    @Test func malformedSparseConfigsNameTheField() throws {
        let path = Fixtures.root.appendingPathComponent("configs/deepseek_v3.json").path
        let original = try #require(try JSONValue(parsing: try String(contentsOfFile: path, encoding: .utf8)).objectValue)
        func message(_ edit: (inout JSONObject) -> Void) -> String {
            var object = original
            edit(&object)
            do { _ = try ModelConfig(json: object, source: "c.json"); return "no error" } catch { return "\(error)" }
        }
        #expect(message { $0["scoring_func"] = "softmax" } == "c.json: field 'scoring_func': DeepSeek-V3 routing scores with 'sigmoid', got 'softmax'")
        #expect(message { $0["kv_lora_rank"] = nil } == "c.json: field 'kv_lora_rank': missing")
        #expect(message { $0["moe_layer_freq"] = 2 }.hasPrefix("c.json: field 'moe_layer_freq': only 1"))
        #expect(message { $0["n_group"] = 3 }.hasPrefix("c.json: field 'num_experts_per_tok': router: top-k 8, 3 groups"))
        #expect(message { $0["qk_rope_head_dim"] = 63 } == "c.json: field 'qk_rope_head_dim': must be even for RoPE, got 63")
        #expect(message { $0["quantization_config"] = ["quant_method": "compressed-tensors"] } == "c.json: field 'quantization_config.quant_method': only block-scaled 'fp8' checkpoints are supported, got 'compressed-tensors'")
        #expect(message { $0["quantization_config"] = ["quant_method": "fp8"] } == "c.json: field 'quantization_config.weight_block_size': missing: per-tensor fp8 scales are not supported, only block scales")
        #expect(message {
            $0["model_type"] = "deepseek_v2"
            $0["topk_method"] = "noaux_tc"
        } == "c.json: field 'topk_method': unsupported 'noaux_tc'; supported: greedy, group_limited_greedy")
    }
}
