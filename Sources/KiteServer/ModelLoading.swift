import KiteModels
import KiteTensor

/// Where `kite serve --model` and `/update_weights_from_disk` read weights from.
public enum ModelLoading {
    /// A Hugging Face directory (config.json + safetensors).
    public static func load(path: String, backend: any Backend) throws -> DenseTransformer {
        try DenseTransformer.load(directory: path, backend: backend)
    }
}
