import KiteTensor

/// Attention over packed sequences.
///
/// bf16 mode with head size 64 or 128 runs the tensor-core kernels (`FlashAttentionKernels`); everything
/// else the CUDA-core kernels (`AttentionKernels`). `pagedAttention` (CUDABackend+PagedCache.swift) gathers
/// cached keys and values and calls these; a decode kernel that reads cache blocks in place (block tables,
/// one query row per sequence, split-K over pages) is the engine issue's work and goes next to them.
extension CUDABackend {
    struct AttentionShape {
        var queryHeads: Int
        var keyHeads: Int
        var headDim: Int
        var valueDim: Int
    }

    func attentionShape(query: Tensor, key: Tensor, value: Tensor, layout: AttentionLayout, operation: String) throws -> AttentionShape {
        for (name, x) in [("query", query), ("key", key), ("value", value)] where x.rank != 3 {
            throw KiteTensorError.shapeMismatch(operation: operation, detail: "\(name) has shape \(x.shape), expected [tokens, heads, dim]")
        }
        let shape = AttentionShape(queryHeads: query.shape[1], keyHeads: key.shape[1], headDim: query.shape[2], valueDim: value.shape[2])
        guard key.shape[2] == shape.headDim, value.shape[1] == shape.keyHeads, key.shape[0] == value.shape[0],
            shape.keyHeads > 0, shape.queryHeads % shape.keyHeads == 0
        else {
            throw KiteTensorError.shapeMismatch(operation: operation, detail: "query \(query.shape), key \(key.shape), value \(value.shape)")
        }
        guard query.shape[0] == layout.queries.totalLength, key.shape[0] == layout.keys.totalLength else {
            throw KiteTensorError.shapeMismatch(operation: operation, detail: "\(query.shape[0]) query rows and \(key.shape[0]) key rows for a layout of \(layout.queries.totalLength) and \(layout.keys.totalLength)")
        }
        // The forward's wide CUDA-core kernel takes up to 576 (latent attention's 512 + 64 rows); backward 256.
        let limit = operation == "attention" ? AttentionKernels.wideHeadLimit : AttentionKernels.headLimit
        guard shape.headDim <= limit, shape.valueDim <= limit else {
            throw CUDAError.unsupported("\(operation): head sizes above \(limit) (\(shape.headDim), \(shape.valueDim))")
        }
        return shape
    }

    /// Whether the tensor-core kernels serve this shape.
    func usesFlashKernels(_ shape: AttentionShape) -> Bool {
        precision == .bf16 && shape.headDim == shape.valueDim && FlashAttentionKernels.headDims.contains(shape.headDim)
            && environment("KITE_CUDA_FLASH") != "0"
    }

    /// Offsets and tile schedules of a layout on the device.
    func layoutEntry(_ layout: AttentionLayout) throws -> LayoutCache.Entry {
        try layouts.entry(for: layout) {
            var forward: [(work: Int, sequence: Int32, start: Int32)] = []
            var backward: [(work: Int, sequence: Int32, start: Int32)] = []
            for s in 0..<layout.queries.count {
                let nq = layout.queries.range(s).count, nk = layout.keys.range(s).count
                for q0 in stride(from: 0, to: nq, by: FlashAttentionKernels.forwardRows) {
                    let visible = layout.causal ? min(nk, nk - nq + q0 + FlashAttentionKernels.forwardRows) : nk
                    forward.append((visible, Int32(s), Int32(q0)))
                }
                for k0 in stride(from: 0, to: nk, by: FlashAttentionKernels.backwardKeys) {
                    let first = layout.causal ? max(0, k0 - (nk - nq)) : 0
                    backward.append((nq - first, Int32(s), Int32(k0)))
                }
            }
            // Longest tiles first, so the tail of the grid is short ones.
            forward.sort { $0.work > $1.work }
            backward.sort { $0.work > $1.work }
            func table(_ items: [(work: Int, sequence: Int32, start: Int32)]) throws -> Tensor {
                try upload(Tensor(int32: items.isEmpty ? [0, 0] : items.flatMap { [$0.sequence, $0.start] }))
            }
            return LayoutCache.Entry(
                queryOffsets: try upload(Tensor(int32: layout.queries.cuSeqlens)),
                keyOffsets: try upload(Tensor(int32: layout.keys.cuSeqlens)),
                forwardTiles: try table(forward), forwardTileCount: forward.count,
                backwardTiles: try table(backward), backwardTileCount: backward.count)
        }
    }

    public func attention(query: Tensor, key: Tensor, value: Tensor, layout: AttentionLayout, scale: Float) throws -> (output: Tensor, logSumExp: Tensor) {
        try profiler.measure(.attention) {
            let shape = try attentionShape(query: query, key: key, value: value, layout: layout, operation: "attention")
            let query = try activation(query, "attention"), key = try activation(key, "attention"), value = try activation(value, "attention")
            let rows = query.shape[0]
            let output = try allocate([rows, shape.queryHeads, shape.valueDim], computeDType)
            let logSumExp = try allocate([rows, shape.queryHeads], .f32)
            guard rows > 0 else { return (output, logSumExp) }
            let entry = try layoutEntry(layout)
            var arguments = KernelArguments()
            if usesFlashKernels(shape) {
                arguments.add(address(query)); arguments.add(address(key)); arguments.add(address(value))
                arguments.add(address(output)); arguments.add(address(logSumExp))
                arguments.add(address(entry.queryOffsets)); arguments.add(address(entry.keyOffsets)); arguments.add(address(entry.forwardTiles))
                arguments.add(int: shape.queryHeads); arguments.add(int: shape.keyHeads)
                arguments.add(scale * 1.4426950408889634); arguments.add(Int32(layout.causal ? 1 : 0))
                let shared = FlashAttentionKernels.forwardSharedBytes(headDim: shape.headDim)
                try launch(.flash, "kite_flash_fwd_d\(shape.headDim)",
                           LaunchShape(grid: entry.forwardTileCount * shape.queryHeads, block: FlashAttentionKernels.forwardThreads, sharedBytes: shared),
                           arguments)
            } else {
                let code = try dtypeCode(computeDType, "attention")
                arguments.add(address(query)); arguments.add(address(key)); arguments.add(address(value)); arguments.add(code)
                arguments.add(address(output)); arguments.add(code); arguments.add(address(logSumExp))
                arguments.add(address(entry.queryOffsets)); arguments.add(address(entry.keyOffsets)); arguments.add(int: layout.queries.count)
                arguments.add(int: rows); arguments.add(int: shape.queryHeads); arguments.add(int: shape.keyHeads)
                arguments.add(int: shape.headDim); arguments.add(int: shape.valueDim)
                arguments.add(scale); arguments.add(Int32(layout.causal ? 1 : 0))
                let wide = max(shape.headDim, shape.valueDim) > AttentionKernels.headLimit
                try launch(.attention, wide ? "kite_attn_fwd_simt_wide" : "kite_attn_fwd_simt", LaunchShape(grid: (rows * shape.queryHeads + 7) / 8, block: 256), arguments)
            }
            return (output, logSumExp)
        }
    }

    public func attentionBackward(
        dOutput: Tensor, query: Tensor, key: Tensor, value: Tensor, output: Tensor, logSumExp: Tensor,
        layout: AttentionLayout, scale: Float
    ) throws -> (dQuery: Tensor, dKey: Tensor, dValue: Tensor) {
        try profiler.measure(.attention) {
            let shape = try attentionShape(query: query, key: key, value: value, layout: layout, operation: "attentionBackward")
            let rows = query.shape[0], keyRows = key.shape[0]
            try requireShape(dOutput, [rows, shape.queryHeads, shape.valueDim], "attentionBackward", "dOutput")
            try requireShape(output, [rows, shape.queryHeads, shape.valueDim], "attentionBackward", "output")
            try requireShape(logSumExp, [rows, shape.queryHeads], "attentionBackward", "logSumExp")
            let query = try activation(query, "attentionBackward"), key = try activation(key, "attentionBackward")
            let value = try activation(value, "attentionBackward"), dOutput = try activation(dOutput, "attentionBackward")
            let output = try activation(output, "attentionBackward"), logSumExp = try float32(logSumExp, "attentionBackward")
            let dQuery = try allocate(query.shape, computeDType)
            let dKey = try allocate(key.shape, computeDType), dValue = try allocate(value.shape, computeDType)
            guard rows > 0 || keyRows > 0 else { return (dQuery, dKey, dValue) }
            let entry = try layoutEntry(layout)
            let code = try dtypeCode(computeDType, "attentionBackward")

            // D[row, head] = <dO, O>, the softmax-backward correction shared by every key.
            let rowDot = try allocate([rows, shape.queryHeads], .f32)
            if rows > 0 {
                var dot = KernelArguments()
                dot.add(address(dOutput)); dot.add(code); dot.add(address(output)); dot.add(code)
                dot.add(address(rowDot)); dot.add(int64: rows * shape.queryHeads); dot.add(int: shape.valueDim)
                try launch(.attention, "kite_attn_rowdot", LaunchShape(grid: (rows * shape.queryHeads + 7) / 8, block: 256), dot)
            }

            if usesFlashKernels(shape) {
                var kv = KernelArguments()
                kv.add(address(query)); kv.add(address(key)); kv.add(address(value)); kv.add(address(dOutput))
                kv.add(address(logSumExp)); kv.add(address(rowDot)); kv.add(address(dKey)); kv.add(address(dValue))
                kv.add(address(entry.queryOffsets)); kv.add(address(entry.keyOffsets))
                kv.add(address(entry.backwardTiles))
                kv.add(int: shape.queryHeads); kv.add(int: shape.keyHeads)
                kv.add(scale); kv.add(scale * 1.4426950408889634); kv.add(Int32(layout.causal ? 1 : 0))
                let (keys, tiles) = (FlashAttentionKernels.backwardKeys, entry.backwardTileCount)
                // dK/dV and dQ are independent: the dQ kernel runs on the side stream, so each fills the other's tail.
                let overlap = environment("KITE_FLASH_OVERLAP") != "0"
                if overlap { try context.fork() }
                if tiles > 0 {
                    try launch(.flash, "kite_flash_bwd_dkv_d\(shape.headDim)_k\(keys)",
                               LaunchShape(grid: tiles * shape.keyHeads, block: keys * 2,
                                           sharedBytes: FlashAttentionKernels.keyValueGradientSharedBytes(headDim: shape.headDim, keys: keys)),
                               kv)
                }
                var q = KernelArguments()
                q.add(address(query)); q.add(address(key)); q.add(address(value)); q.add(address(dOutput))
                q.add(address(logSumExp)); q.add(address(rowDot)); q.add(address(dQuery))
                q.add(address(entry.queryOffsets)); q.add(address(entry.keyOffsets)); q.add(address(entry.forwardTiles))
                q.add(int: shape.queryHeads); q.add(int: shape.keyHeads)
                q.add(scale); q.add(scale * 1.4426950408889634); q.add(Int32(layout.causal ? 1 : 0))
                if rows > 0 {
                    try launch(.flash, "kite_flash_bwd_dq_d\(shape.headDim)",
                               LaunchShape(grid: entry.forwardTileCount * shape.queryHeads, block: FlashAttentionKernels.forwardThreads,
                                           sharedBytes: FlashAttentionKernels.queryGradientSharedBytes(headDim: shape.headDim)),
                               q, side: overlap)
                }
                if overlap { try context.join() }
                return (dQuery, dKey, dValue)
            }

            var common = KernelArguments()
            common.add(address(query)); common.add(address(key)); common.add(address(value)); common.add(address(dOutput)); common.add(code)
            common.add(address(logSumExp)); common.add(address(rowDot))
            var dq = common
            dq.add(address(dQuery)); dq.add(code)
            dq.add(address(entry.queryOffsets)); dq.add(address(entry.keyOffsets)); dq.add(int: layout.queries.count)
            dq.add(int: rows); dq.add(int: shape.queryHeads); dq.add(int: shape.keyHeads)
            dq.add(int: shape.headDim); dq.add(int: shape.valueDim); dq.add(scale); dq.add(Int32(layout.causal ? 1 : 0))
            if rows > 0 {
                try launch(.attention, "kite_attn_bwd_dq_simt", LaunchShape(grid: (rows * shape.queryHeads + 7) / 8, block: 256), dq)
            }
            var dkv = common
            dkv.add(address(dKey)); dkv.add(address(dValue)); dkv.add(code)
            dkv.add(address(entry.queryOffsets)); dkv.add(address(entry.keyOffsets)); dkv.add(int: layout.queries.count)
            dkv.add(int: keyRows); dkv.add(int: shape.queryHeads); dkv.add(int: shape.keyHeads)
            dkv.add(int: shape.headDim); dkv.add(int: shape.valueDim); dkv.add(scale); dkv.add(Int32(layout.causal ? 1 : 0))
            if keyRows > 0 {
                try launch(.attention, "kite_attn_bwd_dkv_simt", LaunchShape(grid: (keyRows * shape.keyHeads + 7) / 8, block: 256), dkv)
            }
            return (dQuery, dKey, dValue)
        }
    }
}
