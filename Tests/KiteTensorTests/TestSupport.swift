import KiteTensor

/// A small deterministic generator (SplitMix64) so tests do not depend on the platform's random source.
struct SeededRandom {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [-scale, scale).
    mutating func float(_ scale: Float = 1) -> Float {
        Float(Double(next() >> 11) / Double(1 << 53) * 2 - 1) * scale
    }

    mutating func floats(_ count: Int, scale: Float = 1) -> [Float] {
        (0..<count).map { _ in float(scale) }
    }

    mutating func tensor(_ shape: [Int], scale: Float = 1) -> Tensor {
        Tensor(floats(shape.reduce(1, *), scale: scale), shape: shape)
    }

    mutating func int(_ range: Range<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }
}

/// Largest |a - b| / max(1, |b|) over the elements.
func maxRelativeError(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    var worst: Float = 0
    for i in a.indices {
        let error = abs(a[i] - b[i]) / max(1, abs(b[i]))
        if error.isNaN { return .infinity }
        worst = max(worst, error)
    }
    return worst
}

/// Central finite difference of a scalar function of `input`'s elements, for a sample of indices.
func finiteDifferenceGradient(_ input: Tensor, indices: [Int], step: Float = 1e-2, _ loss: () throws -> Double) rethrows -> [Float] {
    var gradient: [Float] = []
    let values = input.floats
    for index in indices {
        let saved = values[index]
        values[index] = saved + step
        let plus = try loss()
        values[index] = saved - step
        let minus = try loss()
        values[index] = saved
        gradient.append(Float((plus - minus) / (2 * Double(step))))
    }
    return gradient
}

/// sum_i weights[i] * x[i] in fp64: the scalar "loss" whose gradient with respect to x is `weights`.
func weightedSum(_ x: Tensor, _ weights: [Float]) -> Double {
    let values = x.toFloats()
    var sum = 0.0
    for i in values.indices { sum += Double(values[i]) * Double(weights[i]) }
    return sum
}
