import Foundation
import Testing
@testable import KiteTensor

/// Each CPU operation against a direct fp64 implementation of its definition, and each backward against
/// central finite differences of `sum(w * forward(x))` (step 1e-2; fp32 forward passes limit agreement to
/// about 1e-3 relative, hence the tolerances).
struct OperationTests {
    let backend = CPUBackend(threads: 2)

    @Test func rmsNormMatchesDefinitionAndItsGradient() throws {
        var random = SeededRandom(seed: 1)
        let x = random.tensor([5, 24], scale: 2), weight = random.tensor([24])
        let (y, inverseRMS) = try backend.rmsNorm(x, weight: weight, epsilon: 1e-6)
        let xv = x.toFloats(), wv = weight.toFloats()
        var expected: [Float] = []
        for row in 0..<5 {
            let values = xv[(row * 24)..<((row + 1) * 24)].map(Double.init)
            let r = 1 / (values.map { $0 * $0 }.reduce(0, +) / 24 + 1e-6).squareRoot()
            #expect(abs(Double(inverseRMS.toFloats()[row]) - r) < 1e-5 * r)
            for i in 0..<24 { expected.append(Float(values[i] * r * Double(wv[i]))) }
        }
        #expect(maxRelativeError(y.toFloats(), expected) < 1e-5)

        let w = random.floats(x.count)
        let weightGradient = Tensor(zeros: [24])
        let dx = try backend.rmsNormBackward(Tensor(w, shape: x.shape), input: x, weight: weight, inverseRMS: inverseRMS, weightGradient: weightGradient)
        let loss = { weightedSum(try backend.rmsNorm(x, weight: weight, epsilon: 1e-6).output, w) }
        let indices = [0, 7, 30, 64, 119]
        #expect(maxRelativeError(indices.map { dx.toFloats()[$0] }, try finiteDifferenceGradient(x, indices: indices, loss)) < 2e-3)
        #expect(maxRelativeError(weightGradient.toFloats(), try finiteDifferenceGradient(weight, indices: Array(0..<24), loss)) < 2e-3)
    }

    @Test func ropeRotatesHalvesAndInverseUndoesIt() throws {
        var random = SeededRandom(seed: 2)
        let x = random.tensor([3, 2, 8])
        let angles = (0..<(3 * 4)).map { Float($0) * 0.37 }
        let cos = Tensor(angles.map { Foundation.cos($0) }, shape: [3, 4]), sin = Tensor(angles.map { Foundation.sin($0) }, shape: [3, 4])
        let y = try backend.rope(x, cos: cos, sin: sin, inverse: false)
        let xv = x.toFloats(), yv = y.toFloats()
        for t in 0..<3 {
            for h in 0..<2 {
                for i in 0..<4 {
                    let base = (t * 2 + h) * 8
                    let angle = Double(angles[t * 4 + i])
                    let (x1, x2) = (Double(xv[base + i]), Double(xv[base + 4 + i]))
                    #expect(abs(Double(yv[base + i]) - (x1 * Foundation.cos(angle) - x2 * Foundation.sin(angle))) < 1e-5)
                    #expect(abs(Double(yv[base + 4 + i]) - (x2 * Foundation.cos(angle) + x1 * Foundation.sin(angle))) < 1e-5)
                }
            }
        }
        let back = try backend.rope(y, cos: cos, sin: sin, inverse: true)
        #expect(maxRelativeError(back.toFloats(), xv) < 1e-5)
    }

    @Test func swigluMatchesDefinitionAndItsGradient() throws {
        var random = SeededRandom(seed: 3)
        let gate = random.tensor([4, 10], scale: 4), up = random.tensor([4, 10])
        let y = try backend.swiglu(gate: gate, up: up)
        let expected = zip(gate.toFloats(), up.toFloats()).map { g, u in Float(Double(g) / (1 + exp(-Double(g))) * Double(u)) }
        #expect(maxRelativeError(y.toFloats(), expected) < 1e-6)
        let w = random.floats(40)
        let (dGate, dUp) = try backend.swigluBackward(dOutput: Tensor(w, shape: [4, 10]), gate: gate, up: up)
        let loss = { weightedSum(try backend.swiglu(gate: gate, up: up), w) }
        #expect(maxRelativeError(dGate.toFloats(), try finiteDifferenceGradient(gate, indices: Array(0..<40), step: 1e-3, loss)) < 2e-3)
        #expect(maxRelativeError(dUp.toFloats(), try finiteDifferenceGradient(up, indices: Array(0..<40), step: 1e-3, loss)) < 2e-3)
    }

    @Test func embeddingGathersRowsScattersGradientsAndRejectsBadIDs() throws {
        let table = Tensor((0..<12).map(Float.init), shape: [4, 3])
        let ids = Tensor(int32: [2, 0, 2])
        #expect(try backend.embedding(ids: ids, table: table).toFloats() == [6, 7, 8, 0, 1, 2, 6, 7, 8])
        let gradient = Tensor(zeros: [4, 3])
        try backend.embeddingBackward(dOutput: Tensor([1, 1, 1, 2, 2, 2, 3, 3, 3], shape: [3, 3]), ids: ids, tableGradient: gradient)
        #expect(gradient.toFloats() == [2, 2, 2, 0, 0, 0, 4, 4, 4, 0, 0, 0])
        #expect(throws: KiteTensorError.indexOutOfRange(operation: "embedding", index: 4, limit: 4, position: 1)) {
            try backend.embedding(ids: Tensor(int32: [0, 4]), table: table)
        }
        #expect(throws: KiteTensorError.self) { try backend.embedding(ids: Tensor(int32: [-1]), table: table) }
    }

    /// Direct attention in fp64: every query row against its visible keys, one sequence and head at a time.
    static func referenceAttention(q: [Float], k: [Float], v: [Float], hq: Int, hk: Int, d: Int, dv: Int, layout: AttentionLayout, scale: Float) -> [Float] {
        var out = [Float](repeating: 0, count: layout.queries.totalLength * hq * dv)
        for s in 0..<layout.queries.count {
            let qr = layout.queries.range(s), kr = layout.keys.range(s)
            for h in 0..<hq {
                let kh = h / (hq / hk)
                for (i, row) in qr.enumerated() {
                    let visible = layout.causal ? kr.count - qr.count + i + 1 : kr.count
                    var scores: [Double] = []
                    for j in 0..<visible {
                        var dot = 0.0
                        for c in 0..<d { dot += Double(q[(row * hq + h) * d + c]) * Double(k[((kr.lowerBound + j) * hk + kh) * d + c]) }
                        scores.append(dot * Double(scale))
                    }
                    let m = scores.max() ?? 0
                    let e = scores.map { exp($0 - m) }
                    let sum = e.reduce(0, +)
                    for c in 0..<dv {
                        var acc = 0.0
                        for j in 0..<visible { acc += e[j] / sum * Double(v[((kr.lowerBound + j) * hk + kh) * dv + c]) }
                        out[(row * hq + h) * dv + c] = Float(acc)
                    }
                }
            }
        }
        return out
    }

    @Test(arguments: [
        ([5, 1, 70], [5, 1, 70], 4, 2, true),
        ([3, 130], [3, 130], 2, 2, true),
        ([2, 3], [6, 3], 4, 1, true),
        ([4, 6], [4, 6], 2, 1, false),
    ])
    func attentionMatchesReferenceAndItsGradient(queryLengths: [Int], keyLengths: [Int], queryHeads: Int, keyHeads: Int, causal: Bool) throws {
        var random = SeededRandom(seed: UInt64(queryLengths.reduce(0, +) * 31 + queryHeads))
        let (d, dv) = (8, 6)
        let layout = try AttentionLayout(queries: PackedSequences(lengths: queryLengths), keys: PackedSequences(lengths: keyLengths), causal: causal)
        let q = random.tensor([layout.queries.totalLength, queryHeads, d])
        let k = random.tensor([layout.keys.totalLength, keyHeads, d])
        let v = random.tensor([layout.keys.totalLength, keyHeads, dv])
        let scale = 1 / Float(d).squareRoot()
        let (output, lse) = try backend.attention(query: q, key: k, value: v, layout: layout, scale: scale)
        let expected = Self.referenceAttention(q: q.toFloats(), k: k.toFloats(), v: v.toFloats(), hq: queryHeads, hk: keyHeads, d: d, dv: dv, layout: layout, scale: scale)
        #expect(maxRelativeError(output.toFloats(), expected) < 1e-5)

        let w = random.floats(output.count)
        let (dq, dk, dvGrad) = try backend.attentionBackward(dOutput: Tensor(w, shape: output.shape), query: q, key: k, value: v, output: output, logSumExp: lse, layout: layout, scale: scale)
        let loss = { weightedSum(try backend.attention(query: q, key: k, value: v, layout: layout, scale: scale).output, w) }
        for (input, gradient) in [(q, dq), (k, dk), (v, dvGrad)] {
            let indices = stride(from: 0, to: input.count, by: max(1, input.count / 40)).map { $0 }
            let numeric = try finiteDifferenceGradient(input, indices: indices, step: 1e-2, loss)
            #expect(maxRelativeError(indices.map { gradient.toFloats()[$0] }, numeric) < 3e-3)
        }
    }

    @Test func logprobsAndEntropyMatchFullSoftmaxAndItsGradient() throws {
        var random = SeededRandom(seed: 5)
        let (rows, width, vocabulary) = (37, 12, 50)
        let hidden = random.tensor([rows, width], scale: 2), weight = random.tensor([vocabulary, width])
        var targetValues = (0..<rows).map { _ in Int32(random.int(0..<vocabulary)) }
        targetValues[3] = -1
        let targets = Tensor(int32: targetValues)
        let temperature: Float = 0.7
        let (logprobs, entropy) = try backend.logprobsAndEntropy(hidden: hidden, weight: weight, targets: targets, temperature: temperature)
        let h = hidden.toFloats(), w = weight.toFloats()
        for r in 0..<rows {
            var z: [Double] = []
            for j in 0..<vocabulary {
                var dot = 0.0
                for c in 0..<width { dot += Double(h[r * width + c]) * Double(w[j * width + c]) }
                z.append(dot / Double(temperature))
            }
            let m = z.max()!
            let lse = m + log(z.map { exp($0 - m) }.reduce(0, +))
            let p = z.map { exp($0 - lse) }
            let expectedEntropy = -zip(p, z).map { $0 * ($1 - lse) }.reduce(0, +)
            let expectedLogprob = targetValues[r] >= 0 ? z[Int(targetValues[r])] - lse : 0
            #expect(abs(Double(logprobs.toFloats()[r]) - expectedLogprob) < 1e-4)
            #expect(abs(Double(entropy.toFloats()[r]) - expectedEntropy) < 1e-4)
        }

        let wl = random.floats(rows), we = random.floats(rows)
        let weightGradient = Tensor(zeros: weight.shape)
        let dHidden = try backend.logprobsAndEntropyBackward(
            dLogprobs: Tensor(wl, shape: [rows]), dEntropy: Tensor(we, shape: [rows]), hidden: hidden, weight: weight,
            targets: targets, temperature: temperature, weightGradient: weightGradient)
        let loss = {
            let (lp, en) = try backend.logprobsAndEntropy(hidden: hidden, weight: weight, targets: targets, temperature: temperature)
            return weightedSum(lp, wl) + weightedSum(en, we)
        }
        let hiddenIndices = stride(from: 0, to: hidden.count, by: 7).map { $0 }
        #expect(maxRelativeError(hiddenIndices.map { dHidden.toFloats()[$0] }, try finiteDifferenceGradient(hidden, indices: hiddenIndices, step: 1e-2, loss)) < 3e-3)
        let weightIndices = stride(from: 0, to: weight.count, by: 11).map { $0 }
        #expect(maxRelativeError(weightIndices.map { weightGradient.toFloats()[$0] }, try finiteDifferenceGradient(weight, indices: weightIndices, step: 1e-2, loss)) < 3e-3)
    }

    @Test func logprobsRejectTargetsOutsideTheVocabularyAndBadTemperatures() {
        let hidden = Tensor(zeros: [2, 4]), weight = Tensor(zeros: [5, 4])
        #expect(throws: KiteTensorError.indexOutOfRange(operation: "logprobsAndEntropy", index: 5, limit: 5, position: 1)) {
            try backend.logprobsAndEntropy(hidden: hidden, weight: weight, targets: Tensor(int32: [0, 5]), temperature: 1)
        }
        #expect(throws: KiteTensorError.self) {
            try backend.logprobsAndEntropy(hidden: hidden, weight: weight, targets: Tensor(int32: [0, 1]), temperature: 0)
        }
    }

    /// Two AdamW steps against PyTorch's update rule written out by hand.
    @Test func adamwFollowsPyTorchUpdateRule() throws {
        let parameter = Tensor([1.0, -2.0], shape: [2]), m = Tensor(zeros: [2]), v = Tensor(zeros: [2])
        let gradients: [[Float]] = [[0.5, -1.0], [0.25, 2.0]]
        var p: [Double] = [1, -2], mm: [Double] = [0, 0], vv: [Double] = [0, 0]
        let (lr, b1, b2, eps, wd) = (0.1, 0.9, 0.999, 1e-8, 0.01)
        for (index, g) in gradients.enumerated() {
            let step = index + 1
            try backend.adamw(parameter: parameter, gradient: Tensor(g, shape: [2]), firstMoment: m, secondMoment: v,
                              step: AdamWStep(learningRate: Float(lr), beta1: Float(b1), beta2: Float(b2), epsilon: Float(eps), weightDecay: Float(wd), step: step))
            for i in 0..<2 {
                p[i] *= 1 - lr * wd
                mm[i] = b1 * mm[i] + (1 - b1) * Double(g[i])
                vv[i] = b2 * vv[i] + (1 - b2) * Double(g[i]) * Double(g[i])
                let denominator = (vv[i] / (1 - pow(b2, Double(step)))).squareRoot() + eps
                p[i] -= lr / (1 - pow(b1, Double(step))) * mm[i] / denominator
            }
        }
        #expect(maxRelativeError(parameter.toFloats(), p.map(Float.init)) < 1e-6)
    }

    @Test func sumOfSquaresAccumulatesInDoublePrecision() throws {
        // 2^-10 squared is exact in both precisions; fp32 accumulation would lose the small terms next to 25.
        let x = Tensor([Float](repeating: 0x1p-10, count: 100_000) + [3, 4], shape: [100_002])
        #expect(try backend.sumOfSquares(x) == 25 + 100_000 * 0x1p-20)
    }
}

struct BiasOperationTests {
    @Test func biasAddsToEveryRowAndItsGradientSumsColumns() throws {
        let backend = CPUBackend(threads: 1)
        let x = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])
        try backend.addBias(x, bias: Tensor([10, 20, 30], shape: [3]))
        #expect(x.toFloats() == [11, 22, 33, 14, 25, 36])
        let gradient = Tensor([1, 1, 1], shape: [3])
        try backend.accumulateColumnSums(x, into: gradient)
        #expect(gradient.toFloats() == [26, 48, 70])
        #expect(throws: KiteTensorError.self) { try backend.addBias(x, bias: Tensor(zeros: [2])) }
    }
}

/// Batch invariance: a query row's attention output has the same bits whether its tile went through the GEMM
/// path (long prefill tiles) or the direct path (decode: one row), including contexts longer than one
/// 256-key GEMM block.
struct AttentionBatchInvarianceTests {
    @Test func prefillRowsEqualDecodeRowsBitForBit() throws {
        let backend = CPUBackend(threads: 2)
        var random = SeededRandom(seed: 21)
        let (length, heads, kvHeads, dim) = (300, 4, 2, 64)
        let q = random.tensor([length, heads, dim]), k = random.tensor([length, kvHeads, dim]), v = random.tensor([length, kvHeads, dim])
        let scale = 1 / Float(dim).squareRoot()
        let full = try backend.attention(query: q, key: k, value: v, layout: AttentionLayout(selfAttention: PackedSequences(lengths: [length])), scale: scale)
        for row in [0, 63, 64, 150, 255, 256, 299] {
            let layout = try AttentionLayout(queries: PackedSequences(lengths: [1]), keys: PackedSequences(lengths: [row + 1]))
            let single = try backend.attention(query: q.rows(row..<(row + 1)), key: k.rows(0..<(row + 1)), value: v.rows(0..<(row + 1)), layout: layout, scale: scale)
            #expect(single.output.toFloats() == full.output.rows(row..<(row + 1)).toFloats(), "row \(row)")
            #expect(single.logSumExp.toFloats() == full.logSumExp.rows(row..<(row + 1)).toFloats(), "row \(row)")
        }
    }
}
