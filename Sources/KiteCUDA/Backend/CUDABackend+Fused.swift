import KiteTensor

/// The fused inference steps as single kernels (`kite_add_rmsnorm`, `kite_swiglu_packed`,
/// `kite_rotate_and_cache`). Each one's arithmetic is that of the separate kernels it replaces, through the
/// same device helpers with every rounding explicit and the same order of sums, and each rounds its
/// intermediates to the activation dtype where the separate kernels store them; so the two give the same
/// bits, and deterministic mode (engine log-probs equal to the trainer's, which runs the separate kernels)
/// holds with them. Shapes a kernel does not cover run the composed operations. `KITE_FUSED_INFERENCE=0`
/// runs the composed operations always (to measure what the fusion gains).
extension CUDABackend {
    /// Whether the fused kernels run; `KITE_FUSED_INFERENCE=0` turns them off.
    public var fusesInference: Bool { environment("KITE_FUSED_INFERENCE") != "0" }

    public func addRMSNorm(_ x: Tensor, into target: Tensor, weight: Tensor, epsilon: Float) throws -> Tensor {
        guard fusesInference, x.shape == target.shape, x.dtype.isFloatingPoint, target.dtype == computeDType, let width = target.shape.last,
            width > 0, weight.shape == [width], weight.dtype == .f32, x.device == device, weight.device == device
        else {
            return try composedAddRMSNorm(x, into: target, weight: weight, epsilon: epsilon)
        }
        // The norm's order of sums follows kite_rmsnorm's choice for (target, weight, output); x must then
        // allow the same 4-wide reads (it always does for activations; otherwise the composed operations).
        let normVectorized = rowVectorizable(width, target, weight)
        guard !normVectorized || rowVectorizable(width, x) else {
            return try composedAddRMSNorm(x, into: target, weight: weight, epsilon: epsilon)
        }
        return try profiler.measure(.other) {
            try inPlaceTarget(target, "addRMSNorm")
            let rows = target.count / width
            let output = try allocate(target.shape, computeDType)
            guard rows > 0 else { return output }
            var arguments = KernelArguments()
            arguments.add(address(x)); arguments.add(try dtypeCode(x.dtype, "addRMSNorm"))
            arguments.add(address(target)); arguments.add(try dtypeCode(target.dtype, "addRMSNorm"))
            arguments.add(address(weight))
            arguments.add(address(output)); arguments.add(try dtypeCode(output.dtype, "addRMSNorm"))
            let vectorized = normVectorized && rowVectorizable(width, output)
            // bf16 rows of up to 2048 are held in registers (one round trip, all loads in flight), two rows a
            // block so that a decode step's few rows still spread over the multiprocessors.
            if vectorized, [x, target, output].allSatisfy({ $0.dtype == .bf16 }),
                let pieces = NormKernels.addRMSNormRegisterPieces.first(where: { 128 * $0 >= width })
            {
                var registers = KernelArguments()
                registers.add(address(x)); registers.add(address(target)); registers.add(address(weight)); registers.add(address(output))
                registers.add(int64: rows); registers.add(int: width); registers.add(epsilon)
                try launch(.norm, "kite_add_rmsnorm_bf16_r\(pieces)", LaunchShape(grid: (rows + 1) / 2, block: 64), registers)
                return output
            }
            arguments.add(int64: rows); arguments.add(int: width); arguments.add(epsilon)
            arguments.add(Int32(vectorized ? 1 : 0))
            try launch(.norm, "kite_add_rmsnorm", LaunchShape(grid: (rows + 7) / 8, block: 256), arguments)
            return output
        }
    }

    public func swiglu(packed: Tensor) throws -> Tensor {
        guard fusesInference, let columns = packed.shape.last, columns > 0, columns % 2 == 0, packed.dtype.isFloatingPoint else {
            return try composedSwiglu(packed: packed)
        }
        return try profiler.measure(.other) {
            let packed = try activation(packed, "swiglu(packed:)")
            let width = columns / 2, rows = packed.count / columns
            var shape = packed.shape
            shape[shape.count - 1] = width
            let output = try allocate(shape, computeDType)
            guard rows > 0 else { return output }
            let vector = width % 4 == 0 && address(packed) % 16 == 0 && address(output) % 16 == 0
            var arguments = KernelArguments()
            arguments.add(address(packed)); arguments.add(try dtypeCode(packed.dtype, "swiglu(packed:)"))
            arguments.add(address(output)); arguments.add(try dtypeCode(output.dtype, "swiglu(packed:)"))
            arguments.add(int64: rows); arguments.add(int: width); arguments.add(Int32(vector ? 1 : 0))
            try launch(.elementwise, "kite_swiglu_packed", elementwiseShape(rows * width, vector: vector), arguments)
            return output
        }
    }

    public func rotateAndCache(_ projections: PackedAttentionProjections, keyCache: Tensor, valueCache: Tensor, slotIndices: Tensor) throws -> Tensor {
        try projections.validate("rotateAndCache")
        let (tokens, heads, kvHeads, headDim) = (projections.tokens, projections.queryHeads, projections.keyValueHeads, projections.headDim)
        guard keyCache.rank == 3, keyCache.shape[1] == kvHeads, keyCache.shape[2] == headDim, valueCache.shape == keyCache.shape,
            slotIndices.shape == [tokens]
        else {
            throw KiteTensorError.shapeMismatch(operation: "rotateAndCache", detail: "caches \(keyCache.shape) / \(valueCache.shape) and slots \(slotIndices.shape) for \(tokens) tokens of \(kvHeads) key heads of \(headDim)")
        }
        let norms = [projections.queryNorm, projections.keyNorm].compactMap { $0 }
        // kite_rmsnorm reads rows 4-wide when the width allows and its weight is aligned; the kernel must sum in
        // the same order, so both norms have to agree on it.
        let normVectorized = headDim % 4 == 0 && norms.allSatisfy { $0.device == device && address($0) % 16 == 0 }
        guard fusesInference, headDim <= NormKernels.rotateMaxHeadDim, projections.projections.dtype.isFloatingPoint,
            projections.projections.device == device, address(projections.projections) % 16 == 0,
            norms.allSatisfy({ $0.dtype == .f32 && $0.device == device }), headDim % 4 != 0 || normVectorized,
            keyCache.dtype == valueCache.dtype
        else {
            return try composedRotateAndCache(projections, keyCache: keyCache, valueCache: valueCache, slotIndices: slotIndices)
        }
        return try profiler.measure(.other) {
            try inPlaceTarget(keyCache, "rotateAndCache")
            try inPlaceTarget(valueCache, "rotateAndCache")
            let packed = try activation(projections.projections, "rotateAndCache")
            let cos = try float32(projections.cos, "rotateAndCache"), sin = try float32(projections.sin, "rotateAndCache")
            let slots = try requireInt32(slotIndices, "rotateAndCache", "slots")
            let query = try allocate([tokens, heads, headDim], computeDType)
            guard tokens > 0 else { return query }
            let items = tokens * (heads + 2 * kvHeads)
            var arguments = KernelArguments()
            arguments.add(address(packed)); arguments.add(try dtypeCode(packed.dtype, "rotateAndCache"))
            arguments.add(projections.queryNorm.map(address) ?? 0); arguments.add(projections.keyNorm.map(address) ?? 0)
            arguments.add(projections.epsilon); arguments.add(address(cos)); arguments.add(address(sin))
            arguments.add(int64: tokens); arguments.add(int: heads); arguments.add(int: kvHeads)
            // Head size 128, rows 4-wide: the register kernel (one load a lane, RoPE's partner by a shuffle).
            if headDim == 128, norms.isEmpty || normVectorized, address(cos) % 16 == 0, address(sin) % 16 == 0,
                [query, keyCache, valueCache].allSatisfy({ address($0) % 16 == 0 })
            {
                arguments.add(address(query)); arguments.add(address(keyCache)); arguments.add(address(valueCache))
                arguments.add(try dtypeCode(keyCache.dtype, "rotateAndCache")); arguments.add(address(slots))
                try launch(.norm, "kite_rotate_and_cache_d128", LaunchShape(grid: (items + 7) / 8, block: 256), arguments)
                return query
            }
            arguments.add(int: headDim)
            arguments.add(Int32(normVectorized ? 1 : 0))
            arguments.add(address(query)); arguments.add(address(keyCache)); arguments.add(address(valueCache))
            arguments.add(try dtypeCode(keyCache.dtype, "rotateAndCache")); arguments.add(address(slots))
            try launch(.norm, "kite_rotate_and_cache", LaunchShape(grid: (items + 7) / 8, block: 256), arguments)
            return query
        }
    }
}
