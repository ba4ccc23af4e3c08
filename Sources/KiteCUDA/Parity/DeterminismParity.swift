import KiteTensor

/// Batch invariance of a deterministic-mode backend: an operation's result for a row is the same bits
/// whether the row comes alone, in a small batch or in a large one, and decode attention from the cache
/// equals the training kernel's row for the same keys, to the bit. These are the properties that make the
/// engine's log-probs equal the trainer's (the end-to-end check is in `kite bench cuda-parity`'s engine rows).
public struct DeterminismParity {
    public let cuda: CUDABackend
    let operations: OperationParity

    public init(cuda: CUDABackend, cpu: CPUBackend) {
        self.cuda = cuda
        operations = OperationParity(cuda: cuda, cpu: cpu)
    }

    public func run() -> [ParityResult] {
        var results: [ParityResult] = []
        let checks: [(String, () throws -> [ParityResult])] = [("batch-invariant matmul", matmulChecks), ("deterministic decode attention", attentionChecks)]
        for (name, check) in checks {
            do { results += try check() } catch { results.append(.failed(name, precision: "bf16 det", error)) }
        }
        return results
    }

    func matmulChecks() throws -> [ParityResult] {
        var results: [ParityResult] = []
        for (m, n, k) in [(300, 3072, 1024), (70, 1000, 136), (33, 151_936, 128)] {
            let a = operations.random([m, k], seed: 800 + UInt64(k)), w = operations.random([n, k], scale: 0.1, seed: 801 + UInt64(k), activation: false)
            let deviceA = try operations.device(a), deviceW = try cuda.upload(w)
            let full = try cuda.download(try cuda.matmul(deviceA, deviceW, transposeA: false, transposeB: true))
            let fullF32 = try cuda.zeros([m, n], dtype: .f32)
            try cuda.matmul(deviceA, deviceW, transposeA: false, transposeB: true, into: fullF32, alpha: 1, beta: 0)
            let fullF32Host = try cuda.download(fullF32)
            for range in [0..<1, 5..<6, 17..<(min(50, m)), (m - 3)..<m] {
                let part = try cuda.download(try cuda.matmul(deviceA.rows(range), deviceW, transposeA: false, transposeB: true))
                let partF32 = try cuda.zeros([range.count, n], dtype: .f32)
                try cuda.matmul(deviceA.rows(range), deviceW, transposeA: false, transposeB: true, into: partF32, alpha: 1, beta: 0)
                let label = "\(m)x\(n)x\(k) rows \(range.lowerBound)..<\(range.upperBound)"
                results.append(ParityResult.compareBits("det matmul bf16 out, \(label) vs full batch", precision: "bf16 det",
                                                        cuda: part, cpu: Self.rows(full, range)))
                results.append(ParityResult.compareBits("det matmul f32 out, \(label) vs full batch", precision: "bf16 det",
                                                        cuda: try cuda.download(partF32), cpu: Self.rows(fullF32Host, range)))
            }
            let reference = try operations.cpu.matmul(a, w.converted(to: .bf16).converted(to: .f32), transposeA: false, transposeB: true)
            results.append(ParityResult.compare("det matmul \(m)x\(n)x\(k) vs CPU", precision: "bf16 det", cuda: fullF32Host.toFloats(),
                                                cpu: reference.toFloats(), tolerance: 1e-4))
        }
        return results
    }

    /// Decode attention (cache gathered on the device, flash kernel, one query per sequence) against each
    /// sequence's last row of the training attention over its whole context.
    func attentionChecks() throws -> [ParityResult] {
        let (heads, kvHeads, dim, blockSize) = (16, 8, 128, 16)
        let contexts = [1, 63, 64, 65, 300, 777]
        let blockCount = contexts.reduce(0) { $0 + ($1 + blockSize - 1) / blockSize } + 3
        let keys = operations.random([blockCount * blockSize, kvHeads, dim], seed: 820)
        let values = operations.random([blockCount * blockSize, kvHeads, dim], seed: 821)
        let tables = operations.randomBlockTables(contexts, blockSize: blockSize, blockCount: blockCount, seed: 822)
        let scale = 1 / Float(dim).squareRoot()
        // Training-layout inputs: each sequence's full context as queries and keys.
        var queries: [Float] = [], packedKeys: [Float] = [], packedValues: [Float] = []
        var lastQueries: [Float] = []
        let keyValues = keys.toFloats(), valueValues = values.toFloats()
        let rowWidth = kvHeads * dim
        var generator = SeededGenerator(seed: 823)
        for (s, length) in contexts.enumerated() {
            for i in 0..<length {
                let slot = Int(tables[s][i / blockSize]) * blockSize + i % blockSize
                packedKeys += keyValues[(slot * rowWidth)..<((slot + 1) * rowWidth)]
                packedValues += valueValues[(slot * rowWidth)..<((slot + 1) * rowWidth)]
                let row = (0..<(heads * dim)).map { _ in Float(generator.nextUnitDouble() * 2 - 1) }
                queries += row
                if i == length - 1 { lastQueries += row }
            }
        }
        let total = contexts.reduce(0, +)
        func bf16Tensor(_ values: [Float], _ shape: [Int]) throws -> Tensor { try cuda.upload(Tensor(values, shape: shape).converted(to: .bf16)) }
        let layout = AttentionLayout(selfAttention: PackedSequences(lengths: contexts))
        let training = try cuda.download(try cuda.attention(
            query: try bf16Tensor(queries, [total, heads, dim]), key: try bf16Tensor(packedKeys, [total, kvHeads, dim]),
            value: try bf16Tensor(packedValues, [total, kvHeads, dim]), layout: layout, scale: scale).output)
        let width = 64
        let flat = tables.flatMap { $0 + [Int32](repeating: 0, count: width - $0.count) }
        let decode = try cuda.download(try cuda.pagedDecodeAttention(
            query: try bf16Tensor(lastQueries, [contexts.count, heads, dim]), keyCache: try cuda.upload(keys.converted(to: .bf16)),
            valueCache: try cuda.upload(values.converted(to: .bf16)), blockTable: try cuda.upload(Tensor(int32: flat, shape: [contexts.count, width])),
            contextLengths: try cuda.upload(Tensor(int32: contexts.map { Int32($0) })), blockSize: blockSize, maxContextLength: width * blockSize, scale: scale))
        let lastRows = PackedSequences(lengths: contexts).cuSeqlens.dropFirst().map { Int($0) - 1 }
        let expected = Tensor(zeros: [contexts.count, heads, dim], dtype: .bf16)
        let rowBytes = heads * dim * 2
        for (s, row) in lastRows.enumerated() {
            (expected.rawPointer + s * rowBytes).copyMemory(from: training.rawPointer + row * rowBytes, byteCount: rowBytes)
        }
        return [ParityResult.compareBits("det decode attention vs training rows (bits)", precision: "bf16 det", cuda: decode, cpu: expected)]
    }

    static func rows(_ tensor: Tensor, _ range: Range<Int>) -> Tensor {
        let view = tensor.rows(range)
        return view.copy()
    }
}
