import KiteTensor

/// Decode steps from device-side metadata: the engine uploads one buffer of tokens, positions, slots,
/// context lengths and block tables per step, and every layer reads it in place, so a step issues no host
/// copy and can be captured as a graph.
extension CUDABackend {
    public var keyValueCacheDType: DType { computeDType }

    /// Free counts what the driver has free and what this backend's allocator holds on its free lists.
    public func deviceMemory() throws -> (free: Int, total: Int)? {
        let info = try context.memoryInfo()
        return (info.free + memory.cachedBytes, info.total)
    }

    public func gatherRows(_ x: Tensor, indices: Tensor) throws -> Tensor {
        try profiler.measure(.other) {
            guard x.rank >= 1, indices.rank == 1 else {
                throw KiteTensorError.shapeMismatch(operation: "gatherRows", detail: "x \(x.shape), indices \(indices.shape)")
            }
            let x = try onDevice(x, "gatherRows"), indices = try requireInt32(indices, "gatherRows", "indices")
            var shape = x.shape
            shape[0] = indices.count
            let output = try allocate(shape, x.dtype)
            guard indices.count > 0 else { return output }
            try moveRows(from: x, sourceRows: indices, to: output, destinationRows: nil, count: indices.count)
            return output
        }
    }

    public func storeKeyValues(key: Tensor, value: Tensor, keyCache: Tensor, valueCache: Tensor, slotIndices: Tensor) throws {
        try profiler.measure(.other) {
            for (name, x) in [("key", key), ("value", value), ("keyCache", keyCache), ("valueCache", valueCache)] where x.rank != 3 {
                throw KiteTensorError.shapeMismatch(operation: "storeKeyValues", detail: "\(name) \(x.shape), expected rank 3")
            }
            guard slotIndices.rank == 1, key.shape[0] == slotIndices.count, value.shape[0] == slotIndices.count,
                Array(key.shape.dropFirst()) == Array(keyCache.shape.dropFirst()),
                Array(value.shape.dropFirst()) == Array(valueCache.shape.dropFirst())
            else {
                throw KiteTensorError.shapeMismatch(operation: "storeKeyValues", detail: "key \(key.shape), value \(value.shape), caches \(keyCache.shape) / \(valueCache.shape), slots \(slotIndices.shape)")
            }
            try inPlaceTarget(keyCache, "storeKeyValues")
            try inPlaceTarget(valueCache, "storeKeyValues")
            guard slotIndices.count > 0 else { return }
            let slots = try requireInt32(slotIndices, "storeKeyValues", "slots")
            let key = try converted(try onDevice(key, "storeKeyValues"), to: keyCache.dtype, keep: false, operation: "storeKeyValues")
            let value = try converted(try onDevice(value, "storeKeyValues"), to: valueCache.dtype, keep: false, operation: "storeKeyValues")
            let rowBytes = keyCache.byteCount / max(keyCache.shape[0], 1)
            if rowBytes % 16 == 0, valueCache.byteCount == keyCache.byteCount,
                [key, value, keyCache, valueCache].allSatisfy({ address($0) % 16 == 0 })
            {
                var arguments = KernelArguments()
                arguments.add(address(key)); arguments.add(address(value)); arguments.add(address(keyCache)); arguments.add(address(valueCache))
                arguments.add(address(slots)); arguments.add(int64: slots.count); arguments.add(int64: rowBytes)
                try launch(.decode, "kite_store_kv", elementwiseShape(slots.count * rowBytes / 16, vector: false), arguments)
                return
            }
            try moveRows(from: key, sourceRows: nil, to: keyCache, destinationRows: slots, count: slots.count)
            try moveRows(from: value, sourceRows: nil, to: valueCache, destinationRows: slots, count: slots.count)
        }
    }

    /// Whether the in-place split-K kernel serves this shape (bf16 cache, head size 64 or 128, a group size
    /// of 1, 2, 4 or 8, not deterministic mode).
    func usesDecodeKernel(headDim: Int, group: Int, cache: Tensor) -> Bool {
        !deterministic && cache.dtype == .bf16 && DecodeAttentionKernels.headDims.contains(headDim)
            && DecodeAttentionKernels.groupSizes.contains(group) && environment("KITE_DECODE_KERNEL") != "0"
    }

    /// Whether the device-side gather feeding the flash kernel serves this shape (what deterministic mode runs).
    func usesDecodeGather(headDim: Int, cache: Tensor) -> Bool {
        precision == .bf16 && cache.dtype == .bf16 && FlashAttentionKernels.headDims.contains(headDim)
    }

    public func pagedDecodeAttention(
        query: Tensor, keyCache: Tensor, valueCache: Tensor, blockTable: Tensor, contextLengths: Tensor,
        blockSize: Int, maxContextLength: Int, scale: Float
    ) throws -> Tensor {
        guard query.rank == 3, keyCache.rank == 3, valueCache.shape == keyCache.shape, blockTable.rank == 2,
            blockTable.shape[0] == query.shape[0], contextLengths.shape == [query.shape[0]], query.shape[2] == keyCache.shape[2],
            keyCache.shape[1] > 0, query.shape[1] % keyCache.shape[1] == 0, blockSize > 0, maxContextLength > 0,
            (maxContextLength + blockSize - 1) / blockSize <= blockTable.shape[1]
        else {
            throw KiteTensorError.shapeMismatch(operation: "pagedDecodeAttention", detail: "query \(query.shape), caches \(keyCache.shape) / \(valueCache.shape), block table \(blockTable.shape), context lengths \(contextLengths.shape), block size \(blockSize), max context \(maxContextLength)")
        }
        let (batch, heads, headDim, kvHeads) = (query.shape[0], query.shape[1], query.shape[2], keyCache.shape[1])
        let group = heads / kvHeads
        if usesDecodeKernel(headDim: headDim, group: group, cache: keyCache) {
            return try profiler.measure(.attention) {
                let query = try activation(query, "pagedDecodeAttention")
                let table = try requireInt32(blockTable, "pagedDecodeAttention", "block table")
                let lengths = try requireInt32(contextLengths, "pagedDecodeAttention", "context lengths")
                let output = try allocate([batch, heads, headDim], computeDType)
                guard batch > 0 else { return output }
                let variant = DecodeAttentionKernels.servedVariant(pairs: batch * kvHeads, multiprocessors: context.multiprocessorCount)
                // The rows variant: a block per (split, sequence, up to 8 KV heads), a warp per head.
                let headsPerBlock = variant == "rows" ? min(kvHeads, 8) : 0
                let headGroups = headsPerBlock > 0 ? (kvHeads + headsPerBlock - 1) / headsPerBlock : kvHeads
                let (splits, splitKeys) = decodeSplits(batch: batch, kvHeads: headGroups, maxContextLength: maxContextLength, headDim: headDim,
                                                       blocksPerMultiprocessor: headsPerBlock > 0 ? 2 : 4, oneWave: headsPerBlock > 0)
                // One split writes the output directly; several leave partials for the combine kernel.
                let partial = try allocate([splits > 1 ? batch * heads * splits * headDim : 1], .f32)
                let statistics = try allocate([splits > 1 ? batch * heads * splits * 2 : 1], .f32)
                var arguments = KernelArguments()
                arguments.add(address(query)); arguments.add(address(keyCache)); arguments.add(address(valueCache))
                arguments.add(address(table)); arguments.add(int: blockTable.shape[1]); arguments.add(address(lengths))
                arguments.add(int: blockSize); arguments.add(int: kvHeads); arguments.add(int: splitKeys); arguments.add(int: splits)
                arguments.add(scale * 1.4426950408889634); arguments.add(address(partial)); arguments.add(address(statistics))
                arguments.add(address(output)); arguments.add(try dtypeCode(output.dtype, "pagedDecodeAttention"))
                try launch(.decode, "kite_paged_decode_\(DecodeAttentionKernels.prefix(variant))d\(headDim)_g\(group)",
                           LaunchShape(grid: (splits, headGroups, batch), block: (headsPerBlock > 0 ? 32 * headsPerBlock : DecodeAttentionKernels.threads, 1, 1)),
                           arguments)
                guard splits > 1 else { return output }
                var combine = KernelArguments()
                combine.add(address(partial)); combine.add(address(statistics)); combine.add(address(lengths))
                combine.add(int: splitKeys); combine.add(int: splits); combine.add(int: heads); combine.add(int: headDim)
                combine.add(address(output)); combine.add(try dtypeCode(output.dtype, "pagedDecodeAttention"))
                try launch(.decode, "kite_paged_decode_combine", LaunchShape(grid: batch * heads, block: headDim), combine)
                return output
            }
        }
        if usesDecodeGather(headDim: headDim, cache: keyCache) {
            return try profiler.measure(.attention) {
                try gatherDecodeAttention(query: query, keyCache: keyCache, valueCache: valueCache, blockTable: blockTable,
                                          contextLengths: contextLengths, blockSize: blockSize, maxContextLength: maxContextLength, scale: scale)
            }
        }
        // fp32 mode and other shapes: the host round trip of the protocol's default.
        let table = try download(blockTable).toInt32s(), lengths = try download(contextLengths).toInt32s().map(Int.init)
        let width = blockTable.shape[1]
        return try pagedAttention(
            query: query, keyCache: keyCache, valueCache: valueCache,
            blockTables: (0..<batch).map { Array(table[($0 * width)..<(($0 + 1) * width)]) }, blockSize: blockSize,
            contextLengths: lengths, queries: PackedSequences(lengths: Array(repeating: 1, count: batch)), scale: scale)
    }

    /// Splits per (sequence, KV head) and keys per split: enough blocks to fill the GPU about four times
    /// over, at least 64 keys a split. With `oneWave` (the rows variant: 8-warp blocks, two resident a
    /// multiprocessor), the count nearest one wave of `blocksPerMultiprocessor` a multiprocessor, so that
    /// no second, mostly empty wave follows.
    func decodeSplits(batch: Int, kvHeads: Int, maxContextLength: Int, headDim: Int, blocksPerMultiprocessor: Int = 4, oneWave: Bool = false) -> (splits: Int, keys: Int) {
        let wanted = blocksPerMultiprocessor * context.multiprocessorCount
        let perSplit = max(batch * kvHeads, 1)
        let target = oneWave ? Int((Double(wanted) / Double(perSplit)).rounded()) : (wanted + perSplit - 1) / perSplit
        let splits = max(1, min(target, (maxContextLength + 63) / 64))
        let step = DecodeAttentionKernels.keysPerStep(headDim: headDim)
        let keys = ((maxContextLength + splits - 1) / splits + step - 1) / step * step
        return ((maxContextLength + keys - 1) / keys, keys)
    }

    /// Deterministic decode: each sequence's context gathered on the device into packed rows, then the
    /// training/prefill flash kernel with one query row per sequence, so a row's result is bit-identical to
    /// the trainer's forward over the same tokens.
    func gatherDecodeAttention(
        query: Tensor, keyCache: Tensor, valueCache: Tensor, blockTable: Tensor, contextLengths: Tensor,
        blockSize: Int, maxContextLength: Int, scale: Float
    ) throws -> Tensor {
        let (batch, heads, headDim, kvHeads) = (query.shape[0], query.shape[1], query.shape[2], keyCache.shape[1])
        let query = try activation(query, "pagedDecodeAttention")
        let table = try requireInt32(blockTable, "pagedDecodeAttention", "block table")
        let lengths = try requireInt32(contextLengths, "pagedDecodeAttention", "context lengths")
        let output = try allocate([batch, heads, headDim], computeDType)
        guard batch > 0 else { return output }
        let statics = try decodeLayout(batch: batch)
        let keyOffsets = try allocate([batch + 1], .i32)
        var offsets = KernelArguments()
        offsets.add(address(lengths)); offsets.add(int: batch); offsets.add(address(keyOffsets))
        try launch(.decode, "kite_decode_key_offsets", LaunchShape(grid: 1, block: 32), offsets)
        let rows = batch * maxContextLength
        let keys = try allocate([rows, kvHeads, headDim], .bf16), values = try allocate([rows, kvHeads, headDim], .bf16)
        var gather = KernelArguments()
        gather.add(address(keyCache)); gather.add(address(valueCache)); gather.add(address(table)); gather.add(int: blockTable.shape[1])
        gather.add(address(lengths)); gather.add(address(keyOffsets)); gather.add(int: blockSize); gather.add(int: maxContextLength)
        gather.add(int64: kvHeads * headDim * 2); gather.add(address(keys)); gather.add(address(values)); gather.add(int: batch)
        try launch(.decode, "kite_decode_gather", LaunchShape(grid: (rows + 7) / 8, block: 256), gather)
        let logSumExp = try allocate([batch, heads], .f32)
        var arguments = KernelArguments()
        arguments.add(address(query)); arguments.add(address(keys)); arguments.add(address(values))
        arguments.add(address(output)); arguments.add(address(logSumExp))
        arguments.add(address(statics.queryOffsets)); arguments.add(address(keyOffsets)); arguments.add(address(statics.tiles))
        arguments.add(int: heads); arguments.add(int: kvHeads)
        arguments.add(scale * 1.4426950408889634); arguments.add(Int32(1))
        try launch(.flash, "kite_flash_fwd_d\(headDim)",
                   LaunchShape(grid: batch * heads, block: FlashAttentionKernels.forwardThreads,
                               sharedBytes: FlashAttentionKernels.forwardSharedBytes(headDim: headDim)), arguments)
        return output
    }

    /// Query offsets 0, 1, ..., B and one forward tile (s, 0) per sequence, uploaded once per batch size
    /// (outside any capture: the first use of a size must come from an eager step).
    func decodeLayout(batch: Int) throws -> (queryOffsets: Tensor, tiles: Tensor) {
        if let cached = decodeLayouts.withLock({ $0[batch] }) { return cached }
        guard !isCapturing else {
            throw CUDAError.unsupported("pagedDecodeAttention: the decode layout of batch \(batch) must be built by an eager step before a capture")
        }
        let entry = (try upload(Tensor(int32: (0...batch).map(Int32.init))),
                     try upload(Tensor(int32: (0..<batch).flatMap { [Int32($0), 0] })))
        decodeLayouts.withLock { $0[batch] = entry }
        return entry
    }
}
