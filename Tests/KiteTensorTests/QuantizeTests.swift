import Testing
@testable import KiteTensor

/// fp8 block quantisation on the CPU reference, and the multi-tensor AdamW default.
struct QuantizeTests {
    let backend = CPUBackend(threads: 2)

    @Test func blockQuantizationKeepsEachTileWithinFP8Precision() throws {
        var random = SeededRandom(seed: 9)
        var values = random.floats(300 * 200, scale: 10)
        for r in 256..<300 { for c in 128..<200 { values[r * 200 + c] = 0 } }
        let x = Tensor(values, shape: [300, 200])
        let (quantized, scales) = try backend.blockQuantize(x, blockSize: 128, to: .fp8e4m3)
        #expect(quantized.dtype == .fp8e4m3 && scales.shape == [3, 2])
        // An all-zero tile gets scale 1; the others amax / 448.
        #expect(scales.toFloats()[5] == 1)
        var amax: Float = 0
        for r in 0..<128 { for c in 0..<128 { amax = max(amax, abs(values[r * 200 + c])) } }
        #expect(scales.toFloats()[0] == amax / 448)
        let restored = try backend.blockDequantize(values: quantized, scales: scales, blockSize: 128, to: .f32).toFloats()
        for i in values.indices {
            let scale = scales.toFloats()[(i / 200 / 128) * 2 + (i % 200) / 128]
            // e4m3 keeps 3 mantissa bits: relative error 2^-4 for normals, absolute 2^-10 * scale near zero.
            #expect(abs(restored[i] - values[i]) <= max(abs(values[i]) / 16, scale * 0x1p-9), "element \(i)")
        }
    }

    @Test func blockQuantizationRejectsNonFP8Targets() {
        #expect(throws: KiteTensorError.self) { try backend.blockQuantize(Tensor(zeros: [4, 4]), blockSize: 2, to: .bf16) }
        #expect(throws: KiteTensorError.self) { try backend.blockQuantize(Tensor(zeros: [4]), blockSize: 2, to: .fp8e4m3) }
    }

    @Test func multiTensorAdamWEqualsOneTensorAtATime() throws {
        var random = SeededRandom(seed: 10)
        let shapes = [[5], [3, 4]]
        let step = AdamWStep(learningRate: 0.1, weightDecay: 0.01, step: 2, gradientScale: 0.5)
        var one: [[Tensor]] = [], many: [[Tensor]] = []
        for shape in shapes {
            let set = [random.tensor(shape), random.tensor(shape), random.tensor(shape, scale: 0.1), Tensor(random.floats(shape.reduce(1, *), scale: 0.1).map { $0 * $0 }, shape: shape)]
            one.append(set.map { $0.copy() })
            many.append(set.map { $0.copy() })
        }
        for set in one { try backend.adamw(parameter: set[0], gradient: set[1], firstMoment: set[2], secondMoment: set[3], step: step) }
        try backend.adamw(parameters: many.map { $0[0] }, gradients: many.map { $0[1] }, firstMoments: many.map { $0[2] },
                          secondMoments: many.map { $0[3] }, step: step)
        for (a, b) in zip(one, many) {
            #expect(a[0].toFloats() == b[0].toFloats())
            #expect(a[3].toFloats() == b[3].toFloats())
        }
        #expect(throws: KiteTensorError.self) {
            try backend.adamw(parameters: [many[0][0]], gradients: [], firstMoments: [], secondMoments: [], step: step)
        }
    }
}
