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

    /// The tokenizer that goes with a model: the GGUF's own, or a directory's `tokenizer.json`; nil when the
    /// directory has none (the server then serves token ids only).
    public static func tokenizer(path: String) throws -> TokenizerAdapter? {
        if path.hasSuffix(".gguf") { return TokenizerAdapter(try Tokenizer(ggufPath: path)) }
        let base = path.hasSuffix("/") ? String(path.dropLast()) : path
        guard FileManager.default.fileExists(atPath: base + "/tokenizer.json") else { return nil }
        return TokenizerAdapter(try Tokenizer(directory: base))
    }
}
