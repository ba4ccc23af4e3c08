import Testing
@testable import KiteTensor

/// The fused inference steps as the CPU runs them (the composed operations), and the stacked views the
/// inference copies of models use.
struct FusedInferenceTests {
    let backend = CPUBackend(threads: 2)

    @Test func contiguousStackJoinsOnlyConsecutiveViewsOfOneStorage() {
        let whole = Tensor(zeros: [10, 4])
        let (a, b, c) = (whole.rows(0..<3), whole.rows(3..<5), whole.rows(5..<10))
        let stacked = Tensor.contiguousStack([a, b, c])
        #expect(stacked?.shape == [10, 4])
        #expect(stacked?.rawPointer == whole.rawPointer)
        #expect(Tensor.contiguousStack([b, c])?.shape == [7, 4])
        #expect(Tensor.contiguousStack([a, c]) == nil, "a gap")
        #expect(Tensor.contiguousStack([b, a]) == nil, "out of order")
        #expect(Tensor.contiguousStack([a, Tensor(zeros: [2, 4])]) == nil, "another storage")
        #expect(Tensor.contiguousStack([whole.reshaped([20, 2]).rows(0..<6), b]) == nil, "another row width")
        let vector = Tensor(zeros: [6])
        #expect(Tensor.contiguousStack([vector.rows(0..<2), vector.rows(2..<6)])?.shape == [6])
    }

    @Test func addRMSNormAddsInPlaceThenNormalises() throws {
        var random = SeededRandom(seed: 40)
        let x = random.tensor([3, 16]), target = random.tensor([3, 16], scale: 2), weight = random.tensor([16])
        let expectedSum = try backend.add(target, x)
        let expected = try backend.rmsNorm(expectedSum, weight: weight, epsilon: 1e-6).output
        let output = try backend.addRMSNorm(x, into: target, weight: weight, epsilon: 1e-6)
        #expect(target.toFloats() == expectedSum.toFloats())
        #expect(output.toFloats() == expected.toFloats())
    }

    @Test func packedSwigluReadsGateThenUp() throws {
        var random = SeededRandom(seed: 41)
        let gate = random.tensor([4, 6], scale: 3), up = random.tensor([4, 6])
        let packed = try backend.concatenateColumns([gate, up])
        let output = try backend.swiglu(packed: packed)
        #expect(output.shape == [4, 6])
        #expect(output.toFloats() == (try backend.swiglu(gate: gate, up: up)).toFloats())
        #expect(throws: KiteTensorError.self) { try backend.swiglu(packed: Tensor(zeros: [2, 5])) }
    }

    @Test func rotateAndCacheNormalisesRotatesAndStores() throws {
        var random = SeededRandom(seed: 42)
        let (tokens, heads, kvHeads, dim) = (3, 4, 2, 8)
        let (query, key, value) = (random.tensor([tokens, heads, dim]), random.tensor([tokens, kvHeads, dim]), random.tensor([tokens, kvHeads, dim]))
        let packed = try backend.concatenateColumns([query.reshaped([tokens, heads * dim]), key.reshaped([tokens, kvHeads * dim]), value.reshaped([tokens, kvHeads * dim])])
        let (queryNorm, keyNorm) = (random.tensor([dim]), random.tensor([dim]))
        let (cos, sin) = (random.tensor([tokens, dim / 2]), random.tensor([tokens, dim / 2]))
        let inputs = PackedAttentionProjections(projections: packed, queryHeads: heads, keyValueHeads: kvHeads, headDim: dim, queryNorm: queryNorm,
                                                keyNorm: keyNorm, epsilon: 1e-6, cos: cos, sin: sin)
        let (keyCache, valueCache) = (Tensor(zeros: [8, kvHeads, dim]), Tensor(zeros: [8, kvHeads, dim]))
        let slots: [Int32] = [7, 0, 4]
        let rotated = try backend.rotateAndCache(inputs, keyCache: keyCache, valueCache: valueCache, slotIndices: Tensor(int32: slots))

        let expectedQuery = try backend.rope(try backend.rmsNorm(query, weight: queryNorm, epsilon: 1e-6).output, cos: cos, sin: sin, inverse: false)
        let expectedKey = try backend.rope(try backend.rmsNorm(key, weight: keyNorm, epsilon: 1e-6).output, cos: cos, sin: sin, inverse: false)
        #expect(rotated.shape == [tokens, heads, dim])
        #expect(rotated.toFloats() == expectedQuery.toFloats())
        #expect(try backend.gatherRows(keyCache, rows: slots).toFloats() == expectedKey.toFloats())
        #expect(try backend.gatherRows(valueCache, rows: slots).toFloats() == value.toFloats())
        #expect(try backend.gatherRows(keyCache, rows: [1, 2, 3, 5, 6]).toFloats().allSatisfy { $0 == 0 }, "other slots untouched")

        var wrong = inputs
        wrong.cos = random.tensor([tokens, dim])
        #expect(throws: KiteTensorError.self) {
            try backend.rotateAndCache(wrong, keyCache: keyCache, valueCache: valueCache, slotIndices: Tensor(int32: slots))
        }
    }
}
