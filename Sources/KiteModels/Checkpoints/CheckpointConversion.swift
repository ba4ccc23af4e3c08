import KiteJSON
import KiteTensor

/// Converts Hugging Face checkpoints between block-scaled fp8 and bf16, shard by shard, in DeepSeek-V3's
/// layout: `<name>` as fp8 e4m3 and `<name>_scale_inv` as fp32 `[ceil(rows / block), ceil(columns / block)]`
/// tile scales, dequantised value = fp8 value times scale (`kite convert --fp8-to-bf16 / --bf16-to-fp8`).
///
/// The output directory mirrors the input: the same shard files (and index), config.json with
/// `quantization_config` added or removed, and every other file (tokenizer, generation config) copied.
public enum CheckpointConversion {
    /// What a conversion did.
    public struct Report: Sendable, Equatable {
        /// Tensors quantised or dequantised.
        public var converted: Int
        /// Tensors copied unchanged.
        public var copied: Int
    }

    /// Whether `--bf16-to-fp8` quantises a tensor: the projection matrices of the decoder layers (attention,
    /// dense MLP, routed and shared experts, latent attention's low-rank projections), as DeepSeek-V3's and
    /// slime's fp8 checkpoints do. Embeddings, the output head, norms, routers and biases stay as they are,
    /// and so does the multi-token-prediction layer's `eh_proj`.
    public static func quantizes(_ name: String, shape: [Int], skipping modules: [String] = []) -> Bool {
        guard shape.count == 2, name.hasPrefix("model.layers."), name.hasSuffix(".weight") else { return false }
        let module = String(name.dropLast(".weight".count))
        guard module.hasSuffix("_proj") || module.hasSuffix("_proj_with_mqa"), !module.hasSuffix(".eh_proj") else { return false }
        return !modules.contains { module == $0 || module.hasSuffix("." + $0) }
    }

    /// Quantises a checkpoint's projection weights to fp8 e4m3 with `blockSize` square tiles.
    public static func quantize(input: String, output: String, blockSize: Int = 128, backend: any Backend) throws -> Report {
        guard blockSize > 0 else { throw ModelError.invalidInput("block size must be positive, got \(blockSize)") }
        var config = try readConfig(input)
        if config["quantization_config"].map({ !$0.isNull }) == true {
            throw ModelError.config(path: input + "/config.json", field: "quantization_config", detail: "the checkpoint is already quantised")
        }
        let quantization = BlockQuantization(blockSize: blockSize)
        config["quantization_config"] = .object(quantization.jsonObject)
        return try convert(input: input, output: output, config: config) { name, file in
            guard let entry = file.entries[name] else { throw ModelError.missingTensor(path: file.path, name: name) }
            if entry.dtype == .fp8e4m3 || entry.dtype == .fp8e5m2 {
                throw ModelError.badTensor(path: file.path, name: name, detail: "already \(entry.dtype)")
            }
            guard entry.dtype.isFloatingPoint, quantizes(name, shape: entry.shape) else { return nil }
            let weights = try backend.upload(try file.tensor(name, as: .f32))
            let (values, scales) = try backend.blockQuantize(weights, blockSize: blockSize, to: .fp8e4m3)
            return [(name, try backend.download(values)), (name + "_scale_inv", try backend.download(scales))]
        }
    }

    /// Dequantises every fp8 tensor that has `<name>_scale_inv` to bf16 and drops the scales.
    public static func dequantize(input: String, output: String, backend: any Backend) throws -> Report {
        var config = try readConfig(input)
        let quantization = try ModelConfig.quantization(of: config, source: input + "/config.json")
        config["quantization_config"] = nil
        if config["torch_dtype"] != nil { config["torch_dtype"] = "bfloat16" }
        if config["dtype"] != nil { config["dtype"] = "bfloat16" }
        return try convert(input: input, output: output, config: config) { name, file in
            guard let entry = file.entries[name] else { throw ModelError.missingTensor(path: file.path, name: name) }
            if name.hasSuffix("_scale_inv") { return [] }
            guard entry.dtype == .fp8e4m3 || entry.dtype == .fp8e5m2 else { return nil }
            guard let quantization else {
                throw ModelError.config(path: input + "/config.json", field: "quantization_config", detail: "missing, but '\(name)' is \(entry.dtype)")
            }
            let scaleName = name + "_scale_inv"
            guard file.entries[scaleName] != nil else {
                throw ModelError.missingTensor(path: file.path, name: scaleName + " (the block scales of fp8 '\(name)'; expected in the same shard)")
            }
            let values = try backend.upload(try file.tensor(name, as: entry.dtype))
            let scales = try backend.upload(try file.tensor(scaleName, as: .f32))
            let weights = try backend.blockDequantize(values: values, scales: scales, blockSize: quantization.blockSize, to: .bf16)
            return [(name, try backend.download(weights))]
        }
    }

    /// Runs `transform` over every tensor of every shard: it returns the tensors to write instead (empty: drop
    /// it) or nil to copy the tensor unchanged.
    static func convert(
        input: String, output: String, config: JSONObject,
        transform: (String, SafetensorsFile) throws -> [(name: String, tensor: Tensor)]?
    ) throws -> Report {
        guard input != output else { throw ModelError.invalidInput("input and output are the same directory: \(input)") }
        if FileText.exists(output) {
            guard FileText.isDirectory(output), try FileText.list(output).isEmpty else {
                throw ModelError.io(path: output, detail: "exists and is not an empty directory; refusing to overwrite it")
            }
        }
        let indexPath = input + "/model.safetensors.index.json"
        let checkpoint = try CheckpointDirectory(directory: input)
        let shards = Set(checkpoint.location.values.map { String($0.path.dropFirst(input.count + 1)) }).sorted()
        try FileText.makeDirectory(output)
        var report = Report(converted: 0, copied: 0)
        var weightMap: [(String, String)] = []
        var totalSize = 0
        for shard in shards {
            let file = try SafetensorsFile(path: input + "/" + shard)
            var tensors: [(name: String, tensor: Tensor)] = []
            for name in file.names {
                if let replacement = try transform(name, file) {
                    if !replacement.isEmpty { report.converted += 1 }
                    tensors += replacement
                } else {
                    guard let entry = file.entries[name] else { throw ModelError.missingTensor(path: file.path, name: name) }
                    tensors.append((name, try file.tensor(name, as: entry.dtype)))
                    report.copied += 1
                }
            }
            try SafetensorsWriter.write(tensors, metadata: file.metadata.isEmpty ? ["format": "pt"] : file.metadata, to: output + "/" + shard)
            for (name, tensor) in tensors {
                weightMap.append((name, shard))
                totalSize += tensor.byteCount
            }
        }
        if FileText.exists(indexPath) {
            let index: JSONObject = [
                "metadata": ["total_size": .int(totalSize)],
                "weight_map": .object(JSONObject(weightMap.sorted { $0.0 < $1.0 }.map { ($0.0, JSONValue.string($0.1)) })),
            ]
            try FileText.writeAtomically(output + "/model.safetensors.index.json", text: JSONValue.object(index).serialized(JSONWriteOptions(ensureASCII: false, indent: 2)) + "\n")
        }
        try FileText.writeAtomically(output + "/config.json", text: JSONValue.object(config).serialized(JSONWriteOptions(ensureASCII: false, indent: 2)) + "\n")
        for name in try FileText.list(input) where !name.hasSuffix(".safetensors") && name != "config.json" && name != "model.safetensors.index.json" {
            let path = input + "/" + name
            guard !FileText.isDirectory(path) else { continue }
            var bytes = try FileText.readBytes(path)
            try bytes.withUnsafeMutableBytes { buffer in
                try FileText.writeAtomically(output + "/" + name, chunks: [UnsafeRawBufferPointer(buffer)])
            }
        }
        return report
    }

    static func readConfig(_ directory: String) throws -> JSONObject {
        let path = directory + "/config.json"
        let value: JSONValue
        do { value = try JSONValue(parsing: try FileText.read(path), source: path) } catch let error as JSONParseError {
            throw ModelError.malformed(path: path, detail: error.description)
        }
        guard let object = value.objectValue else { throw ModelError.malformed(path: path, detail: "expected a JSON object, found \(value.typeName)") }
        return object
    }
}

extension ModelConfig {
    /// The block quantisation a config.json object declares, or nil.
    static func quantization(of object: JSONObject, source: String) throws -> BlockQuantization? {
        guard let value = object["quantization_config"], !value.isNull else { return nil }
        guard let quantization = value.objectValue else {
            throw ModelError.config(path: source, field: "quantization_config", detail: "expected an object, found \(value.typeName)")
        }
        return try BlockQuantization(fields: ConfigFields(object: quantization, source: source, path: "quantization_config."))
    }
}
