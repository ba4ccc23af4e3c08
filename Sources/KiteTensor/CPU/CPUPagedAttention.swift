/// The paged cache on the CPU: slots are rows of one tensor per layer; attention gathers each sequence's
/// context into contiguous keys and values and reuses the packed attention kernel, so prefill, decode and
/// training compute every row with the same arithmetic (and the same results).
extension CPUBackend {
    public func storeKeyValues(key: Tensor, value: Tensor, keyCache: Tensor, valueCache: Tensor, slots: [Int32]) throws {
        for (name, x) in [("key", key), ("value", value), ("keyCache", keyCache), ("valueCache", valueCache)] {
            try requireFloat32(x, "storeKeyValues")
            guard x.rank == 3 else { throw KiteTensorError.shapeMismatch(operation: "storeKeyValues", detail: "\(name) \(x.shape), expected rank 3") }
        }
        guard key.shape[0] == slots.count, value.shape[0] == slots.count,
            Array(key.shape.dropFirst()) == Array(keyCache.shape.dropFirst()),
            Array(value.shape.dropFirst()) == Array(valueCache.shape.dropFirst()), keyCache.shape[0] == valueCache.shape[0]
        else {
            throw KiteTensorError.shapeMismatch(operation: "storeKeyValues", detail: "key \(key.shape), value \(value.shape), caches \(keyCache.shape) / \(valueCache.shape), \(slots.count) slots")
        }
        let slotCount = keyCache.shape[0]
        let keyWidth = key.count / max(slots.count, 1), valueWidth = value.count / max(slots.count, 1)
        let (pk, pv, pkc, pvc) = (key.floats.baseAddress!, value.floats.baseAddress!, keyCache.floats.baseAddress!, valueCache.floats.baseAddress!)
        for (row, slot) in slots.enumerated() {
            guard slot >= 0 && Int(slot) < slotCount else {
                throw KiteTensorError.indexOutOfRange(operation: "storeKeyValues", index: Int(slot), limit: slotCount, position: row)
            }
            (pkc + Int(slot) * keyWidth).update(from: pk + row * keyWidth, count: keyWidth)
            (pvc + Int(slot) * valueWidth).update(from: pv + row * valueWidth, count: valueWidth)
        }
    }

    public func pagedAttention(
        query: Tensor, keyCache: Tensor, valueCache: Tensor, blockTables: [[Int32]], blockSize: Int,
        contextLengths: [Int], queries: PackedSequences, scale: Float
    ) throws -> Tensor {
        guard blockTables.count == queries.count, contextLengths.count == queries.count, blockSize > 0 else {
            throw KiteTensorError.invalidArgument(operation: "pagedAttention", detail: "\(queries.count) sequences, \(blockTables.count) block tables, \(contextLengths.count) context lengths, block size \(blockSize)")
        }
        try requireFloat32(keyCache, "pagedAttention")
        try requireFloat32(valueCache, "pagedAttention")
        let slotCount = keyCache.shape[0]
        var slots: [Int32] = []
        slots.reserveCapacity(contextLengths.reduce(0, +))
        for (s, length) in contextLengths.enumerated() {
            guard length >= queries.range(s).count, (length + blockSize - 1) / blockSize <= blockTables[s].count else {
                throw KiteTensorError.invalidArgument(operation: "pagedAttention", detail: "sequence \(s): context \(length) for \(queries.range(s).count) queries and \(blockTables[s].count) blocks of \(blockSize)")
            }
            for i in 0..<length {
                let slot = Int(blockTables[s][i / blockSize]) * blockSize + i % blockSize
                guard slot >= 0 && slot < slotCount else {
                    throw KiteTensorError.indexOutOfRange(operation: "pagedAttention", index: slot, limit: slotCount, position: i)
                }
                slots.append(Int32(slot))
            }
        }
        let keys = try gatherRows(keyCache, rows: slots), values = try gatherRows(valueCache, rows: slots)
        let layout = try AttentionLayout(queries: queries, keys: PackedSequences(lengths: contextLengths))
        return try attention(query: query, key: keys, value: values, layout: layout, scale: scale).output
    }

    public func copyRows(_ tensor: Tensor, from sources: [Int32], to destinations: [Int32]) throws {
        try requireHost(tensor, "copyRows")
        guard sources.count == destinations.count, tensor.rank >= 1 else {
            throw KiteTensorError.invalidArgument(operation: "copyRows", detail: "\(sources.count) sources for \(destinations.count) destinations")
        }
        let rows = tensor.shape[0], rowBytes = tensor.byteCount / max(rows, 1)
        for (i, (source, destination)) in zip(sources, destinations).enumerated() {
            guard source >= 0 && Int(source) < rows else { throw KiteTensorError.indexOutOfRange(operation: "copyRows", index: Int(source), limit: rows, position: i) }
            guard destination >= 0 && Int(destination) < rows else { throw KiteTensorError.indexOutOfRange(operation: "copyRows", index: Int(destination), limit: rows, position: i) }
            (tensor.rawPointer + Int(destination) * rowBytes).copyMemory(from: tensor.rawPointer + Int(source) * rowBytes, byteCount: rowBytes)
        }
    }

    public func gatherRows(_ x: Tensor, rows: [Int32]) throws -> Tensor {
        try requireHost(x, "gatherRows")
        guard x.rank >= 1 else { throw KiteTensorError.shapeMismatch(operation: "gatherRows", detail: "scalar input") }
        let count = x.shape[0], rowBytes = x.byteCount / max(count, 1)
        var shape = x.shape
        shape[0] = rows.count
        let output = Tensor(uninitialized: shape, dtype: x.dtype)
        for (i, row) in rows.enumerated() {
            guard row >= 0 && Int(row) < count else { throw KiteTensorError.indexOutOfRange(operation: "gatherRows", index: Int(row), limit: count, position: i) }
            (output.rawPointer + i * rowBytes).copyMemory(from: x.rawPointer + Int(row) * rowBytes, byteCount: rowBytes)
        }
        return output
    }
}
