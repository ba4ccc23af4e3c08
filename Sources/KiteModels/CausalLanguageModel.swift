import KiteTensor

/// What the engine, the trainer and the RL loop need from a language model, whatever its architecture.
///
/// One implementation serves the three modes: training (`forward` keeps what `backward` needs, or only each
/// layer's input when recomputing), prefill and decode (`forwardHidden` with a cache the engine lays out as
/// `cacheLayout` says). Weights are tensors by Hugging Face name; writing them in place (the optimizer, a
/// weight sync) is seen by the next forward.
public protocol CausalLanguageModel: AnyObject, Sendable {
    var config: ModelConfig { get }
    var backend: any Backend { get }
    /// The trained weights, by Hugging Face name.
    var parameters: ParameterSet { get }
    /// Tensors saved and synced with the weights that training does not update: DeepSeek-V3's expert-choice
    /// bias, and the tile scales of fp8 weights.
    var buffers: ParameterSet { get }
    /// What the inference cache holds per token and layer.
    var cacheLayout: KeyValueCacheLayout { get }

    /// Training-mode forward over packed sequences: per-row log-prob of `targets` (nil: the next token; -1:
    /// none) and entropy under `softmax(logits / temperature)`, and the tape for `backward` when `keepActivations`.
    /// `routing` records the experts of every sparse layer, or replays recorded ones (see `ExpertRouting`).
    func forward(
        tokens: [Int32], sequences: PackedSequences, targets: [Int32]?, temperature: Float, keepActivations: Bool, recompute: Bool,
        routing: ExpertRouting?
    ) throws -> TrainingForwardResult
    /// Adds d(loss)/d(parameter) into `gradients` (names as `parameters`), given d(loss)/d(log-prob) and
    /// d(loss)/d(entropy) per row of the forward that made `tape`.
    func backward(_ tape: ForwardTape, dLogprobs: Tensor, dEntropy: Tensor, gradients: ParameterSet) throws
    /// Inference forward of new tokens at `positions` whose keys and values join `cache`: the final
    /// normalised hidden states `[T, hidden]`.
    func forwardHidden(tokens: [Int32], positions: [Int32], cache: any KeyValueCache) throws -> Tensor
    /// `forwardHidden` that records (or replays) the experts each sparse layer routes these tokens to.
    func forwardHidden(tokens: [Int32], positions: [Int32], cache: any KeyValueCache, routing: ExpertRouting?) throws -> Tensor
    /// `forwardHidden` with the tokens and positions in i32 tensors `[T]` already on the backend's device (the
    /// engine's decode steps): no host copy, so the work can be captured as a device graph. `positionLimit`
    /// bounds every position.
    func forwardHidden(tokenIDs: Tensor, positions: Tensor, positionLimit: Int, cache: any KeyValueCache) throws -> Tensor
    /// Logits `[T, vocabulary]` of final hidden states.
    func logits(hidden: Tensor) throws -> Tensor
    /// One token per row of final hidden states `[R, hidden]`, sampled on the backend with its log-prob (see
    /// `TokenSampling`).
    func sampleTokens(hidden: Tensor, rows: [TokenSampling]) throws -> [SampledToken]
    /// `sampleTokens` with the tokens left on the device and read back later (`Backend.sampleTokensDeferred`).
    func sampleTokensDeferred(hidden: Tensor, rows: [TokenSampling]) throws -> any DeferredSamples
    /// A copy with its own weights (an engine that sees the trainer's updates only at weight syncs).
    func clone() throws -> Self
    /// Tokens routed to each expert since the last call, per sparse layer; empty for dense models.
    func takeExpertLoad() -> ExpertLoad
}

extension CausalLanguageModel {
    /// The training forward with free routing.
    public func forward(
        tokens: [Int32], sequences: PackedSequences, targets: [Int32]?, temperature: Float, keepActivations: Bool, recompute: Bool
    ) throws -> TrainingForwardResult {
        try forward(tokens: tokens, sequences: sequences, targets: targets, temperature: temperature, keepActivations: keepActivations,
                    recompute: recompute, routing: nil)
    }
}

/// Loads any supported model from a Hugging Face directory or a `.gguf` file.
public enum LanguageModels {
    /// Reads `config.json` (or GGUF metadata) and builds the model its `model_type` names: llama, qwen2,
    /// qwen3, qwen3_moe, deepseek_v2, deepseek_v3 — all served by `Transformer` today.
    public static func load(path: String, backend: any Backend, options: ModelLoadOptions = ModelLoadOptions()) throws -> any CausalLanguageModel {
        if path.hasSuffix(".gguf") { return try Transformer.load(gguf: path, backend: backend) }
        return try Transformer.load(directory: path, backend: backend, options: options)
    }
}
