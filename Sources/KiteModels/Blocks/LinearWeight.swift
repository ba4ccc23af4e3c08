import KiteTensor

/// A projection weight `[out, in]` bound by its Hugging Face name: fp32 (what training holds), or block-scaled
/// fp8 values with their `<name>_scale_inv` tile scales (what an engine serving an fp8 checkpoint holds).
///
/// fp8 weights go to the backend's block-scaled product (`Backend.blockScaledMatmul`): the CPU dequantises
/// one fp32 copy per use, the CUDA backend runs an fp8 product with both scales. They cannot be trained.
struct LinearWeight {
    let name: String
    let weight: Tensor
    /// `[ceil(out / blockSize), ceil(in / blockSize)]` fp32 tile scales, for fp8 weights.
    let scaleInverse: Tensor?
    let blockSize: Int

    /// Binds `name` from `parameters`, with its scales from `buffers` when the weight is fp8.
    init(_ name: String, parameters: ParameterSet, buffers: ParameterSet, blockSize: Int) throws {
        self.name = name
        weight = try parameters.require(name)
        self.blockSize = blockSize
        if weight.dtype == .fp8e4m3 || weight.dtype == .fp8e5m2 {
            scaleInverse = try buffers.require(name + "_scale_inv")
        } else {
            scaleInverse = nil
        }
    }

    var isQuantized: Bool { scaleInverse != nil }

    /// The weight as the backend's products take it: as stored, or dequantised.
    func materialized(_ backend: any Backend) throws -> Tensor {
        guard let scaleInverse else { return weight }
        return try backend.blockDequantize(values: weight, scales: scaleInverse, blockSize: blockSize, to: .f32)
    }

    /// The weight for a backward pass, which fp8 weights do not have.
    func trainable() throws -> Tensor {
        guard scaleInverse == nil else {
            throw ModelError.invalidInput("'\(name)' holds fp8 weights, which cannot be trained: load the checkpoint dequantised for training")
        }
        return weight
    }
}

extension Transformer {
    /// `y = x W^T + b`.
    func linear(_ x: Tensor, _ weight: LinearWeight, _ bias: Tensor?) throws -> Tensor {
        let y: Tensor
        if let scales = weight.scaleInverse {
            y = try backend.blockScaledMatmul(x, values: weight.weight, scales: scales, blockSize: weight.blockSize)
        } else {
            y = try backend.matmul(x, weight.weight, transposeA: false, transposeB: true)
        }
        if let bias { try backend.addBias(y, bias: bias) }
        return y
    }

    /// Backward of `linear`: returns dx, adds dW and db.
    func linearBackward(_ dOutput: Tensor, input: Tensor, weight: LinearWeight, weightGradient: Tensor, biasGradient: Tensor?) throws -> Tensor {
        let w = try weight.trainable()
        try backend.matmul(dOutput, input, transposeA: true, transposeB: false, into: weightGradient, alpha: 1, beta: 1)
        if let biasGradient { try backend.accumulateColumnSums(dOutput, into: biasGradient) }
        return try backend.matmul(dOutput, w, transposeA: false, transposeB: false)
    }
}

/// The gradient accumulators of one block, looked up by the names of its weights.
struct GradientLookup {
    let gradients: ParameterSet
    let prefix: String

    func callAsFunction(_ name: String) throws -> Tensor { try gradients.require(prefix + name, source: "gradients") }
    func optional(_ name: String, _ present: Bool) throws -> Tensor? { present ? try self(name) : nil }
}
