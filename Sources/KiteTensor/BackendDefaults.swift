/// Default implementations of the device-metadata, sampling and graph operations for backends without a
/// faster way: metadata tensors are brought to the host and the host-list operations do the work. The CPU
/// backend uses these as they are; they define what accelerators must compute.
extension Backend {
    public var keyValueCacheDType: DType { .f32 }

    public func deviceMemory() throws -> (free: Int, total: Int)? { nil }

    public func gatherRows(_ x: Tensor, indices: Tensor) throws -> Tensor {
        try gatherRows(x, rows: try int32List(indices, "gatherRows"))
    }

    public func storeKeyValues(key: Tensor, value: Tensor, keyCache: Tensor, valueCache: Tensor, slotIndices: Tensor) throws {
        try storeKeyValues(key: key, value: value, keyCache: keyCache, valueCache: valueCache, slots: try int32List(slotIndices, "storeKeyValues"))
    }

    public func pagedDecodeAttention(
        query: Tensor, keyCache: Tensor, valueCache: Tensor, blockTable: Tensor, contextLengths: Tensor,
        blockSize: Int, maxContextLength: Int, scale: Float
    ) throws -> Tensor {
        guard blockTable.rank == 2, contextLengths.shape == [blockTable.shape[0]], query.rank == 3, query.shape[0] == blockTable.shape[0] else {
            throw KiteTensorError.shapeMismatch(operation: "pagedDecodeAttention", detail: "query \(query.shape), block table \(blockTable.shape), context lengths \(contextLengths.shape)")
        }
        let (batch, width) = (blockTable.shape[0], blockTable.shape[1])
        let table = try int32List(blockTable, "pagedDecodeAttention"), lengths = try int32List(contextLengths, "pagedDecodeAttention").map(Int.init)
        for (b, length) in lengths.enumerated() where length < 1 || length > maxContextLength {
            throw KiteTensorError.invalidArgument(operation: "pagedDecodeAttention", detail: "sequence \(b): context length \(length) outside 1...\(maxContextLength)")
        }
        let tables = (0..<batch).map { Array(table[($0 * width)..<(($0 + 1) * width)]) }
        return try pagedAttention(
            query: query, keyCache: keyCache, valueCache: valueCache, blockTables: tables, blockSize: blockSize,
            contextLengths: lengths, queries: PackedSequences(lengths: Array(repeating: 1, count: batch)), scale: scale)
    }

    public func sampleTokens(hidden: Tensor, weight: Tensor, rows: [TokenSampling]) throws -> [SampledToken] {
        guard hidden.rank == 2, weight.rank == 2, hidden.shape[1] == weight.shape[1], hidden.shape[0] == rows.count else {
            throw KiteTensorError.shapeMismatch(operation: "sampleTokens", detail: "hidden \(hidden.shape), weight \(weight.shape), \(rows.count) sampling rows")
        }
        try validate(rows, vocabularySize: weight.shape[0])
        let vocabulary = weight.shape[0]
        var results: [SampledToken] = []
        results.reserveCapacity(rows.count)
        let chunk = max(1, min(rows.count, 256))
        for start in stride(from: 0, to: rows.count, by: chunk) {
            let count = min(chunk, rows.count - start)
            let logits = try download(try matmul(hidden.rows(start..<(start + count)), weight, transposeA: false, transposeB: true))
            let values = logits.dtype == .f32 ? logits : logits.converted(to: .f32)
            let base = values.floats.baseAddress!
            for i in 0..<count {
                results.append(rows[start + i].reference(UnsafePointer(base + i * vocabulary), count: vocabulary))
            }
        }
        return results
    }

    public func sampleTokensDeferred(hidden: Tensor, weight: Tensor, rows: [TokenSampling]) throws -> any DeferredSamples {
        let values = try sampleTokens(hidden: hidden, weight: weight, rows: rows)
        return ReadySamples(values, tokens: try upload(Tensor(int32: values.map(\.token))))
    }

    public func captureGraph(_ body: () throws -> Void) throws -> (any DeviceGraph)? { nil }

    public func overlapped(_ first: () throws -> Void, _ second: () throws -> Void) throws {
        try first()
        try second()
    }

    /// Checks sampling rows against the definition's ranges, naming the row.
    public func validate(_ rows: [TokenSampling], vocabularySize: Int) throws {
        guard vocabularySize > 0 else { throw KiteTensorError.invalidArgument(operation: "sampleTokens", detail: "empty vocabulary") }
        for (index, row) in rows.enumerated() {
            guard row.temperature.isFinite, row.temperature >= 0, row.topK >= 0, row.topP > 0, row.topP <= 1,
                row.minP >= 0, row.minP <= 1, row.uniform >= 0, row.uniform < 1
            else {
                throw KiteTensorError.invalidArgument(operation: "sampleTokens", detail: "row \(index): \(row) is outside the valid ranges")
            }
        }
    }

    /// The elements of an i32 tensor on this backend (or the host) as a host list.
    func int32List(_ tensor: Tensor, _ operation: String) throws -> [Int32] {
        guard tensor.dtype == .i32 else {
            throw KiteTensorError.unsupportedDType(operation: operation, dtype: tensor.dtype, expected: "i32 indices")
        }
        return try download(tensor).toInt32s()
    }
}

/// Block-scaled products by dequantising the weights: the exact reference every backend can run.
extension Backend {
    public func blockScaledMatmul(_ x: Tensor, values: Tensor, scales: Tensor, blockSize: Int) throws -> Tensor {
        try matmul(x, try blockDequantize(values: values, scales: scales, blockSize: blockSize, to: .f32), transposeA: false, transposeB: true)
    }

    public func groupedBlockScaledMatmul(_ x: Tensor, values: [Tensor], scales: [Tensor], groupSizes: [Int], blockSize: Int) throws -> Tensor {
        guard values.count == groupSizes.count, scales.count == groupSizes.count else {
            throw KiteTensorError.invalidArgument(operation: "groupedBlockScaledMatmul", detail: "\(values.count) weights and \(scales.count) scales for \(groupSizes.count) groups")
        }
        let weights = try values.indices.map { g in
            groupSizes[g] > 0 ? try blockDequantize(values: values[g], scales: scales[g], blockSize: blockSize, to: .f32) : values[g]
        }
        return try groupedMatmul(x, weights: weights, groupSizes: groupSizes, transposeWeights: true)
    }
}
