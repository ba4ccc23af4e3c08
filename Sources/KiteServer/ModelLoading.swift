import FoundationEssentials
import KiteEngine
import KiteModels
import KiteTensor
import KiteTokenizers

/// Where `kite serve --model` and `/update_weights_from_disk` read weights and tokenizers from.
public enum ModelLoading {
    /// A Hugging Face directory (config.json + safetensors, any architecture `LanguageModels` builds) or a
    /// `.gguf` file.
    public static func load(path: String, backend: any Backend) throws -> any CausalLanguageModel {
        try LanguageModels.load(path: path, backend: backend)
    }

    /// The model `kite serve` serves from `path` on `backend`. On a GPU, fp8 checkpoints stay fp8 (block-scaled
    /// fp8 products, as SGLang serves them) and the engine gets an inference copy of the weights: matrices in
    /// the backend's activation dtype, q/k/v and gate/up stacked into one product each (`Transformer.clone`);
    /// the loaded weights are released once copied. On the CPU the checkpoint is served as loaded.
    public static func loadForServing(path: String, backend: any Backend) throws -> any CausalLanguageModel {
        guard backend.device != .cpu else { return try load(path: path, backend: backend) }
        let model = try LanguageModels.load(path: path, backend: backend, options: ModelLoadOptions(keepQuantizedWeights: true))
        guard let transformer = model as? Transformer else { return model }
        return try transformer.clone(matrixDType: backend.keyValueCacheDType == .bf16 ? .bf16 : nil)
    }

    /// The tokenizer that goes with a model: the GGUF's own, or a directory's `tokenizer.json`; nil when the
    /// directory has none (the server then serves token ids only).
    public static func tokenizer(path: String) throws -> TokenizerAdapter? {
        if path.hasSuffix(".gguf") { return TokenizerAdapter(try Tokenizer(ggufPath: path)) }
        let base = path.hasSuffix("/") ? String(path.dropLast()) : path
        guard FileManager.default.fileExists(atPath: base + "/tokenizer.json") else { return nil }
        return TokenizerAdapter(try Tokenizer(directory: base))
    }
}
