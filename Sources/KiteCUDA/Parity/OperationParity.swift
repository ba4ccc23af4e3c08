import KiteTensor

/// Every `Backend` operation run on random inputs by the CPU reference and by a `CUDABackend`, forward
/// and backward, compared by normwise relative error (METHOD.md's measure: ||cuda - cpu|| / ||cpu||).
///
/// Tolerances (stated once, applied to every check):
/// - fp32 mode: 1e-6 for elementwise operations (one rounding each; fused multiply-adds differ in the last
///   bit), 1e-4 for anything that sums (products, norms, attention, the head; different summation orders).
/// - bf16 mode: 4e-3 for elementwise operations (the bf16 rounding of the output, at most 2^-9 relative),
///   1e-2 for anything that sums over bf16 operands (METHOD.md: "bf16 operands between 1e-3 and 1e-2").
/// - Casts and fp8 block quantisation: bit-exact (tolerance 0, counted in differing bytes).
/// - Block-scaled fp8 products: see `BlockScaledParity.swift`.
/// - AdamW (fp32 in both modes): 1e-6.
/// - Column slices and mixture-of-experts ops: see `ExpertParity.swift`.
///
/// In bf16 mode activation inputs are rounded to bf16 before both backends see them, so the comparison
/// measures the operation, not the input rounding. Weights stay fp32, as the model keeps them.
public struct OperationParity {
    public let cpu: CPUBackend
    public let cuda: CUDABackend
    var precision: String { cuda.precision.rawValue }
    var bf16: Bool { cuda.precision == .bf16 }
    var elementwiseTolerance: Double { bf16 ? 4e-3 : 1e-6 }
    var reductionTolerance: Double { bf16 ? 1e-2 : 1e-4 }

    public init(cuda: CUDABackend, cpu: CPUBackend) {
        self.cuda = cuda
        self.cpu = cpu
    }

    /// Names of the groups of checks `run` runs, in order.
    public static let groups = [
        "matmul", "elementwise", "rmsNorm", "rope", "swiglu", "embedding", "logprobsAndEntropy", "attention", "paged cache", "decode",
        "sampling", "graphs", "casts", "blockQuantize", "block-scaled fp8", "adamw", "column slices", "mixture of experts", "fused inference",
    ]

    /// Runs every check (or the groups named in `only`); a check that throws is reported as a failure and the
    /// rest still run.
    public func run(only: Set<String>? = nil) -> [ParityResult] {
        var results: [ParityResult] = []
        let checks: [(String, () throws -> [ParityResult])] = [
            ("matmul", matmulChecks), ("elementwise", elementwiseChecks), ("rmsNorm", normChecks), ("rope", ropeChecks),
            ("swiglu", swigluChecks), ("embedding", embeddingChecks), ("logprobsAndEntropy", headChecks),
            ("attention", attentionChecks), ("paged cache", pagedCacheChecks), ("decode", decodeChecks), ("sampling", samplingChecks),
            ("graphs", graphChecks), ("casts", castChecks), ("blockQuantize", quantizeChecks), ("block-scaled fp8", blockScaledChecks), ("adamw", adamChecks),
            ("column slices", columnChecks), ("mixture of experts", expertChecks), ("fused inference", fusedChecks),
        ]
        for (name, check) in checks where only?.contains(name) ?? true {
            do { results += try check() } catch { results.append(.failed(name, precision: precision, error)) }
        }
        return results
    }

    // MARK: Inputs

    /// Random values in [-scale, scale), representable in the CUDA backend's activation dtype.
    func random(_ shape: [Int], scale: Float = 1, seed: UInt64, activation: Bool = true) -> Tensor {
        var generator = SeededGenerator(seed: seed)
        let values = (0..<shape.reduce(1, *)).map { _ in Float(generator.nextUnitDouble() * 2 - 1) * scale }
        let tensor = Tensor(values, shape: shape)
        return activation && bf16 ? tensor.converted(to: .bf16).converted(to: .f32) : tensor
    }

    /// The tensor the CUDA backend receives: the activation dtype for activations, fp32 for weights.
    func device(_ host: Tensor, activation: Bool = true) throws -> Tensor {
        try cuda.upload(activation && bf16 ? host.converted(to: .bf16) : host)
    }

    func values(_ tensor: Tensor) throws -> [Float] { try cuda.download(tensor).toFloats() }

    func compare(_ name: String, _ gpu: Tensor, _ reference: Tensor, tolerance: Double) throws -> ParityResult {
        ParityResult.compare(name, precision: precision, cuda: try values(gpu), cpu: reference.toFloats(), tolerance: tolerance)
    }

    // MARK: Checks

    func matmulChecks() throws -> [ParityResult] {
        var results: [ParityResult] = []
        let cases: [(String, [Int], [Int], Bool, Bool)] = [
            ("matmul NN 37x64 * 64x53", [37, 64], [64, 53], false, false),
            ("matmul NT (x W^T) 37x64 * 53x64", [37, 64], [53, 64], false, true),
            ("matmul TN (dY^T X) 64x37 * 64x53", [64, 37], [64, 53], true, false),
            ("matmul TT 64x37 * 53x64", [64, 37], [53, 64], true, true),
            ("matmul batched 3x17x32 * 3x32x19", [3, 17, 32], [3, 32, 19], false, false),
        ]
        for (index, (name, shapeA, shapeB, ta, tb)) in cases.enumerated() {
            let a = random(shapeA, seed: 10 + UInt64(index)), b = random(shapeB, seed: 20 + UInt64(index), activation: false)
            let reference = try cpu.matmul(a, b, transposeA: ta, transposeB: tb)
            let result = try cuda.matmul(try device(a), try device(b, activation: false), transposeA: ta, transposeB: tb)
            results.append(try compare(name, result, reference, tolerance: reductionTolerance))
        }
        // Accumulating into an fp32 gradient: c = 0.5 a^T b + c.
        let a = random([40, 24], seed: 30), b = random([40, 16], seed: 31)
        let c = random([24, 16], seed: 32, activation: false)
        let cudaC = try cuda.upload(c)
        let cpuC = c.copy()
        try cpu.matmul(a, b, transposeA: true, transposeB: false, into: cpuC, alpha: 0.5, beta: 1)
        try cuda.matmul(try device(a), try device(b), transposeA: true, transposeB: false, into: cudaC, alpha: 0.5, beta: 1)
        results.append(try compare("matmul into fp32, alpha 0.5, beta 1", cudaC, cpuC, tolerance: reductionTolerance))
        return results
    }

    func elementwiseChecks() throws -> [ParityResult] {
        var results: [ParityResult] = []
        let a = random([1001], seed: 40), b = random([1001], seed: 41)
        results.append(try compare("add", try cuda.add(try device(a), try device(b)), try cpu.add(a, b), tolerance: elementwiseTolerance))

        let target = random([1001], seed: 42)
        let cudaTarget = try device(target), cpuTarget = target.copy()
        try cpu.accumulate(a, into: cpuTarget, scale: 0.5)
        try cuda.accumulate(try device(a), into: cudaTarget, scale: 0.5)
        results.append(try compare("accumulate (scale 0.5)", cudaTarget, cpuTarget, tolerance: elementwiseTolerance))

        try cpu.scale(cpuTarget, by: -1.75)
        try cuda.scale(cudaTarget, by: -1.75)
        results.append(try compare("scale", cudaTarget, cpuTarget, tolerance: elementwiseTolerance))

        try cpu.fill(cpuTarget, with: 0.375)
        try cuda.fill(cudaTarget, with: 0.375)
        results.append(try compare("fill", cudaTarget, cpuTarget, tolerance: 0))

        let x = random([9, 77], seed: 43), bias = random([77], seed: 44, activation: false)
        let cudaX = try device(x), cpuX = x.copy()
        try cpu.addBias(cpuX, bias: bias)
        try cuda.addBias(cudaX, bias: try cuda.upload(bias))
        results.append(try compare("addBias", cudaX, cpuX, tolerance: elementwiseTolerance))

        let rows = random([300, 77], seed: 45), sums = random([77], seed: 46, activation: false)
        let cudaSums = try cuda.upload(sums), cpuSums = sums.copy()
        try cpu.accumulateColumnSums(rows, into: cpuSums)
        try cuda.accumulateColumnSums(try device(rows), into: cudaSums)
        results.append(try compare("accumulateColumnSums 300x77", cudaSums, cpuSums, tolerance: bf16 ? 1e-5 : 1e-5))

        let big = random([100_003], scale: 3, seed: 47)
        let expected = try cpu.sumOfSquares(big), actual = try cuda.sumOfSquares(try device(big))
        results.append(ParityResult(name: "sumOfSquares (fp64) 100003", precision: precision, maxAbsoluteError: abs(actual - expected),
                                    relativeError: abs(actual - expected) / expected, tolerance: 1e-6, failure: nil))
        return results
    }

    func normChecks() throws -> [ParityResult] {
        var results: [ParityResult] = []
        for (index, shape) in [[33, 1024], [40, 2, 128], [5, 24]].enumerated() {
            let label = shape.map(String.init).joined(separator: "x")
            let width = shape.last!
            let x = random(shape, scale: 2, seed: 50 + UInt64(index))
            var generator = SeededGenerator(seed: 60 + UInt64(index))
            let weight = Tensor((0..<width).map { _ in Float(0.5 + generator.nextUnitDouble()) }, shape: [width])
            let (cpuY, cpuR) = try cpu.rmsNorm(x, weight: weight, epsilon: 1e-6)
            let (cudaY, cudaR) = try cuda.rmsNorm(try device(x), weight: try cuda.upload(weight), epsilon: 1e-6)
            results.append(try compare("rmsNorm \(label) output", cudaY, cpuY, tolerance: elementwiseTolerance))
            results.append(try compare("rmsNorm \(label) 1/rms", cudaR, cpuR, tolerance: reductionTolerance / 10))
            let dy = random(shape, seed: 70 + UInt64(index))
            let gradient = random([width], seed: 80 + UInt64(index), activation: false)
            let cpuGradient = gradient.copy(), cudaGradient = try cuda.upload(gradient)
            // Backward from the same saved 1/rms on both sides (the CPU's).
            let cpuDx = try cpu.rmsNormBackward(dy, input: x, weight: weight, inverseRMS: cpuR, weightGradient: cpuGradient)
            let cudaDx = try cuda.rmsNormBackward(try device(dy), input: try device(x), weight: try cuda.upload(weight),
                                                  inverseRMS: try cuda.upload(cpuR), weightGradient: cudaGradient)
            results.append(try compare("rmsNorm \(label) backward dx", cudaDx, cpuDx, tolerance: reductionTolerance))
            results.append(try compare("rmsNorm \(label) backward dweight", cudaGradient, cpuGradient, tolerance: reductionTolerance))
        }
        return results
    }

    func ropeChecks() throws -> [ParityResult] {
        let (tokens, heads, dim) = (9, 3, 128)
        let x = random([tokens, heads, dim], seed: 90)
        var cosValues: [Float] = [], sinValues: [Float] = []
        for t in 0..<tokens {
            for i in 0..<(dim / 2) {
                let angle = Double(t) * 1 / pow10000(Double(2 * i) / Double(dim))
                cosValues.append(Float(cosine(angle)))
                sinValues.append(Float(sine(angle)))
            }
        }
        let cos = Tensor(cosValues, shape: [tokens, dim / 2]), sin = Tensor(sinValues, shape: [tokens, dim / 2])
        var results: [ParityResult] = []
        for inverse in [false, true] {
            let reference = try cpu.rope(x, cos: cos, sin: sin, inverse: inverse)
            let result = try cuda.rope(try device(x), cos: try cuda.upload(cos), sin: try cuda.upload(sin), inverse: inverse)
            results.append(try compare(inverse ? "rope inverse (backward)" : "rope forward", result, reference, tolerance: elementwiseTolerance))
        }
        return results
    }

    func swigluChecks() throws -> [ParityResult] {
        let gate = random([7, 1000], scale: 4, seed: 100), up = random([7, 1000], seed: 101), dy = random([7, 1000], seed: 102)
        let (cudaGate, cudaUp, cudaDy) = (try device(gate), try device(up), try device(dy))
        let (cpuDg, cpuDu) = try cpu.swigluBackward(dOutput: dy, gate: gate, up: up)
        let (cudaDg, cudaDu) = try cuda.swigluBackward(dOutput: cudaDy, gate: cudaGate, up: cudaUp)
        return [
            try compare("swiglu forward", try cuda.swiglu(gate: cudaGate, up: cudaUp), try cpu.swiglu(gate: gate, up: up), tolerance: elementwiseTolerance),
            try compare("swiglu backward dgate", cudaDg, cpuDg, tolerance: elementwiseTolerance),
            try compare("swiglu backward dup", cudaDu, cpuDu, tolerance: elementwiseTolerance),
        ]
    }

    func embeddingChecks() throws -> [ParityResult] {
        let table = random([50, 64], seed: 110, activation: false)
        let ids = Tensor(int32: [3, 0, 49, 3, 17, 17, 17, 8, 1, 2, 3, 4, 5, 49, 0, 22, 31, 40, 41, 42, 3, 3, 9, 10, 11, 12, 13, 14, 15, 16])
        let dy = random([ids.count, 64], seed: 111)
        let gradient = random([50, 64], seed: 112, activation: false)
        let cpuGradient = gradient.copy(), cudaGradient = try cuda.upload(gradient)
        try cpu.embeddingBackward(dOutput: dy, ids: ids, tableGradient: cpuGradient)
        try cuda.embeddingBackward(dOutput: try device(dy), ids: try cuda.upload(ids), tableGradient: cudaGradient)
        var results = [
            try compare("embedding gather", try cuda.embedding(ids: try cuda.upload(ids), table: try cuda.upload(table)),
                        try cpu.embedding(ids: ids, table: table), tolerance: elementwiseTolerance),
            try compare("embedding backward (scatter-add)", cudaGradient, cpuGradient, tolerance: 1e-6),
        ]
        // A bad id must throw the same error as on the CPU.
        do {
            _ = try cuda.embedding(ids: try cuda.upload(Tensor(int32: [1, 2, 50])), table: try cuda.upload(table))
            results.append(ParityResult(name: "embedding rejects id 50 of 50", precision: precision, maxAbsoluteError: 0, relativeError: 0, tolerance: 0,
                                        failure: "no error thrown"))
        } catch let error as KiteTensorError {
            let expected = KiteTensorError.indexOutOfRange(operation: "embedding", index: 50, limit: 50, position: 2)
            results.append(ParityResult(name: "embedding rejects id 50 of 50", precision: precision, maxAbsoluteError: 0, relativeError: 0, tolerance: 0,
                                        failure: error == expected ? nil : "threw \(error)"))
        }
        return results
    }

    func headChecks() throws -> [ParityResult] {
        var results: [ParityResult] = []
        let cases: [(String, Int, Int, Int, Float, Int?)] = [
            ("head T70 V1000 D64 T=0.7", 70, 1000, 64, 0.7, nil),
            ("head T70 V1001 D64 chunks of 16", 70, 1001, 64, 1, 16),
            ("head T40 V151936 D128", 40, 151_936, 128, 1, nil),
        ]
        for (index, (name, rows, vocabulary, width, temperature, chunk)) in cases.enumerated() {
            let seed = 120 + UInt64(index) * 10
            let hidden = random([rows, width], seed: seed)
            let weight = random([vocabulary, width], scale: vocabulary > 10_000 ? 0.1 : 0.5, seed: seed + 1, activation: false)
            var generator = SeededGenerator(seed: seed + 2)
            let targets = Tensor(int32: (0..<rows).map { row in row % 9 == 4 ? -1 : Int32(generator.nextUnitDouble() * Double(vocabulary)) })
            let dLogprobs = random([rows], seed: seed + 3, activation: false), dEntropy = random([rows], seed: seed + 4, activation: false)
            let gradient = random([vocabulary, width], scale: 0.01, seed: seed + 5, activation: false)
            cuda.headChunkRowsOverride = chunk
            defer { cuda.headChunkRowsOverride = nil }
            let cudaHidden = try device(hidden), cudaWeight = try cuda.upload(weight), cudaTargets = try cuda.upload(targets)
            let (cpuLogprobs, cpuEntropy) = try cpu.logprobsAndEntropy(hidden: hidden, weight: weight, targets: targets, temperature: temperature)
            let (cudaLogprobs, cudaEntropy) = try cuda.logprobsAndEntropy(hidden: cudaHidden, weight: cudaWeight, targets: cudaTargets, temperature: temperature)
            results.append(try compare("\(name) logprobs", cudaLogprobs, cpuLogprobs, tolerance: reductionTolerance))
            results.append(try compare("\(name) entropy", cudaEntropy, cpuEntropy, tolerance: reductionTolerance))
            let cpuGradient = gradient.copy(), cudaGradient = try cuda.upload(gradient)
            let cpuDh = try cpu.logprobsAndEntropyBackward(dLogprobs: dLogprobs, dEntropy: dEntropy, hidden: hidden, weight: weight,
                                                           targets: targets, temperature: temperature, weightGradient: cpuGradient)
            let cudaDh = try cuda.logprobsAndEntropyBackward(dLogprobs: dLogprobs, dEntropy: dEntropy, hidden: cudaHidden, weight: cudaWeight,
                                                             targets: cudaTargets, temperature: temperature, weightGradient: cudaGradient)
            results.append(try compare("\(name) backward dhidden", cudaDh, cpuDh, tolerance: reductionTolerance))
            results.append(try compare("\(name) backward dweight", cudaGradient, cpuGradient, tolerance: reductionTolerance))
        }
        return results
    }

    func attentionChecks() throws -> [ParityResult] {
        var results: [ParityResult] = []
        let cases: [(String, [Int], [Int], Int, Int, Int, Bool)] = [
            ("attention d16 GQA 4/2", [1, 7, 33, 64], [1, 7, 33, 64], 4, 2, 16, true),
            ("attention d128 GQA 8/4", [1, 7, 64, 130, 300], [1, 7, 64, 130, 300], 8, 4, 128, true),
            ("attention d64 GQA 4/2", [50, 129], [50, 129], 4, 2, 64, true),
            ("attention d128 prefill (cached keys)", [5, 70], [20, 200], 4, 2, 128, true),
            ("attention d128 non-causal", [100, 37], [100, 37], 2, 2, 128, false),
        ]
        for (index, (name, queryLengths, keyLengths, heads, kvHeads, dim, causal)) in cases.enumerated() {
            let seed = 200 + UInt64(index) * 10
            let layout = try AttentionLayout(queries: PackedSequences(lengths: queryLengths), keys: PackedSequences(lengths: keyLengths), causal: causal)
            let (tq, tk) = (layout.queries.totalLength, layout.keys.totalLength)
            let q = random([tq, heads, dim], seed: seed), k = random([tk, kvHeads, dim], seed: seed + 1), v = random([tk, kvHeads, dim], seed: seed + 2)
            let scale = 1 / Float(dim).squareRoot()
            let (cpuO, cpuL) = try cpu.attention(query: q, key: k, value: v, layout: layout, scale: scale)
            let (cq, ck, cv) = (try device(q), try device(k), try device(v))
            let (cudaO, cudaL) = try cuda.attention(query: cq, key: ck, value: cv, layout: layout, scale: scale)
            results.append(try compare("\(name) output", cudaO, cpuO, tolerance: reductionTolerance))
            results.append(try compare("\(name) logsumexp", cudaL, cpuL, tolerance: reductionTolerance / 10))
            let dOut = random([tq, heads, dim], seed: seed + 3)
            // Both backwards start from the CPU's forward output, so they differentiate the same function.
            let cpuOutput = bf16 ? cpuO.converted(to: .bf16).converted(to: .f32) : cpuO
            let (cpuDq, cpuDk, cpuDv) = try cpu.attentionBackward(dOutput: dOut, query: q, key: k, value: v, output: cpuOutput,
                                                                  logSumExp: cpuL, layout: layout, scale: scale)
            let (cudaDq, cudaDk, cudaDv) = try cuda.attentionBackward(dOutput: try device(dOut), query: cq, key: ck, value: cv,
                                                                      output: try device(cpuOutput), logSumExp: try cuda.upload(cpuL), layout: layout, scale: scale)
            results.append(try compare("\(name) backward dq", cudaDq, cpuDq, tolerance: reductionTolerance))
            results.append(try compare("\(name) backward dk", cudaDk, cpuDk, tolerance: reductionTolerance))
            results.append(try compare("\(name) backward dv", cudaDv, cpuDv, tolerance: reductionTolerance))
        }
        return results
    }

    /// The engine's paged cache: prefill two sequences into scattered blocks, decode one token each, copy a
    /// block (copy-on-write), gather rows; every cache and output against the CPU's.
    func pagedCacheChecks() throws -> [ParityResult] {
        let (slotCount, kvHeads, heads, dim, blockSize) = (96, 2, 4, 128, 16)
        let scale = 1 / Float(dim).squareRoot()
        let cpuKeys = Tensor(zeros: [slotCount, kvHeads, dim]), cpuValues = Tensor(zeros: [slotCount, kvHeads, dim])
        let cudaKeys = try cuda.zeros([slotCount, kvHeads, dim], dtype: .f32), cudaValues = try cuda.zeros([slotCount, kvHeads, dim], dtype: .f32)
        let tables: [[Int32]] = [[3, 1], [2]]
        func slots(_ sequence: Int, _ range: Range<Int>) -> [Int32] {
            range.map { Int32(Int(tables[sequence][$0 / blockSize]) * blockSize + $0 % blockSize) }
        }
        var results: [ParityResult] = []
        for (step, (newTokens, contexts)) in [([20, 7], [20, 7]), ([1, 1], [21, 8])].enumerated() {
            let seed = 500 + UInt64(step) * 10
            let rows = newTokens.reduce(0, +)
            let key = random([rows, kvHeads, dim], seed: seed), value = random([rows, kvHeads, dim], seed: seed + 1)
            let query = random([rows, heads, dim], seed: seed + 2)
            let slotList = slots(0, (contexts[0] - newTokens[0])..<contexts[0]) + slots(1, (contexts[1] - newTokens[1])..<contexts[1])
            try cpu.storeKeyValues(key: key, value: value, keyCache: cpuKeys, valueCache: cpuValues, slots: slotList)
            try cuda.storeKeyValues(key: try device(key), value: try device(value), keyCache: cudaKeys, valueCache: cudaValues, slots: slotList)
            let queries = PackedSequences(lengths: newTokens)
            let reference = try cpu.pagedAttention(query: query, keyCache: cpuKeys, valueCache: cpuValues, blockTables: tables, blockSize: blockSize,
                                                   contextLengths: contexts, queries: queries, scale: scale)
            let result = try cuda.pagedAttention(query: try device(query), keyCache: cudaKeys, valueCache: cudaValues, blockTables: tables,
                                                 blockSize: blockSize, contextLengths: contexts, queries: queries, scale: scale)
            let label = step == 0 ? "prefill 20+7" : "decode 1+1"
            results.append(try compare("storeKeyValues \(label) key cache", cudaKeys, cpuKeys, tolerance: 0))
            results.append(try compare("pagedAttention \(label)", result, reference, tolerance: reductionTolerance))
        }
        let sources: [Int32] = Array(48..<64), destinations: [Int32] = Array(80..<96)
        try cpu.copyRows(cpuValues, from: sources, to: destinations)
        try cuda.copyRows(cudaValues, from: sources, to: destinations)
        results.append(try compare("copyRows (copy-on-write block)", cudaValues, cpuValues, tolerance: 0))
        let picked: [Int32] = [5, 0, 95, 5, 33]
        results.append(try compare("gatherRows", try cuda.gatherRows(cudaValues, rows: picked), try cpu.gatherRows(cpuValues, rows: picked), tolerance: 0))
        return results
    }

    func castChecks() throws -> [ParityResult] {
        var values: [Float] = [0, -0.0, 1, -1.5, 0.1, 3.14159, 448, 449, 464, 500, -1000, 57344, 60000, 65504, 65520, 70000, 1e30, -1e30,
                               .infinity, -.infinity, 1e-3, 2e-3, 1e-5, 1e-8, 3e-39, -2e-42, Float(0x1p-7), Float(0x1p-10), Float(0x1p-17)]
        var generator = SeededGenerator(seed: 300)
        for _ in 0..<4000 { values.append(Float(generator.nextUnitDouble() * 2 - 1) * Float(powerOfTen(generator.nextUnitDouble() * 12 - 6))) }
        var results: [ParityResult] = []
        for dtype in [DType.bf16, .f16, .fp8e4m3, .fp8e5m2] {
            // f16 NaN payloads differ between Swift's Float16 and the hardware conversion; NaN is kept out there.
            let inputs = dtype == .f16 ? values : values + [.nan, -.nan]
            let host = Tensor(inputs, shape: [inputs.count])
            let narrow = try cuda.download(try cuda.cast(try cuda.upload(host), to: dtype))
            let reference = host.converted(to: dtype)
            results.append(ParityResult.compareBits("cast f32 -> \(dtype) (bits)", precision: precision, cuda: narrow, cpu: reference))
            let wide = try cuda.download(try cuda.cast(try cuda.upload(reference), to: .f32))
            results.append(ParityResult.compareBits("cast \(dtype) -> f32 (bits)", precision: precision, cuda: wide, cpu: reference.converted(to: .f32)))
        }
        // The read-bandwidth probe of `kite bench decode` reads every word: its XOR equals the host's.
        let probe = random([1_000_004], seed: 310, activation: false)
        let partials = try cuda.download(try cuda.wordXorPartials(try cuda.upload(probe))).toInt32s()
        let deviceXor = partials.reduce(UInt32(0)) { $0 ^ UInt32(bitPattern: $1) }
        let hostXor = probe.toFloats().reduce(UInt32(0)) { $0 ^ $1.bitPattern }
        results.append(ParityResult(name: "wordXorPartials 1,000,004 words (read probe)", precision: precision, maxAbsoluteError: deviceXor == hostXor ? 0 : 1,
                                    relativeError: deviceXor == hostXor ? 0 : 1, tolerance: 0,
                                    failure: deviceXor == hostXor ? nil : "XOR \(deviceXor) on the GPU, \(hostXor) on the host"))
        return results
    }

    func quantizeChecks() throws -> [ParityResult] {
        var values = random([300, 200], scale: 10, seed: 310, activation: false).toFloats()
        for r in 256..<300 { for c in 128..<200 { values[r * 200 + c] = 0 } }
        let x = Tensor(values, shape: [300, 200])
        var results: [ParityResult] = []
        for dtype in [DType.fp8e4m3, .fp8e5m2] {
            let (cpuValues, cpuScales) = try cpu.blockQuantize(x, blockSize: 128, to: dtype)
            let (cudaValues, cudaScales) = try cuda.blockQuantize(try cuda.upload(x), blockSize: 128, to: dtype)
            results.append(ParityResult.compareBits("blockQuantize 300x200 /128 \(dtype) values", precision: precision, cuda: try cuda.download(cudaValues), cpu: cpuValues))
            results.append(ParityResult.compareBits("blockQuantize 300x200 /128 \(dtype) scales", precision: precision, cuda: try cuda.download(cudaScales), cpu: cpuScales))
            for output in [DType.f32, .bf16] {
                let reference = try cpu.blockDequantize(values: cpuValues, scales: cpuScales, blockSize: 128, to: output)
                let result = try cuda.blockDequantize(values: cudaValues, scales: cudaScales, blockSize: 128, to: output)
                results.append(ParityResult.compareBits("blockDequantize \(dtype) -> \(output)", precision: precision, cuda: try cuda.download(result), cpu: reference))
            }
        }
        return results
    }

    func adamChecks() throws -> [ParityResult] {
        let shapes = [[1000], [70_000], [7], [16, 32]]
        var cpuSets: [[Tensor]] = [], cudaSets: [[Tensor]] = []
        for (index, shape) in shapes.enumerated() {
            let seed = 400 + UInt64(index) * 10
            let parameter = random(shape, seed: seed, activation: false), gradient = random(shape, seed: seed + 1, activation: false)
            let m = random(shape, scale: 0.1, seed: seed + 2, activation: false)
            let v = Tensor(random(shape, scale: 0.1, seed: seed + 3, activation: false).toFloats().map { $0 * $0 }, shape: shape)
            cpuSets.append([parameter.copy(), gradient, m.copy(), v.copy()])
            cudaSets.append([try cuda.upload(parameter), try cuda.upload(gradient), try cuda.upload(m), try cuda.upload(v)])
        }
        // The last parameter serves as a weight first, so bf16 mode holds a compute copy AdamW must refresh.
        let x = random([5, 32], seed: 450)
        _ = try cuda.matmul(try device(x), cudaSets[3][0], transposeA: false, transposeB: true)
        let step = AdamWStep(learningRate: 1e-2, beta1: 0.9, beta2: 0.99, epsilon: 1e-8, weightDecay: 0.1, step: 3, gradientScale: 0.5)
        for set in cpuSets { try cpu.adamw(parameter: set[0], gradient: set[1], firstMoment: set[2], secondMoment: set[3], step: step) }
        try cuda.adamw(parameters: cudaSets.map { $0[0] }, gradients: cudaSets.map { $0[1] }, firstMoments: cudaSets.map { $0[2] },
                       secondMoments: cudaSets.map { $0[3] }, step: step)
        var results: [ParityResult] = []
        for (index, shape) in shapes.enumerated() {
            let label = shape.map(String.init).joined(separator: "x")
            results.append(try compare("adamw \(label) parameter", cudaSets[index][0], cpuSets[index][0], tolerance: 1e-6))
            results.append(try compare("adamw \(label) moments", try cuda.add(cudaSets[index][2], cudaSets[index][3]),
                                       try cpu.add(cpuSets[index][2], cpuSets[index][3]), tolerance: 1e-6))
        }
        let after = try cuda.matmul(try device(x), cudaSets[3][0], transposeA: false, transposeB: true)
        results.append(try compare("matmul after adamw (weight copy refreshed)", after,
                                   try cpu.matmul(x, cpuSets[3][0], transposeA: false, transposeB: true), tolerance: reductionTolerance))
        return results
    }
}

#if canImport(Glibc)
import Glibc
func cosine(_ x: Double) -> Double { Glibc.cos(x) }
func sine(_ x: Double) -> Double { Glibc.sin(x) }
func pow10000(_ exponent: Double) -> Double { Glibc.pow(10000, exponent) }
func powerOfTen(_ exponent: Double) -> Double { Glibc.pow(10, exponent) }
#endif
