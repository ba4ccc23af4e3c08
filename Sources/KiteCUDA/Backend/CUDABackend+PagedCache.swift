import KiteTensor

/// The paged key/value cache operations, as the CPU backend defines them: slots are rows of one tensor per
/// layer. `pagedAttention` gathers each sequence's context into contiguous keys and values on the device and
/// runs the packed attention kernels, so prefill, decode and training share their arithmetic; batches of one
/// query per sequence go to the in-place decode kernel instead (`CUDABackend+Decode.swift`), except in
/// deterministic mode.
extension CUDABackend {
    public func storeKeyValues(key: Tensor, value: Tensor, keyCache: Tensor, valueCache: Tensor, slots: [Int32]) throws {
        try profiler.measure(.other) {
            for (name, x) in [("key", key), ("value", value), ("keyCache", keyCache), ("valueCache", valueCache)] where x.rank != 3 {
                throw KiteTensorError.shapeMismatch(operation: "storeKeyValues", detail: "\(name) \(x.shape), expected rank 3")
            }
            guard key.shape[0] == slots.count, value.shape[0] == slots.count,
                Array(key.shape.dropFirst()) == Array(keyCache.shape.dropFirst()),
                Array(value.shape.dropFirst()) == Array(valueCache.shape.dropFirst()), keyCache.shape[0] == valueCache.shape[0]
            else {
                throw KiteTensorError.shapeMismatch(operation: "storeKeyValues", detail: "key \(key.shape), value \(value.shape), caches \(keyCache.shape) / \(valueCache.shape), \(slots.count) slots")
            }
            try checkRows(slots, limit: keyCache.shape[0], operation: "storeKeyValues")
            try inPlaceTarget(keyCache, "storeKeyValues")
            try inPlaceTarget(valueCache, "storeKeyValues")
            guard !slots.isEmpty else { return }
            let destinations = try upload(Tensor(int32: slots))
            let key = try converted(try onDevice(key, "storeKeyValues"), to: keyCache.dtype, keep: false, operation: "storeKeyValues")
            let value = try converted(try onDevice(value, "storeKeyValues"), to: valueCache.dtype, keep: false, operation: "storeKeyValues")
            try moveRows(from: key, sourceRows: nil, to: keyCache, destinationRows: destinations, count: slots.count)
            try moveRows(from: value, sourceRows: nil, to: valueCache, destinationRows: destinations, count: slots.count)
        }
    }

    public func pagedAttention(
        query: Tensor, keyCache: Tensor, valueCache: Tensor, blockTables: [[Int32]], blockSize: Int,
        contextLengths: [Int], queries: PackedSequences, scale: Float
    ) throws -> Tensor {
        guard blockTables.count == queries.count, contextLengths.count == queries.count, blockSize > 0 else {
            throw KiteTensorError.invalidArgument(operation: "pagedAttention", detail: "\(queries.count) sequences, \(blockTables.count) block tables, \(contextLengths.count) context lengths, block size \(blockSize)")
        }
        if queries.count > 0, queries.totalLength == queries.count, query.rank == 3, keyCache.rank == 3, keyCache.shape[1] > 0,
            query.shape[1] % keyCache.shape[1] == 0,
            usesDecodeKernel(headDim: query.shape[2], group: query.shape[1] / keyCache.shape[1], cache: keyCache),
            let longest = contextLengths.max(), longest >= 1
        {
            // One query per sequence: the in-place decode kernel, with the metadata uploaded once.
            let width = (longest + blockSize - 1) / blockSize
            var table = [Int32](repeating: 0, count: queries.count * width)
            for (s, blocks) in blockTables.enumerated() {
                let needed = (contextLengths[s] + blockSize - 1) / blockSize
                guard contextLengths[s] >= 1, needed <= blocks.count else {
                    throw KiteTensorError.invalidArgument(operation: "pagedAttention", detail: "sequence \(s): context \(contextLengths[s]) for 1 query and \(blocks.count) blocks of \(blockSize)")
                }
                for i in 0..<needed {
                    guard blocks[i] >= 0, (Int(blocks[i]) + 1) * blockSize <= keyCache.shape[0] else {
                        throw KiteTensorError.indexOutOfRange(operation: "pagedAttention", index: Int(blocks[i]) * blockSize, limit: keyCache.shape[0], position: i * blockSize)
                    }
                    table[s * width + i] = blocks[i]
                }
            }
            return try pagedDecodeAttention(
                query: query, keyCache: keyCache, valueCache: valueCache,
                blockTable: try upload(Tensor(int32: table, shape: [queries.count, width])),
                contextLengths: try upload(Tensor(int32: contextLengths.map { Int32($0) })),
                blockSize: blockSize, maxContextLength: longest, scale: scale)
        }
        let slotCount = keyCache.shape.first ?? 0
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
        // Latent attention's cache is its own value cache: gather its rows once.
        let keys = try gatherRows(keyCache, rows: slots)
        let shared = keyCache.rawPointer == valueCache.rawPointer && keyCache.shape == valueCache.shape && keyCache.dtype == valueCache.dtype
        let values = shared ? keys : try gatherRows(valueCache, rows: slots)
        let layout = try AttentionLayout(queries: queries, keys: PackedSequences(lengths: contextLengths))
        return try attention(query: query, key: keys, value: values, layout: layout, scale: scale).output
    }

    /// Copies rows `sources` onto rows `destinations` as if all were read before any was written (the CPU copies
    /// one after another; the two agree unless a destination is also a later source, which block copy-on-write
    /// never asks for).
    public func copyRows(_ tensor: Tensor, from sources: [Int32], to destinations: [Int32]) throws {
        try profiler.measure(.other) {
            guard sources.count == destinations.count, tensor.rank >= 1 else {
                throw KiteTensorError.invalidArgument(operation: "copyRows", detail: "\(sources.count) sources for \(destinations.count) destinations")
            }
            try checkRows(sources, limit: tensor.shape[0], operation: "copyRows")
            try checkRows(destinations, limit: tensor.shape[0], operation: "copyRows")
            try inPlaceTarget(tensor, "copyRows")
            guard !sources.isEmpty else { return }
            let gathered = try gatherRows(tensor, rows: sources)
            try moveRows(from: gathered, sourceRows: nil, to: tensor, destinationRows: try upload(Tensor(int32: destinations)), count: sources.count)
        }
    }

    public func gatherRows(_ x: Tensor, rows: [Int32]) throws -> Tensor {
        try profiler.measure(.other) {
            guard x.rank >= 1 else { throw KiteTensorError.shapeMismatch(operation: "gatherRows", detail: "scalar input") }
            let x = try onDevice(x, "gatherRows")
            try checkRows(rows, limit: x.shape[0], operation: "gatherRows")
            var shape = x.shape
            shape[0] = rows.count
            let output = try allocate(shape, x.dtype)
            guard !rows.isEmpty else { return output }
            try moveRows(from: x, sourceRows: try upload(Tensor(int32: rows)), to: output, destinationRows: nil, count: rows.count)
            return output
        }
    }

    func checkRows(_ rows: [Int32], limit: Int, operation: String) throws {
        for (position, row) in rows.enumerated() where row < 0 || Int(row) >= limit {
            throw KiteTensorError.indexOutOfRange(operation: operation, index: Int(row), limit: limit, position: position)
        }
    }

    /// Row `destinationRows[i]` of `destination` = row `sourceRows[i]` of `source` (nil lists: row i).
    func moveRows(from source: Tensor, sourceRows: Tensor?, to destination: Tensor, destinationRows: Tensor?, count: Int) throws {
        let rowBytes = destination.byteCount / max(destination.shape[0], 1)
        let aligned = { (word: Int) in rowBytes % word == 0 && self.address(source) % CUDevicePointer(word) == 0 && self.address(destination) % CUDevicePointer(word) == 0 }
        let word = aligned(16) ? 16 : (aligned(4) ? 4 : 1)
        var arguments = KernelArguments()
        arguments.add(address(source)); arguments.add(address(destination))
        arguments.add(sourceRows.map(address) ?? 0); arguments.add(destinationRows.map(address) ?? 0)
        arguments.add(int64: count); arguments.add(int64: rowBytes); arguments.add(int: word)
        try launch(.elementwise, "kite_move_rows", elementwiseShape(count * rowBytes / word, vector: false), arguments)
    }
}
