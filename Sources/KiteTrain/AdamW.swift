import KiteModels
import KiteTensor

/// Hyper-parameters of AdamW, with Megatron's flag names in the comments.
public struct AdamWConfig: Sendable, Equatable, Codable {
    /// `--adam-beta1`
    public var beta1: Float
    /// `--adam-beta2`
    public var beta2: Float
    /// `--adam-eps`
    public var epsilon: Float
    /// `--weight-decay`
    public var weightDecay: Float

    public init(beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }
}

/// AdamW over a `ParameterSet` of fp32 master weights, as PyTorch's `torch.optim.AdamW` computes it:
/// decoupled weight decay, bias-corrected first and second moments, one step counter for all parameters.
public final class AdamW: @unchecked Sendable {
    public let config: AdamWConfig
    public let backend: any Backend
    /// First moments, named like the parameters.
    public let firstMoments: ParameterSet
    /// Second moments, named like the parameters.
    public let secondMoments: ParameterSet
    /// Steps taken so far.
    public private(set) var stepCount = 0

    public init(parameters: ParameterSet, config: AdamWConfig = AdamWConfig(), backend: any Backend) throws {
        for (name, tensor) in parameters.entries where tensor.dtype != .f32 {
            throw ModelError.badTensor(path: "optimizer", name: name, detail: "master weights must be f32, found \(tensor.dtype)")
        }
        self.config = config
        self.backend = backend
        firstMoments = try parameters.zerosLike(backend: backend)
        secondMoments = try parameters.zerosLike(backend: backend)
    }

    /// Restores moments and the step count (from a checkpoint).
    public func restore(firstMoments first: ParameterSet, secondMoments second: ParameterSet, stepCount: Int) throws {
        for (name, tensor) in firstMoments.entries {
            try backend.copy(try first.require(name, source: "optimizer checkpoint (first moments)"), into: tensor)
            try backend.copy(try second.require(name, source: "optimizer checkpoint (second moments)"), into: secondMoments.require(name))
        }
        self.stepCount = stepCount
    }

    /// One update of every parameter from its gradient, scaled by `gradientScale` first (clipping).
    public func step(parameters: ParameterSet, gradients: ParameterSet, learningRate: Float, gradientScale: Float = 1) throws {
        stepCount += 1
        let hyper = AdamWStep(
            learningRate: learningRate, beta1: config.beta1, beta2: config.beta2, epsilon: config.epsilon,
            weightDecay: config.weightDecay, step: stepCount, gradientScale: gradientScale)
        // One multi-tensor update: a single kernel launch on GPU backends.
        let entries = parameters.entries
        try backend.adamw(
            parameters: entries.map(\.tensor),
            gradients: try entries.map { try gradients.require($0.name, source: "gradients") },
            firstMoments: try entries.map { try firstMoments.require($0.name) },
            secondMoments: try entries.map { try secondMoments.require($0.name) },
            step: hyper)
    }
}
