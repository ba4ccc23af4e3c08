import KiteTensor

/// `sampleTokens`: the fused head's product (fp32 logits of a chunk of rows, through `product`, so the
/// deterministic kernel in deterministic mode) followed by `kite_sample_rows`; one host read at the end.
extension CUDABackend {
    public func sampleTokens(hidden: Tensor, weight: Tensor, rows: [TokenSampling]) throws -> [SampledToken] {
        try profiler.measure(.head) {
            guard hidden.rank == 2, weight.rank == 2, hidden.shape[1] == weight.shape[1], hidden.shape[0] == rows.count else {
                throw KiteTensorError.shapeMismatch(operation: "sampleTokens", detail: "hidden \(hidden.shape), weight \(weight.shape), \(rows.count) sampling rows")
            }
            let vocabulary = weight.shape[0]
            try validate(rows, vocabularySize: vocabulary)
            guard !rows.isEmpty else { return [] }
            let hidden = try activation(hidden, "sampleTokens")
            let weight = try converted(try onDevice(weight, "sampleTokens"), to: computeDType, keep: true, operation: "sampleTokens")
            let count = rows.count
            // Five fp64 parameters per row, passed as their bit patterns.
            let host = Tensor(zeros: [count * 5], dtype: .i64)
            let words = host.rawPointer.assumingMemoryBound(to: UInt64.self)
            for (index, row) in rows.enumerated() {
                let values = [Double(row.temperature), Double(row.topK), row.topP, row.minP, row.uniform]
                for (offset, value) in values.enumerated() { words[index * 5 + offset] = value.bitPattern }
            }
            let parameters = try upload(host)
            let results = try allocate([2 * count], .i32)
            let chunk = headChunkRows(vocabulary: vocabulary, rows: count)
            let logits = try allocate([chunk, vocabulary], .f32)
            for start in stride(from: 0, to: count, by: chunk) {
                let rowsHere = min(chunk, count - start)
                let block = logits.rows(0..<rowsHere)
                try product(hidden.rows(start..<(start + rowsHere)), weight, transposeA: false, transposeB: true, into: block, alpha: 1, beta: 0)
                var arguments = KernelArguments()
                arguments.add(address(block)); arguments.add(int64: vocabulary); arguments.add(int: vocabulary)
                arguments.add(address(parameters) + CUDevicePointer(start * 5 * 8))
                arguments.add(Int32(vocabulary % 4 == 0 ? 1 : 0))
                arguments.add(address(results) + CUDevicePointer(start * 4))
                // The kernel writes log-probs at out[rows + row]; shift so they land in the second half.
                arguments.add(int: count)
                try launch(.head, "kite_sample_rows", LaunchShape(grid: rowsHere, block: SamplingKernels.threads), arguments)
            }
            let values = try download(results)
            try externalProfilerWindow.stepFinished()
            let tokens = values.rawPointer.assumingMemoryBound(to: Int32.self)
            let logprobs = (values.rawPointer + count * 4).assumingMemoryBound(to: Float.self)
            return (0..<count).map { SampledToken(token: tokens[$0], logprob: logprobs[$0]) }
        }
    }
}
