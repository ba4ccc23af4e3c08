import KiteTensor

/// The mixture-of-experts feed-forward of Qwen3-MoE and DeepSeek-V2/V3: a router, routed experts (each a
/// SwiGLU MLP of `moe_intermediate_size`), optional shared experts every token passes through, and which
/// layers are sparse (the others keep a dense MLP of `intermediate_size`).
public struct ExpertsConfig: Sendable, Equatable {
    /// Routed experts (`num_experts` / `n_routed_experts`).
    public var expertCount: Int
    /// Width of each expert's MLP (`moe_intermediate_size`).
    public var intermediateSize: Int
    /// `n_shared_experts`: one MLP of `sharedExpertCount * intermediateSize` (0: none).
    public var sharedExpertCount: Int
    public var routing: RoutingParameters
    /// DeepSeek-V3's `e_score_correction_bias`: a per-expert bias of the choice, kept with the weights but
    /// not trained by gradient.
    public var correctionBias: Bool
    /// Per layer: experts (true) or a dense MLP.
    public var sparseLayers: [Bool]

    init(fields: ConfigFields, architecture: ModelConfig.Architecture, layerCount: Int) throws {
        let topK = try fields.positive("num_experts_per_tok", try fields.required("num_experts_per_tok", fields.int("num_experts_per_tok")))
        intermediateSize = try fields.positive("moe_intermediate_size", try fields.required("moe_intermediate_size", fields.int("moe_intermediate_size")))
        switch architecture {
        case .qwen3Moe:
            // transformers 5 writes the attribute under its generic name.
            let count = try fields.int("num_experts") ?? fields.int("num_local_experts")
            expertCount = try fields.positive("num_experts", try fields.required("num_experts", count))
            sharedExpertCount = 0
            correctionBias = false
            routing = RoutingParameters(scoring: .softmax, topK: topK, normalize: try fields.bool("norm_topk_prob") ?? false)
            let step = try fields.positive("decoder_sparse_step", try fields.int("decoder_sparse_step") ?? 1)
            let denseLayers = Set(try fields.ints("mlp_only_layers") ?? [])
            sparseLayers = (0..<layerCount).map { !denseLayers.contains($0) && ($0 + 1) % step == 0 }
        case .deepseekV2, .deepseekV3:
            let count = try fields.int("n_routed_experts") ?? fields.int("num_local_experts")
            expertCount = try fields.positive("n_routed_experts", try fields.required("n_routed_experts", count))
            sharedExpertCount = max(0, try fields.int("n_shared_experts") ?? (architecture == .deepseekV3 ? 1 : 2))
            let firstSparse = max(0, try fields.int("first_k_dense_replace") ?? (architecture == .deepseekV3 ? 3 : 0))
            if let frequency = try fields.int("moe_layer_freq"), frequency != 1 {
                throw fields.failure("moe_layer_freq", "only 1 (every layer after first_k_dense_replace is sparse) is supported, got \(frequency)")
            }
            sparseLayers = (0..<layerCount).map { $0 >= firstSparse }
            let scale = Float(try fields.double("routed_scaling_factor") ?? (architecture == .deepseekV3 ? 2.5 : 1))
            let groups = try fields.int("n_group")
            let topGroups = try fields.int("topk_group")
            if architecture == .deepseekV3 {
                if let scoring = try fields.string("scoring_func"), scoring != "sigmoid" {
                    throw fields.failure("scoring_func", "DeepSeek-V3 routing scores with 'sigmoid', got '\(scoring)'")
                }
                correctionBias = true
                routing = RoutingParameters(
                    scoring: .sigmoid, topK: topK, groups: try fields.positive("n_group", groups ?? 8),
                    topGroups: try fields.positive("topk_group", topGroups ?? 4), groupScore: .sumOfTopTwo,
                    normalize: try fields.bool("norm_topk_prob") ?? true, normalizationEpsilon: 1e-20, scale: scale)
            } else {
                correctionBias = false
                let method = try fields.string("topk_method") ?? "greedy"
                switch method {
                case "greedy":
                    routing = RoutingParameters(scoring: .softmax, topK: topK, normalize: false, scale: scale)
                case "group_limited_greedy":
                    routing = RoutingParameters(
                        scoring: .softmax, topK: topK, groups: try fields.positive("n_group", try fields.required("n_group", groups)),
                        topGroups: try fields.positive("topk_group", try fields.required("topk_group", topGroups)), groupScore: .max,
                        normalize: false, scale: scale)
                default:
                    throw fields.failure("topk_method", "unsupported '\(method)'; supported: greedy, group_limited_greedy")
                }
            }
        default:
            throw fields.failure("model_type", "\(architecture.rawValue) has no experts")
        }
        do { try routing.validate(experts: expertCount, operation: "router") } catch {
            throw fields.failure("num_experts_per_tok", "\(error)")
        }
    }
}
