/// Multi-head latent attention (DeepSeek-V2/V3): queries optionally through a low-rank bottleneck, keys and
/// values from one compressed latent per token plus a single rotary key shared by every head.
///
/// Per head, the query is `[nope | rope]` (`qk_nope_head_dim + qk_rope_head_dim`), the key is `[W_uk c | rope(k_r)]`
/// and the value `W_uv c`, where `c` is the RMS-normalised `kv_lora_rank` latent. An inference cache keeps only
/// `[c | rope(k_r)]` per token.
public struct LatentAttentionConfig: Sendable, Equatable {
    /// `q_lora_rank`; nil projects queries directly (`q_proj`).
    public var queryRank: Int?
    /// `kv_lora_rank`.
    public var latentRank: Int
    public var nopeHeadDim: Int
    public var ropeHeadDim: Int
    public var valueHeadDim: Int
    /// Biases on `q_a_proj`, `kv_a_proj_with_mqa` and `o_proj` (`attention_bias`).
    public var bias: Bool
    /// Rotary dimensions pair up as `(0, 1), (2, 3), ...` (DeepSeek's layout) rather than `(i, i + d/2)`.
    public var interleavedRope: Bool

    /// Query and key width per head.
    public var queryHeadDim: Int { nopeHeadDim + ropeHeadDim }
    /// What an inference cache holds per token: the latent and the rotated shared key.
    public var cacheWidth: Int { latentRank + ropeHeadDim }

    init(fields: ConfigFields, architecture: ModelConfig.Architecture) throws {
        if let rank = try fields.int("q_lora_rank") {
            queryRank = try fields.positive("q_lora_rank", rank)
        } else {
            queryRank = nil
        }
        latentRank = try fields.positive("kv_lora_rank", try fields.required("kv_lora_rank", fields.int("kv_lora_rank")))
        nopeHeadDim = try fields.positive("qk_nope_head_dim", try fields.required("qk_nope_head_dim", fields.int("qk_nope_head_dim")))
        ropeHeadDim = try fields.positive("qk_rope_head_dim", try fields.required("qk_rope_head_dim", fields.int("qk_rope_head_dim")))
        valueHeadDim = try fields.positive("v_head_dim", try fields.required("v_head_dim", fields.int("v_head_dim")))
        guard ropeHeadDim % 2 == 0 else { throw fields.failure("qk_rope_head_dim", "must be even for RoPE, got \(ropeHeadDim)") }
        bias = try fields.bool("attention_bias") ?? false
        // DeepSeek-V2 rotates interleaved pairs as complex numbers; V3 has the switch (default on).
        interleavedRope = architecture == .deepseekV2 ? true : try fields.bool("rope_interleave") ?? true
    }
}
