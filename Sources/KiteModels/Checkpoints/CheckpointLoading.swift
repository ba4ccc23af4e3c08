import KiteTensor
#if canImport(Glibc)
import Glibc
#endif

/// How a checkpoint becomes a model.
public struct ModelLoadOptions: Sendable {
    /// Keep block-scaled fp8 weights as fp8 with their scales (an engine serving them; dequantised where
    /// used) instead of dequantising them to fp32 on load (training).
    public var keepQuantizedWeights: Bool
    /// Where loading notes go (layers recognised and skipped); standard error by default.
    public var log: @Sendable (String) -> Void

    public init(keepQuantizedWeights: Bool = false, log: @escaping @Sendable (String) -> Void = ModelLoadOptions.standardError) {
        self.keepQuantizedWeights = keepQuantizedWeights
        self.log = log
    }

    /// Writes `kite: <message>` to standard error.
    public static let standardError: @Sendable (String) -> Void = { message in
        let line = "kite: \(message)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }
}

extension Transformer {
    /// Loads `config.json` and the safetensors weights of a Hugging Face directory as fp32, or with fp8
    /// weights kept (`options.keepQuantizedWeights`). Block-scaled fp8 weights (`<name>` fp8 plus
    /// `<name>_scale_inv`) are read without conversion; multi-token-prediction layers stored after the
    /// decoder layers are skipped with a log line.
    public static func load(directory: String, backend: any Backend, options: ModelLoadOptions = ModelLoadOptions()) throws -> Transformer {
        let config = try ModelConfig.load(path: directory + "/config.json")
        let checkpoint = try CheckpointDirectory(directory: directory)
        let skipped = checkpoint.names.compactMap { name -> Int? in
            guard let layer = layerIndex(name), layer >= config.layerCount else { return nil }
            return layer
        }
        if !skipped.isEmpty {
            let layerList = Set(skipped).sorted().map(String.init).joined(separator: ", ")
            options.log("\(directory): skipping \(skipped.count) tensors of layer(s) \(layerList) beyond num_hidden_layers = \(config.layerCount) (multi-token prediction, num_nextn_predict_layers = \(config.multiTokenPredictionLayers)); Kite's forward does not use them")
        }
        let parameters = ParameterSet(), buffers = ParameterSet()
        for (name, shape) in parameterShapes(config) {
            let (weight, scales) = try read(checkpoint, name, shape, config: config, backend: backend, options: options)
            parameters.insert(name, weight)
            if let scales { buffers.insert(name + "_scale_inv", scales) }
        }
        for (name, shape) in bufferShapes(config) {
            buffers.insert(name, try read(checkpoint, name, shape, config: config, backend: backend, options: options).tensor)
        }
        return try Transformer(config: config, parameters: parameters, buffers: buffers, backend: backend, source: directory)
    }

    /// Loads a model from a Hugging Face directory or a `.gguf` file.
    public static func load(path: String, backend: any Backend, options: ModelLoadOptions = ModelLoadOptions()) throws -> Transformer {
        path.hasSuffix(".gguf") ? try load(gguf: path, backend: backend) : try load(directory: path, backend: backend, options: options)
    }

    /// The layer number of a `model.layers.N.` name.
    static func layerIndex(_ name: String) -> Int? {
        let prefix = "model.layers."
        guard name.hasPrefix(prefix) else { return nil }
        return Int(name.dropFirst(prefix.count).prefix { $0 != "." })
    }

    /// One tensor of the checkpoint on the backend: fp32, or fp8 values and their scales when kept quantised.
    static func read(
        _ checkpoint: CheckpointDirectory, _ name: String, _ shape: [Int], config: ModelConfig, backend: any Backend, options: ModelLoadOptions
    ) throws -> (tensor: Tensor, scales: Tensor?) {
        let path = checkpoint.location[name]?.path ?? checkpoint.directory
        guard let entry = checkpoint.entry(name) else { throw ModelError.missingTensor(path: checkpoint.directory, name: name) }
        guard entry.shape == shape else {
            throw ModelError.badTensor(path: path, name: name, detail: "shape \(entry.shape), expected \(shape) from config.json")
        }
        guard entry.dtype.isFloatingPoint else {
            throw ModelError.badTensor(path: path, name: name, detail: "dtype \(entry.dtype) is not a floating-point type")
        }
        guard entry.dtype == .fp8e4m3 || entry.dtype == .fp8e5m2 else {
            return (try backend.upload(try checkpoint.tensor(name, as: .f32)), nil)
        }
        guard let quantization = config.quantization else {
            throw ModelError.badTensor(path: path, name: name, detail: "\(entry.dtype) weights need a 'quantization_config' in config.json (quant_method fp8, weight_block_size)")
        }
        guard shape.count == 2 else { throw ModelError.badTensor(path: path, name: name, detail: "fp8 block scales need a matrix, got shape \(shape)") }
        let scaleName = name + "_scale_inv"
        let block = quantization.blockSize
        let scaleShape = [(shape[0] + block - 1) / block, (shape[1] + block - 1) / block]
        guard let scaleEntry = checkpoint.entry(scaleName) else {
            throw ModelError.missingTensor(path: checkpoint.directory, name: scaleName + " (the block scales of fp8 '\(name)')")
        }
        guard scaleEntry.shape == scaleShape, scaleEntry.dtype.isFloatingPoint else {
            throw ModelError.badTensor(path: checkpoint.location[scaleName]?.path ?? path, name: scaleName, detail: "\(scaleEntry.dtype) \(scaleEntry.shape), expected floating-point \(scaleShape) for \(shape) in \(block)x\(block) blocks")
        }
        let values = try backend.upload(try checkpoint.tensor(name, as: entry.dtype))
        let scales = try backend.upload(try checkpoint.tensor(scaleName, as: .f32))
        // Only projections have fp8 code paths; anything else stored as fp8 is dequantised whatever the options.
        if options.keepQuantizedWeights && CheckpointConversion.quantizes(name, shape: shape) { return (values, scales) }
        return (try backend.blockDequantize(values: values, scales: scales, blockSize: block, to: .f32), nil)
    }
}
