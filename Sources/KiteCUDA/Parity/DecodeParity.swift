import KiteTensor

/// Parity of the engine's device-side operations: decode attention from the cache in place, stores and
/// gathers by device indices, token sampling, and a captured graph against the same work run eagerly.
extension OperationParity {
    /// Random blocks for `contexts`: distinct blocks per sequence, scattered over the cache.
    func randomBlockTables(_ contexts: [Int], blockSize: Int, blockCount: Int, seed: UInt64) -> [[Int32]] {
        var generator = SeededGenerator(seed: seed)
        var free = (0..<Int32(blockCount)).map { $0 }
        free.shuffle(using: &generator)
        return contexts.map { length in
            let blocks = (length + blockSize - 1) / blockSize
            defer { free.removeFirst(blocks) }
            return Array(free.prefix(blocks))
        }
    }

    func decodeChecks() throws -> [ParityResult] {
        var results: [ParityResult] = []
        let cases: [(String, Int, Int, Int, [Int], Int)] = [
            ("pagedDecodeAttention d128 16/8 heads", 16, 8, 128, [1, 17, 300, 64, 513, 1024], 1100),
            ("pagedDecodeAttention d128 4/4 heads, long bound", 4, 4, 128, [5, 200], 4096),
            ("pagedDecodeAttention d64 8/2 heads", 8, 2, 64, [33, 1, 250], 256),
            ("pagedDecodeAttention d128 8/1 heads", 8, 1, 128, [40, 129], 160),
        ]
        let blockSize = 16
        for (index, (name, heads, kvHeads, dim, contexts, bound)) in cases.enumerated() {
            let seed = 600 + UInt64(index) * 10
            let blockCount = contexts.reduce(0) { $0 + ($1 + blockSize - 1) / blockSize } + 7
            let slots = blockCount * blockSize
            let keys = random([slots, kvHeads, dim], seed: seed), values = random([slots, kvHeads, dim], seed: seed + 1)
            let query = random([contexts.count, heads, dim], seed: seed + 2)
            let tables = randomBlockTables(contexts, blockSize: blockSize, blockCount: blockCount, seed: seed + 3)
            let width = (bound + blockSize - 1) / blockSize
            let flat = tables.flatMap { $0 + [Int32](repeating: 0, count: width - $0.count) }
            let scale = 1 / Float(dim).squareRoot()
            let reference = try cpu.pagedAttention(query: query, keyCache: keys, valueCache: values, blockTables: tables, blockSize: blockSize,
                                                   contextLengths: contexts, queries: PackedSequences(lengths: contexts.map { _ in 1 }), scale: scale)
            // Each shape through every variant of the bf16 kernel (`DecodeAttentionKernels.variants`).
            for variant in DecodeAttentionKernels.variants {
                setenv("KITE_DECODE_VARIANT", variant, 1)
                defer { unsetenv("KITE_DECODE_VARIANT") }
                let result = try cuda.pagedDecodeAttention(
                    query: try device(query), keyCache: try device(keys), valueCache: try device(values),
                    blockTable: try cuda.upload(Tensor(int32: flat, shape: [contexts.count, width])),
                    contextLengths: try cuda.upload(Tensor(int32: contexts.map { Int32($0) })), blockSize: blockSize, maxContextLength: bound, scale: scale)
                results.append(try compare(variant == "p4" ? name : "\(name) (\(variant))", result, reference, tolerance: reductionTolerance))
            }
        }

        results += try wideHeadChecks()

        // Stores and gathers by device indices, against the host-list versions on the CPU.
        let cache = random([64, 2, 128], seed: 690), key = random([5, 2, 128], seed: 691), value = random([5, 2, 128], seed: 692)
        let slotList: [Int32] = [63, 0, 17, 18, 40]
        let cpuKeys = cache.copy(), cpuValues = cache.copy()
        try cpu.storeKeyValues(key: key, value: value, keyCache: cpuKeys, valueCache: cpuValues, slots: slotList)
        let cudaKeys = try device(cache), cudaValues = try device(cache)
        try cuda.storeKeyValues(key: try device(key), value: try device(value), keyCache: cudaKeys, valueCache: cudaValues,
                                slotIndices: try cuda.upload(Tensor(int32: slotList)))
        results.append(try compare("storeKeyValues by device slots", cudaValues, cpuValues, tolerance: 0))
        let picked: [Int32] = [3, 63, 3, 0]
        results.append(try compare("gatherRows by device indices", try cuda.gatherRows(cudaKeys, indices: try cuda.upload(Tensor(int32: picked))),
                                   try cpu.gatherRows(cpuKeys, rows: picked), tolerance: 0))
        return results
    }

    /// Head sizes above 256 over the paged cache: DeepSeek-V3's absorbed latent attention (one key head of
    /// 512 + 64 shared by 128 query heads, the key rows read as values, as `attendLatent` stores them) and a
    /// GQA layout of head size 320, as prefill chunks (`pagedAttention`: queries after cached context) and as
    /// decode rows (`pagedDecodeAttention` from device-side tables). They run the wide CUDA-core forward
    /// (`kite_attn_fwd_simt_wide`, 18 numbers per lane), which accumulates in fp32 like the CPU: the
    /// reduction tolerance, as for every other attention check (bf16: the output's rounding, 2^-9 relative,
    /// and the bf16 inputs both backends read alike; fp32: summation order over 576-term dot products).
    func wideHeadChecks() throws -> [ParityResult] {
        var results: [ParityResult] = []
        let blockSize = 16
        // (name, query heads, key heads, key width, value width (nil: the key rows), new tokens, contexts)
        let cases: [(String, Int, Int, Int, Int?, [Int], [Int])] = [
            ("latent 576 (512 + 64), 128/1 heads", 128, 1, 576, nil, [9, 1, 4], [40, 1, 70]),
            ("d320 8/2 heads", 8, 2, 320, 320, [5, 12], [33, 12]),
        ]
        for (index, (name, heads, kvHeads, width, valueWidth, newTokens, contexts)) in cases.enumerated() {
            let seed = 660 + UInt64(index) * 10
            let blockCount = contexts.reduce(0) { $0 + ($1 + blockSize - 1) / blockSize } + 3
            let slots = blockCount * blockSize
            let keys = random([slots, kvHeads, width], seed: seed)
            let values = valueWidth.map { random([slots, kvHeads, $0], seed: seed + 1) } ?? keys
            let tables = randomBlockTables(contexts, blockSize: blockSize, blockCount: blockCount, seed: seed + 3)
            let scale = 1 / Float(192).squareRoot()
            let cudaKeys = try device(keys), cudaValues = valueWidth == nil ? cudaKeys : try device(values)
            // Prefill chunks: new tokens at the end of each context.
            let query = random([newTokens.reduce(0, +), heads, width], seed: seed + 2)
            let queries = PackedSequences(lengths: newTokens)
            let reference = try cpu.pagedAttention(query: query, keyCache: keys, valueCache: values, blockTables: tables, blockSize: blockSize,
                                                   contextLengths: contexts, queries: queries, scale: scale)
            let result = try cuda.pagedAttention(query: try device(query), keyCache: cudaKeys, valueCache: cudaValues, blockTables: tables,
                                                 blockSize: blockSize, contextLengths: contexts, queries: queries, scale: scale)
            results.append(try compare("pagedAttention \(name) prefill chunks \(newTokens) of \(contexts)", result, reference, tolerance: reductionTolerance))
            // Decode rows: one query per sequence, device-side block table and lengths.
            guard valueWidth == nil || valueWidth == width else { continue }
            let single = random([contexts.count, heads, width], seed: seed + 4)
            let bound = (contexts.max() ?? 1) + 5
            let tableWidth = (bound + blockSize - 1) / blockSize
            let flat = tables.flatMap { $0 + [Int32](repeating: 0, count: tableWidth - $0.count) }
            let decodeReference = try cpu.pagedAttention(query: single, keyCache: keys, valueCache: values, blockTables: tables, blockSize: blockSize,
                                                         contextLengths: contexts, queries: PackedSequences(lengths: contexts.map { _ in 1 }), scale: scale)
            let decoded = try cuda.pagedDecodeAttention(
                query: try device(single), keyCache: cudaKeys, valueCache: cudaValues,
                blockTable: try cuda.upload(Tensor(int32: flat, shape: [contexts.count, tableWidth])),
                contextLengths: try cuda.upload(Tensor(int32: contexts.map { Int32($0) })), blockSize: blockSize, maxContextLength: bound, scale: scale)
            results.append(try compare("pagedDecodeAttention \(name) contexts \(contexts)", decoded, decodeReference, tolerance: reductionTolerance))
        }
        return results
    }

    func samplingChecks() throws -> [ParityResult] {
        var results: [ParityResult] = []
        let (rows, vocabulary, width) = (48, 5000, 64)
        let hidden = random([rows, width], seed: 700)
        let weight = random([vocabulary, width], scale: 0.5, seed: 701, activation: false)
        var generator = SeededGenerator(seed: 702)
        let kinds: [TokenSampling] = [
            TokenSampling(temperature: 0), TokenSampling(temperature: 1), TokenSampling(temperature: 0.7),
            TokenSampling(temperature: 1, topK: 40), TokenSampling(temperature: 0.8, topP: 0.9), TokenSampling(temperature: 1, minP: 0.05),
            TokenSampling(temperature: 0.6, topK: 100, topP: 0.8, minP: 0.02), TokenSampling(temperature: 1.3, topK: 1),
        ]
        let parameters = (0..<rows).map { row -> TokenSampling in
            var sampling = kinds[row % kinds.count]
            sampling.uniform = generator.nextUnitDouble()
            return sampling
        }
        // The CPU reference takes the same bf16-rounded weights the GPU's products read.
        let referenceWeight = bf16 ? weight.converted(to: .bf16).converted(to: .f32) : weight
        let reference = try cpu.sampleTokens(hidden: hidden, weight: referenceWeight, rows: parameters)
        let result = try cuda.sampleTokens(hidden: try device(hidden), weight: try cuda.upload(weight), rows: parameters)
        results.append(ParityResult.compare("sampleTokens log-probs (8 kinds of row)", precision: precision, cuda: result.map(\.logprob),
                                            cpu: reference.map(\.logprob), tolerance: reductionTolerance))
        let differing = zip(result, reference).filter { $0.token != $1.token }.count
        results.append(ParityResult(name: "sampleTokens tokens (share differing)", precision: precision, maxAbsoluteError: Double(differing),
                                    relativeError: Double(differing) / Double(rows), tolerance: 0.05, failure: nil))

        // Deferred sampling (the overlap schedule's): read back after later work was queued behind it (a
        // device copy of its tokens, as the next decode step's input, and a second sampling), it must give
        // what `sampleTokens` gave on the same inputs, and its device tokens must be those tokens.
        let deviceHidden = try device(hidden), deviceWeight = try cuda.upload(weight)
        let deferred = try cuda.sampleTokensDeferred(hidden: deviceHidden, weight: deviceWeight, rows: parameters)
        let copied = try cuda.zeros([rows], dtype: .i32)
        try cuda.copy(deferred.tokens, into: copied)
        let second = try cuda.sampleTokensDeferred(hidden: deviceHidden, weight: deviceWeight, rows: parameters)
        let first = try deferred.results(), again = try second.results()
        let copiedTokens = try cuda.download(copied).toInt32s()
        let mismatching = (0..<rows).filter { row in
            first[row] != result[row] || again[row] != result[row] || copiedTokens[row] != result[row].token
        }.count
        results.append(ParityResult(name: "sampleTokensDeferred equals sampleTokens (rows differing)", precision: precision, maxAbsoluteError: Double(mismatching),
                                    relativeError: Double(mismatching) / Double(rows), tolerance: 0, failure: nil))

        // The distribution: one row sampled many times with top-k 20 at T = 0.8, against the exact
        // renormalised probabilities (total variation distance).
        let draws = 4000
        let row = random([1, width], scale: 2, seed: 710)
        let repeated = Tensor((0..<draws).flatMap { _ in row.toFloats() }, shape: [draws, width])
        let many = (0..<draws).map { _ in TokenSampling(temperature: 0.8, topK: 20, uniform: generator.nextUnitDouble()) }
        let drawn = try cuda.sampleTokens(hidden: try device(repeated), weight: try cuda.upload(weight), rows: many)
        let logits = try cpu.matmul(row, referenceWeight, transposeA: false, transposeB: true).toFloats()
        let top = (0..<vocabulary).sorted { logits[$0] > logits[$1] }.prefix(20)
        let maximum = logits[top.first ?? 0]
        var expected = [Int: Double](), mass = 0.0
        for j in top {
            let p = expDouble(Double(logits[j] - maximum) / 0.8)
            expected[j] = p
            mass += p
        }
        var counts = [Int: Int]()
        for sample in drawn { counts[Int(sample.token), default: 0] += 1 }
        var distance = 0.0
        for j in Set(expected.keys).union(counts.keys) {
            distance += abs((expected[j] ?? 0) / mass - Double(counts[j] ?? 0) / Double(draws))
        }
        results.append(ParityResult(name: "sampleTokens top-k 20 distribution (TV distance)", precision: precision, maxAbsoluteError: distance / 2,
                                    relativeError: distance / 2, tolerance: 0.05, failure: counts.keys.allSatisfy { expected[$0] != nil } ? nil : "a token outside the top 20 was drawn"))
        return results
    }

    /// A captured graph replayed on new inputs equals the same operations run eagerly on them.
    func graphChecks() throws -> [ParityResult] {
        let input = try device(random([8, 256], seed: 720))
        let weight = try cuda.upload(random([512, 256], scale: 0.1, seed: 721, activation: false))
        let norm = try cuda.upload(Tensor([Float](repeating: 1.5, count: 256), shape: [256]))
        let ids = try cuda.upload(Tensor(int32: [3, 1, 4, 1, 5, 9, 2, 6]))
        let table = try cuda.upload(random([10, 256], seed: 722, activation: false))
        func step() throws -> Tensor {
            let embedded = try cuda.embedding(ids: ids, table: table)
            let mixed = try cuda.add(embedded, input)
            return try cuda.matmul(try cuda.rmsNorm(mixed, weight: norm, epsilon: 1e-6).output, weight, transposeA: false, transposeB: true)
        }
        _ = try step()
        var output: Tensor?
        guard let graph = try cuda.captureGraph({ output = try step() }), let output else {
            return [ParityResult(name: "graph replay equals eager", precision: precision, maxAbsoluteError: .nan, relativeError: .nan, tolerance: 0,
                                 failure: "no graph was captured")]
        }
        try cuda.copy(bf16 ? random([8, 256], seed: 723).converted(to: .bf16) : random([8, 256], seed: 723), into: input)
        try cuda.copy(Tensor(int32: [0, 9, 8, 7, 6, 5, 4, 3]), into: ids)
        try graph.launch()
        let replayed = try cuda.download(output)
        let eager = try cuda.download(try step())
        return [ParityResult.compareBits("graph replay on new inputs equals eager", precision: precision, cuda: replayed, cpu: eager)]
    }
}

#if canImport(Glibc)
import Glibc
func expDouble(_ x: Double) -> Double { Glibc.exp(x) }
#endif
