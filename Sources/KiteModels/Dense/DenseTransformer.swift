import KiteTensor
import Synchronization

/// A dense decoder-only transformer: llama, qwen2 and qwen3 are this one block with switches
/// (q/k/v biases, per-head q/k RMSNorm, tied embeddings).
///
/// One implementation serves the three modes: training (forward keeps what backward needs, or only each
/// layer's input when recomputing), prefill and decode (attention reads and extends a `KeyValueCache`).
/// Parameters are the tensors of `parameters`, by Hugging Face name; updating them in place (the optimizer,
/// a weight sync) is seen by the next forward.
public final class DenseTransformer: @unchecked Sendable {
    public let config: ModelConfig
    public let backend: any Backend
    public let parameters: ParameterSet
    let layers: [DenseLayer]
    let embedding: Tensor
    let finalNorm: Tensor
    /// `lm_head.weight`, or the embedding when the embeddings are tied.
    let outputWeight: Tensor
    let inverseFrequencies: [Float]
    /// The positions and tables of the last `rotaryTables` call.
    let rotaryCache = Mutex<(positions: [Int32], cos: Tensor, sin: Tensor)?>(nil)
    /// cos and sin of every position below a limit, for forwards whose positions live on the device.
    let rotaryTableCache = Mutex<(limit: Int, cos: Tensor, sin: Tensor)?>(nil)

    /// Binds `parameters` (host fp32 tensors for the CPU backend) to the architecture, checking every
    /// name and shape; `source` names where they came from in errors.
    public init(config: ModelConfig, parameters: ParameterSet, backend: any Backend, source: String = "parameters") throws {
        self.config = config
        self.backend = backend
        for (name, shape) in DenseTransformer.parameterShapes(config) {
            guard let tensor = parameters[name] else { throw ModelError.missingTensor(path: source, name: name) }
            guard tensor.shape == shape else {
                throw ModelError.badTensor(path: source, name: name, detail: "shape \(tensor.shape), expected \(shape) from the configuration")
            }
        }
        // Only the architecture's own tensors are kept: an extra tensor (a tied lm_head saved anyway) is not trained.
        let bound = ParameterSet()
        for (name, _) in DenseTransformer.parameterShapes(config) { bound.insert(name, try parameters.require(name, source: source)) }
        self.parameters = bound
        layers = try (0..<config.layerCount).map { try DenseLayer(index: $0, config: config, parameters: bound) }
        embedding = try bound.require("model.embed_tokens.weight")
        finalNorm = try bound.require("model.norm.weight")
        outputWeight = config.tieWordEmbeddings ? embedding : try bound.require("lm_head.weight")
        inverseFrequencies = config.rope.inverseFrequencies(dim: config.headDim)
    }

    /// Every parameter of the architecture with its shape, in checkpoint order.
    public static func parameterShapes(_ config: ModelConfig) -> [(String, [Int])] {
        var shapes: [(String, [Int])] = [("model.embed_tokens.weight", [config.vocabularySize, config.hiddenSize])]
        for layer in 0..<config.layerCount {
            shapes += DenseLayer.parameterShapes(layer: layer, config: config)
        }
        shapes.append(("model.norm.weight", [config.hiddenSize]))
        if !config.tieWordEmbeddings { shapes.append(("lm_head.weight", [config.vocabularySize, config.hiddenSize])) }
        return shapes
    }

    /// Loads `config.json` and the safetensors weights of a Hugging Face directory, converted to fp32.
    public static func load(directory: String, backend: any Backend) throws -> DenseTransformer {
        let config = try ModelConfig.load(path: directory + "/config.json")
        let checkpoint = try CheckpointDirectory(directory: directory)
        let parameters = ParameterSet()
        for (name, shape) in parameterShapes(config) {
            guard let entry = checkpoint.entry(name) else { throw ModelError.missingTensor(path: directory, name: name) }
            guard entry.shape == shape else {
                throw ModelError.badTensor(path: checkpoint.location[name]?.path ?? directory, name: name, detail: "shape \(entry.shape), expected \(shape) from config.json")
            }
            guard entry.dtype.isFloatingPoint else {
                throw ModelError.badTensor(path: checkpoint.location[name]?.path ?? directory, name: name, detail: "dtype \(entry.dtype) is not a floating-point type")
            }
            parameters.insert(name, try backend.upload(try checkpoint.tensor(name, as: .f32)))
        }
        return try DenseTransformer(config: config, parameters: parameters, backend: backend, source: directory)
    }

    /// Random weights as transformers initialises them: normal(0, 0.02) matrices, unit norms, zero biases.
    public static func randomlyInitialized(config: ModelConfig, seed: UInt64, backend: any Backend, standardDeviation: Double = 0.02) throws -> DenseTransformer {
        var generator = SeededGenerator(seed: seed)
        let parameters = ParameterSet()
        for (name, shape) in parameterShapes(config) {
            let count = shape.reduce(1, *)
            let values: [Float]
            if name.hasSuffix("norm.weight") {
                values = [Float](repeating: 1, count: count)
            } else if name.hasSuffix(".bias") {
                values = [Float](repeating: 0, count: count)
            } else {
                values = (0..<count).map { _ in Float(generator.nextGaussian() * standardDeviation) }
            }
            parameters.insert(name, try backend.upload(Tensor(values, shape: shape)))
        }
        return try DenseTransformer(config: config, parameters: parameters, backend: backend)
    }

    // MARK: Shared pieces

    /// Checks ids against the vocabulary with an error naming the offending position.
    func validate(tokens: [Int32]) throws {
        for (position, id) in tokens.enumerated() where id < 0 || Int(id) >= config.vocabularySize {
            throw ModelError.invalidInput("token id \(id) at position \(position) is outside the vocabulary (0..<\(config.vocabularySize))")
        }
    }

    /// cos and sin tables `[T, headDim / 2]` for the given positions: `cos(p * f_i) * scaling` in fp32,
    /// the same arithmetic as transformers' rotary embedding.
    func rotaryTables(positions: [Int32]) throws -> (cos: Tensor, sin: Tensor) {
        // Training steps repeat the same packing: reuse the last tables instead of a million sin/cos on the host.
        if let cached = rotaryCache.withLock({ $0 }), cached.positions == positions { return (cached.cos, cached.sin) }
        let tables = try computeRotaryTables(positions: positions)
        rotaryCache.withLock { $0 = (positions, tables.cos, tables.sin) }
        return tables
    }

    func computeRotaryTables(positions: [Int32]) throws -> (cos: Tensor, sin: Tensor) {
        let half = config.headDim / 2
        let scaling = config.rope.attentionScaling
        var cosValues = [Float](repeating: 0, count: positions.count * half)
        var sinValues = cosValues
        for (row, position) in positions.enumerated() {
            let p = Float(position)
            for i in 0..<half {
                let angle = p * inverseFrequencies[i]
                cosValues[row * half + i] = _cosf(angle) * scaling
                sinValues[row * half + i] = _sinf(angle) * scaling
            }
        }
        return (try backend.upload(Tensor(cosValues, shape: [positions.count, half])),
                try backend.upload(Tensor(sinValues, shape: [positions.count, half])))
    }

    var attentionScale: Float { 1 / Float(config.headDim).squareRoot() }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func _cosf(_ x: Float) -> Float { Glibc.cosf(x) }
@inline(__always) func _sinf(_ x: Float) -> Float { Glibc.sinf(x) }
#endif

extension DenseTransformer {
    /// A copy with its own parameter tensors (for an engine that must not see the trainer's updates until
    /// the next weight sync).
    ///
    /// - Parameter matrixDType: store the matrices (embeddings, projections, the head) in this dtype instead,
    ///   converted with round-to-nearest-even: an inference engine on a bf16 backend reads bf16 weights
    ///   directly, and the conversion gives exactly the bf16 copies the trainer's products read. Vectors
    ///   (norm weights, biases) keep their dtype, so normalisation reads the same fp32 values as training.
    public func clone(matrixDType: DType? = nil) throws -> DenseTransformer {
        let copies = ParameterSet()
        for (name, parameter) in parameters.entries {
            let dtype = parameter.rank >= 2 ? (matrixDType ?? parameter.dtype) : parameter.dtype
            let copy = try backend.zeros(parameter.shape, dtype: dtype)
            try backend.copy(parameter, into: copy)
            copies.insert(name, copy)
        }
        return try DenseTransformer(config: config, parameters: copies, backend: backend)
    }

    /// Writes `source`'s parameters into this model's (same architecture), converting dtypes where they
    /// differ: a colocated weight sync, one device copy or cast per tensor.
    public func loadParameters(from source: DenseTransformer) throws {
        for (name, parameter) in parameters.entries {
            try backend.copy(try source.parameters.require(name, source: "source model"), into: parameter)
        }
    }
}
