#if canImport(Glibc)
import Glibc
#endif

/// The output head fused with the log-softmax: logits exist only for a chunk of rows at a time, so a
/// 150k-token vocabulary never costs `[T, V]` floats.
extension CPUBackend {
    /// Rows per chunk: about 4M logits (16 MB, small enough for malloc to recycle rather than map afresh),
    /// at least 16 rows so each GEMM stays efficient.
    func logitRowsPerChunk(vocabulary: Int, rows: Int) -> Int {
        max(1, min(rows, max(16, min(256, (4 << 20) / max(vocabulary, 1)))))
    }

    func validateHead(hidden: Tensor, weight: Tensor, targets: Tensor, temperature: Float, operation: String) throws {
        try requireFloat32(hidden, operation)
        try requireFloat32(weight, operation)
        guard hidden.rank == 2, weight.rank == 2, hidden.shape[1] == weight.shape[1] else {
            throw KiteTensorError.shapeMismatch(operation: operation, detail: "hidden \(hidden.shape) and weight \(weight.shape); expected [T, D] and [V, D]")
        }
        guard targets.dtype == .i32, targets.shape == [hidden.shape[0]] else {
            throw KiteTensorError.shapeMismatch(operation: operation, detail: "targets \(targets), expected i32 [\(hidden.shape[0])]")
        }
        guard temperature > 0, temperature.isFinite else {
            throw KiteTensorError.invalidArgument(operation: operation, detail: "temperature must be a positive number, got \(temperature)")
        }
        let vocabulary = weight.shape[0]
        for (position, target) in targets.int32s.enumerated() where Int(target) >= vocabulary {
            throw KiteTensorError.indexOutOfRange(operation: operation, index: Int(target), limit: vocabulary, position: position)
        }
    }

    public func logprobsAndEntropy(hidden: Tensor, weight: Tensor, targets: Tensor, temperature: Float) throws -> (logprobs: Tensor, entropy: Tensor) {
        try validateHead(hidden: hidden, weight: weight, targets: targets, temperature: temperature, operation: "logprobsAndEntropy")
        let (rows, width, vocabulary) = (hidden.shape[0], hidden.shape[1], weight.shape[0])
        let logprobs = Tensor(zeros: [rows]), entropy = Tensor(zeros: [rows])
        guard rows > 0 else { return (logprobs, entropy) }
        let chunk = logitRowsPerChunk(vocabulary: vocabulary, rows: rows)
        var logits = [Float](repeating: 0, count: chunk * vocabulary)
        let (ph, pw, pt, plp, pe) = (hidden.floats.baseAddress!, weight.floats.baseAddress!, targets.int32s, logprobs.floats, entropy.floats)
        logits.withUnsafeMutableBufferPointer { logits in
            let pz = logits.baseAddress!
            for start in stride(from: 0, to: rows, by: chunk) {
                let count = min(chunk, rows - start)
                GEMM.sgemm(transposeA: false, transposeB: true, m: count, n: vocabulary, k: width, alpha: 1,
                           a: ph + start * width, lda: width, b: pw, ldb: width, beta: 0, c: pz, ldc: vocabulary, threads: threads)
                Parallel.forRanges(count: count, threads: threads) { range in
                    for r in range {
                        let stats = SoftmaxStatistics.compute(pz + r * vocabulary, count: vocabulary, temperature: temperature)
                        let target = Int(pt[start + r])
                        plp[start + r] = target >= 0 ? pz[r * vocabulary + target] / temperature - stats.logSumExp : 0
                        pe[start + r] = stats.entropy
                    }
                }
            }
        }
        return (logprobs, entropy)
    }

    public func logprobsAndEntropyBackward(
        dLogprobs: Tensor, dEntropy: Tensor, hidden: Tensor, weight: Tensor, targets: Tensor, temperature: Float,
        weightGradient: Tensor?
    ) throws -> Tensor {
        try validateHead(hidden: hidden, weight: weight, targets: targets, temperature: temperature, operation: "logprobsAndEntropyBackward")
        let (rows, width, vocabulary) = (hidden.shape[0], hidden.shape[1], weight.shape[0])
        try requireShape(dLogprobs, [rows], "logprobsAndEntropyBackward", "dLogprobs")
        try requireShape(dEntropy, [rows], "logprobsAndEntropyBackward", "dEntropy")
        if let weightGradient { try requireShape(weightGradient, weight.shape, "logprobsAndEntropyBackward", "weightGradient") }
        let dHidden = Tensor(zeros: hidden.shape)
        guard rows > 0 else { return dHidden }
        let chunk = logitRowsPerChunk(vocabulary: vocabulary, rows: rows)
        var logits = [Float](repeating: 0, count: chunk * vocabulary)
        let (ph, pw, pt) = (hidden.floats.baseAddress!, weight.floats.baseAddress!, targets.int32s)
        let (pdl, pde, pdh) = (dLogprobs.floats, dEntropy.floats, dHidden.floats.baseAddress!)
        let pg = weightGradient?.floats.baseAddress
        logits.withUnsafeMutableBufferPointer { logits in
            let pz = logits.baseAddress!
            for start in stride(from: 0, to: rows, by: chunk) {
                let count = min(chunk, rows - start)
                GEMM.sgemm(transposeA: false, transposeB: true, m: count, n: vocabulary, k: width, alpha: 1,
                           a: ph + start * width, lda: width, b: pw, ldb: width, beta: 0, c: pz, ldc: vocabulary, threads: threads)
                // d/dz_j of log p_t is [j == t] - p_j; of the entropy H it is -p_j (log p_j + H).
                // z = logits / T, so d/dlogits = d/dz / T. The logits buffer becomes d loss / d logits.
                Parallel.forRanges(count: count, threads: threads) { range in
                    for r in range {
                        let row = pz + r * vocabulary
                        let stats = SoftmaxStatistics.compute(row, count: vocabulary, temperature: temperature)
                        let target = Int(pt[start + r])
                        // A row without a target has no log-prob term.
                        let dl = target >= 0 ? pdl[start + r] : 0, de = pde[start + r]
                        for j in 0..<vocabulary {
                            let logp = row[j] / temperature - stats.logSumExp
                            let p = expf(logp)
                            row[j] = (-dl * p - de * p * (logp + stats.entropy)) / temperature
                        }
                        if target >= 0 { row[target] += dl / temperature }
                    }
                }
                // dHidden = dLogits W ;  dW += dLogits^T H
                GEMM.sgemm(transposeA: false, transposeB: false, m: count, n: width, k: vocabulary, alpha: 1,
                           a: pz, lda: vocabulary, b: pw, ldb: width, beta: 0, c: pdh + start * width, ldc: width, threads: threads)
                if let pg {
                    GEMM.sgemm(transposeA: true, transposeB: false, m: vocabulary, n: width, k: count, alpha: 1,
                               a: pz, lda: vocabulary, b: ph + start * width, ldb: width, beta: 1, c: pg, ldc: width, threads: threads)
                }
            }
        }
        return dHidden
    }
}
