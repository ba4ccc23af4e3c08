import KiteTensor

/// `sampleTokens`: the fused head's product (fp32 logits of a chunk of rows, through `product`, so the
/// deterministic kernel in deterministic mode) followed by `kite_sample_rows`; one host read at the end.
extension CUDABackend {
    public func sampleTokens(hidden: Tensor, weight: Tensor, rows: [TokenSampling]) throws -> [SampledToken] {
        try profiler.measure(.head) {
            guard let results = try queueSampling(hidden: hidden, weight: weight, rows: rows) else { return [] }
            let values = try download(results)
            return Self.sampledTokens(values.rawPointer, count: rows.count)
        }
    }

    /// The same sampling with the read-back queued into pinned memory behind it and waited for only by
    /// `DeferredSamples.results()`, so the host can queue the next step first.
    public func sampleTokensDeferred(hidden: Tensor, weight: Tensor, rows: [TokenSampling]) throws -> any DeferredSamples {
        try profiler.measure(.head) {
            guard let results = try queueSampling(hidden: hidden, weight: weight, rows: rows) else {
                return ReadySamples([], tokens: try allocate([0], .i32))
            }
            try context.makeCurrent()
            let buffer = try readbackBuffers.take(bytes: results.byteCount)
            do {
                try context.driver.check(
                    context.driver.cuMemcpyDtoHAsync(buffer.pointer, address(results), results.byteCount, context.stream.handle),
                    "cuMemcpyDtoHAsync(\(results.byteCount) bytes, pinned)")
                let done = try CUDAEvent(driver: context.driver, timing: false)
                try done.record(on: context.stream)
                return CUDADeferredSamples(results: results, count: rows.count, buffer: buffer, done: done, buffers: readbackBuffers)
            } catch {
                // The copy may be queued: the buffer is not reused until the stream has drained.
                try? context.stream.synchronize()
                readbackBuffers.give(buffer)
                throw error
            }
        }
    }

    /// Queues the head's product and the sampling kernel; returns the device results, i32 `[2 * rows]`
    /// (tokens, then the log-probs' fp32 bits), or nil for no rows.
    private func queueSampling(hidden: Tensor, weight: Tensor, rows: [TokenSampling]) throws -> Tensor? {
        guard hidden.rank == 2, weight.rank == 2, hidden.shape[1] == weight.shape[1], hidden.shape[0] == rows.count else {
            throw KiteTensorError.shapeMismatch(operation: "sampleTokens", detail: "hidden \(hidden.shape), weight \(weight.shape), \(rows.count) sampling rows")
        }
        let vocabulary = weight.shape[0]
        try validate(rows, vocabularySize: vocabulary)
        guard !rows.isEmpty else { return nil }
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
        let parameters = try allocate([count * 5], .i64)
        try copy(host, into: parameters)
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
        try externalProfilerWindow.stepFinished()
        return results
    }

    /// Tokens, then log-probs, of `count` rows as the sampling kernel lays them out.
    static func sampledTokens(_ values: UnsafeRawPointer, count: Int) -> [SampledToken] {
        let tokens = values.assumingMemoryBound(to: Int32.self)
        let logprobs = (values + count * 4).assumingMemoryBound(to: Float.self)
        return (0..<count).map { SampledToken(token: tokens[$0], logprob: logprobs[$0]) }
    }
}

/// Sampling results being copied into a pinned buffer behind the sampling kernel.
final class CUDADeferredSamples: DeferredSamples, @unchecked Sendable {
    /// The device results, `[2 * count]` i32; kept alive until the copy has read them.
    private let deviceResults: Tensor
    private let count: Int
    private var buffer: PinnedHostBuffer?
    private let done: CUDAEvent
    private let buffers: PinnedReadbackBuffers
    private var values: [SampledToken]?

    init(results: Tensor, count: Int, buffer: PinnedHostBuffer, done: CUDAEvent, buffers: PinnedReadbackBuffers) {
        deviceResults = results
        self.count = count
        self.buffer = buffer
        self.done = done
        self.buffers = buffers
    }

    var tokens: Tensor { deviceResults.rows(0..<count) }

    func results() throws -> [SampledToken] {
        if let values { return values }
        try done.synchronize()
        guard let buffer else { throw CUDAError.unsupported("deferred samples read after their buffer was returned") }
        let read = CUDABackend.sampledTokens(UnsafeRawPointer(buffer.pointer), count: count)
        values = read
        buffers.give(buffer)
        self.buffer = nil
        return read
    }

    deinit {
        // Unread results: the copy into the buffer must finish before another read reuses it.
        if let buffer, (try? done.synchronize()) != nil { buffers.give(buffer) }
    }
}
