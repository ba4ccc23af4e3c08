import KiteTensor
import Synchronization

/// A decoder-only transformer: llama, qwen2, qwen3, qwen3_moe, deepseek_v2 and deepseek_v3 are this one block
/// with switches (q/k/v biases, per-head q/k RMSNorm, tied embeddings, latent instead of grouped-query
/// attention, a mixture of experts instead of the dense MLP in some layers).
///
/// One implementation serves the three modes: training (forward keeps what backward needs, or only each
/// layer's input when recomputing), prefill and decode (attention reads and extends a `KeyValueCache`).
/// Parameters are the tensors of `parameters`, by Hugging Face name; updating them in place (the optimizer,
/// a weight sync) is seen by the next forward.
public final class Transformer: CausalLanguageModel, @unchecked Sendable {
    public let config: ModelConfig
    public let backend: any Backend
    public let parameters: ParameterSet
    public let buffers: ParameterSet
    let layers: [DecoderLayer]
    let embedding: Tensor
    let finalNorm: Tensor
    /// `lm_head.weight`, or the embedding when the embeddings are tied.
    let outputWeight: Tensor
    let inverseFrequencies: [Float]
    /// The positions and tables of the last `rotaryTables` call.
    let rotaryCache = Mutex<(positions: [Int32], tables: RotaryTables)?>(nil)
    /// cos and sin of every position below a limit, for forwards whose positions live on the device.
    let rotaryTableCache = Mutex<(limit: Int, cos: Tensor, sin: Tensor)?>(nil)
    let expertLoad = Mutex(ExpertLoad())

    /// Binds `parameters` and `buffers` (host fp32 tensors for the CPU backend; projection weights may be
    /// block-scaled fp8 with their scales among the buffers) to the architecture, checking every name and
    /// shape; `source` names where they came from in errors.
    public init(config: ModelConfig, parameters: ParameterSet, buffers: ParameterSet = ParameterSet(), backend: any Backend, source: String = "parameters") throws {
        self.config = config
        self.backend = backend
        // Only the architecture's own tensors are kept: an extra tensor (a tied lm_head saved anyway) is not trained.
        let bound = ParameterSet(), boundBuffers = ParameterSet()
        for (name, shape) in Transformer.parameterShapes(config) {
            let tensor = try Self.checked(parameters, name, shape, source)
            bound.insert(name, tensor)
            if tensor.dtype == .fp8e4m3 || tensor.dtype == .fp8e5m2 {
                let block = config.quantization?.blockSize ?? 128
                let scaleName = name + "_scale_inv"
                let scales = [(shape[0] + block - 1) / block, (shape[1] + block - 1) / block]
                boundBuffers.insert(scaleName, try Self.checked(buffers, scaleName, scales, source))
            } else if !tensor.dtype.isFloatingPoint {
                throw ModelError.badTensor(path: source, name: name, detail: "dtype \(tensor.dtype) is not a floating-point type")
            }
        }
        for (name, shape) in Transformer.bufferShapes(config) { boundBuffers.insert(name, try Self.checked(buffers, name, shape, source)) }
        self.parameters = bound
        self.buffers = boundBuffers
        layers = try (0..<config.layerCount).map { try DecoderLayer(index: $0, config: config, parameters: bound, buffers: boundBuffers) }
        embedding = try bound.require("model.embed_tokens.weight")
        finalNorm = try bound.require("model.norm.weight")
        outputWeight = config.tieWordEmbeddings ? embedding : try bound.require("lm_head.weight")
        inverseFrequencies = config.rope.inverseFrequencies(dim: config.headDim)
    }

    private static func checked(_ set: ParameterSet, _ name: String, _ shape: [Int], _ source: String) throws -> Tensor {
        guard let tensor = set[name] else { throw ModelError.missingTensor(path: source, name: name) }
        guard tensor.shape == shape else {
            throw ModelError.badTensor(path: source, name: name, detail: "shape \(tensor.shape), expected \(shape) from the configuration")
        }
        return tensor
    }

    /// Every trained parameter of the architecture with its shape, in checkpoint order.
    public static func parameterShapes(_ config: ModelConfig) -> [(String, [Int])] {
        var shapes: [(String, [Int])] = [("model.embed_tokens.weight", [config.vocabularySize, config.hiddenSize])]
        for layer in 0..<config.layerCount {
            shapes += DecoderLayer.parameterShapes(layer: layer, config: config)
        }
        shapes.append(("model.norm.weight", [config.hiddenSize]))
        if !config.tieWordEmbeddings { shapes.append(("lm_head.weight", [config.vocabularySize, config.hiddenSize])) }
        return shapes
    }

    /// Tensors the architecture keeps with its weights but does not train (DeepSeek-V3's
    /// `e_score_correction_bias`), with their shapes. fp8 tile scales come on top of these.
    public static func bufferShapes(_ config: ModelConfig) -> [(String, [Int])] {
        (0..<config.layerCount).flatMap { DecoderLayer.bufferShapes(layer: $0, config: config) }
    }

    /// Random weights as transformers initialises them: normal(0, 0.02) matrices, unit norms, zero biases
    /// and zero expert-choice biases.
    public static func randomlyInitialized(config: ModelConfig, seed: UInt64, backend: any Backend, standardDeviation: Double = 0.02) throws -> Transformer {
        var generator = SeededGenerator(seed: seed)
        let parameters = ParameterSet(), buffers = ParameterSet()
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
        for (name, shape) in bufferShapes(config) { buffers.insert(name, try backend.zeros(shape, dtype: .f32)) }
        return try Transformer(config: config, parameters: parameters, buffers: buffers, backend: backend)
    }

    /// Whether some weights are held as fp8 (an engine serving an fp8 checkpoint); such a model has no backward.
    public var holdsQuantizedWeights: Bool { parameters.entries.contains { $0.tensor.dtype == .fp8e4m3 || $0.tensor.dtype == .fp8e5m2 } }

    public var cacheLayout: KeyValueCacheLayout {
        if let latent = config.latentAttention {
            return KeyValueCacheLayout(layerCount: config.layerCount, keyHeads: 1, keyWidth: latent.cacheWidth, values: nil)
        }
        return KeyValueCacheLayout(
            layerCount: config.layerCount, keyHeads: config.keyValueHeads, keyWidth: config.headDim,
            values: .init(heads: config.keyValueHeads, width: config.headDim))
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
    func rotaryTables(positions: [Int32]) throws -> RotaryTables {
        // Training steps repeat the same packing: reuse the last tables instead of a million sin/cos on the host.
        if let cached = rotaryCache.withLock({ $0 }), cached.positions == positions { return cached.tables }
        let tables = try computeRotaryTables(positions: positions)
        rotaryCache.withLock { $0 = (positions, tables) }
        return tables
    }

    func computeRotaryTables(positions: [Int32]) throws -> RotaryTables {
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
        return RotaryTables(cos: try backend.upload(Tensor(cosValues, shape: [positions.count, half])),
                            sin: try backend.upload(Tensor(sinValues, shape: [positions.count, half])))
    }

    // MARK: Expert load

    func recordExpertLoad(layer: Int, _ counts: [Int]) {
        expertLoad.withLock { $0.add(layer: layer, counts: counts) }
    }

    public func takeExpertLoad() -> ExpertLoad {
        expertLoad.withLock { load in
            defer { load = ExpertLoad() }
            return load
        }
    }

    /// A copy with its own parameter and buffer tensors (for an engine that must not see the trainer's updates
    /// until the next weight sync).
    public func clone() throws -> Transformer { try clone(matrixDType: nil) }

    /// `clone()` with the floating-point matrices (embeddings, projections, experts, the head) stored in
    /// `matrixDType`, converted with round-to-nearest-even: an inference engine on a bf16 backend reads bf16
    /// weights directly, and the conversion gives exactly the bf16 copies the trainer's products read.
    /// Vectors (norm weights, biases) keep their dtype, so normalisation reads the same fp32 values as
    /// training; fp8 block weights and buffers stay as they are.
    ///
    /// With `stackProjections` (the default), each layer's q/k/v weights, and its gate/up weights, are copied
    /// into one allocation and kept as views of it, so inference runs one product for each group (see
    /// `StackedProjection`); the parameters keep their names, shapes and values, and training code and weight
    /// syncs address them as before.
    public func clone(matrixDType: DType?, stackProjections: Bool = true) throws -> Transformer {
        func copyDType(_ tensor: Tensor, convert: Bool) -> DType {
            let keep = !convert || tensor.rank < 2 || tensor.dtype == .fp8e4m3 || tensor.dtype == .fp8e5m2
            return keep ? tensor.dtype : (matrixDType ?? tensor.dtype)
        }
        func copies(_ set: ParameterSet, convert: Bool, stack: Bool) throws -> ParameterSet {
            let stacked = stack ? try stackedCopies(of: set) { copyDType($0, convert: convert) } : [:]
            let result = ParameterSet()
            for (name, tensor) in set.entries {
                let copy = try stacked[name] ?? backend.zeros(tensor.shape, dtype: copyDType(tensor, convert: convert))
                try backend.copy(tensor, into: copy)
                result.insert(name, copy)
            }
            return result
        }
        return try Transformer(
            config: config, parameters: try copies(parameters, convert: true, stack: stackProjections),
            buffers: try copies(buffers, convert: false, stack: false), backend: backend)
    }
}

/// RoPE's cos and sin tables `[T, rotary dim / 2]` for a batch's positions.
struct RotaryTables: @unchecked Sendable {
    let cos: Tensor
    let sin: Tensor
}

/// The dense architectures' former name: they are `Transformer` with grouped-query attention and a dense MLP.
@available(*, deprecated, renamed: "Transformer")
public typealias DenseTransformer = Transformer

#if canImport(Glibc)
import Glibc
@inline(__always) func _cosf(_ x: Float) -> Float { Glibc.cosf(x) }
@inline(__always) func _sinf(_ x: Float) -> Float { Glibc.sinf(x) }
#endif
