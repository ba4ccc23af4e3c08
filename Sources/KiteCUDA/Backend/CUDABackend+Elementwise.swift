import KiteTensor

extension CUDABackend {
    public func add(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try profiler.measure(.other) {
            guard a.shape == b.shape else { throw KiteTensorError.shapeMismatch(operation: "add", detail: "\(a.shape) vs \(b.shape)") }
            let a = try onDevice(a, "add"), b = try onDevice(b, "add")
            let output = try allocate(a.shape, a.dtype == b.dtype ? a.dtype : computeDType)
            var arguments = KernelArguments()
            arguments.add(address(a)); arguments.add(try dtypeCode(a.dtype, "add"))
            arguments.add(address(b)); arguments.add(try dtypeCode(b.dtype, "add"))
            arguments.add(address(output)); arguments.add(try dtypeCode(output.dtype, "add"))
            arguments.add(int64: a.count)
            let vector = vectorizable(a, b, output)
            arguments.add(Int32(vector ? 1 : 0))
            try launch(.elementwise, "kite_add", elementwiseShape(a.count, vector: vector), arguments)
            return output
        }
    }

    public func accumulate(_ x: Tensor, into target: Tensor, scale: Float) throws {
        try profiler.measure(.other) {
            guard x.shape == target.shape else {
                throw KiteTensorError.shapeMismatch(operation: "accumulate", detail: "\(x.shape) into \(target.shape)")
            }
            try inPlaceTarget(target, "accumulate")
            let x = try onDevice(x, "accumulate")
            var arguments = KernelArguments()
            arguments.add(address(x)); arguments.add(try dtypeCode(x.dtype, "accumulate"))
            arguments.add(address(target)); arguments.add(try dtypeCode(target.dtype, "accumulate"))
            arguments.add(scale)
            arguments.add(int64: x.count)
            let vector = vectorizable(x, target)
            arguments.add(Int32(vector ? 1 : 0))
            try launch(.elementwise, "kite_axpy", elementwiseShape(x.count, vector: vector), arguments)
        }
    }

    public func scale(_ x: Tensor, by factor: Float) throws {
        try profiler.measure(.other) {
            try inPlaceTarget(x, "scale")
            try scaleInPlace(x, by: factor)
        }
    }

    func scaleInPlace(_ x: Tensor, by factor: Float) throws {
        var arguments = KernelArguments()
        arguments.add(address(x)); arguments.add(try dtypeCode(x.dtype, "scale"))
        arguments.add(factor)
        arguments.add(int64: x.count)
        let vector = vectorizable(x)
        arguments.add(Int32(vector ? 1 : 0))
        try launch(.elementwise, "kite_scale", elementwiseShape(x.count, vector: vector), arguments)
    }

    public func fill(_ x: Tensor, with value: Float) throws {
        try profiler.measure(.other) {
            try inPlaceTarget(x, "fill")
            if value == 0 {
                try context.makeCurrent()
                try context.driver.check(context.driver.cuMemsetD8Async(address(x), 0, x.byteCount, context.stream.handle), "cuMemsetD8Async")
                return
            }
            var arguments = KernelArguments()
            arguments.add(address(x)); arguments.add(try dtypeCode(x.dtype, "fill"))
            arguments.add(value)
            arguments.add(int64: x.count)
            let vector = vectorizable(x)
            arguments.add(Int32(vector ? 1 : 0))
            try launch(.elementwise, "kite_fill", elementwiseShape(x.count, vector: vector), arguments)
        }
    }

    public func sumOfSquares(_ x: Tensor) throws -> Double {
        try profiler.measure(.other) {
            let x = try onDevice(x, "sumOfSquares")
            let blocks = min(max(1, (x.count + 255) / 256), context.multiprocessorCount * 2)
            let partial = try allocate([blocks + 1], .i64)
            var arguments = KernelArguments()
            arguments.add(address(x)); arguments.add(try dtypeCode(x.dtype, "sumOfSquares"))
            arguments.add(int64: x.count)
            arguments.add(address(partial))
            try launch(.elementwise, "kite_sumsq_partial", LaunchShape(grid: blocks, block: 256), arguments)
            var finish = KernelArguments()
            finish.add(address(partial)); finish.add(int: blocks); finish.add(address(partial) + CUDevicePointer(blocks * 8))
            try launch(.elementwise, "kite_sum_doubles", LaunchShape(grid: 1, block: 256), finish)
            var result = 0.0
            try context.driver.check(
                context.driver.cuMemcpyDtoHAsync(&result, address(partial) + CUDevicePointer(blocks * 8), 8, context.stream.handle),
                "cuMemcpyDtoHAsync(sum of squares)")
            try context.stream.synchronize()
            return result
        }
    }

    public func addBias(_ x: Tensor, bias: Tensor) throws {
        try profiler.measure(.other) {
            guard bias.rank == 1, x.shape.last == bias.count else {
                throw KiteTensorError.shapeMismatch(operation: "addBias", detail: "input \(x.shape) with bias \(bias.shape)")
            }
            try inPlaceTarget(x, "addBias")
            let bias = try onDevice(bias, "addBias")
            var arguments = KernelArguments()
            arguments.add(address(x)); arguments.add(try dtypeCode(x.dtype, "addBias"))
            arguments.add(address(bias)); arguments.add(try dtypeCode(bias.dtype, "addBias"))
            arguments.add(int64: x.count / max(bias.count, 1)); arguments.add(int: bias.count)
            try launch(.elementwise, "kite_add_bias", elementwiseShape(x.count, vector: false), arguments)
        }
    }

    public func accumulateColumnSums(_ x: Tensor, into target: Tensor) throws {
        try profiler.measure(.other) {
            guard target.rank == 1, x.shape.last == target.count else {
                throw KiteTensorError.shapeMismatch(operation: "accumulateColumnSums", detail: "input \(x.shape) into \(target.shape)")
            }
            try inPlaceTarget(target, "accumulateColumnSums")
            let x = try onDevice(x, "accumulateColumnSums")
            try columnSums(x, times: nil, rowScale: nil, into: target)
        }
    }

    /// target[c] += sum over rows r of a[r, c] * b[r, c] * rowScale[r] (b and rowScale optional), in two
    /// deterministic passes: fixed row splits into an fp32 scratch, then one thread per column.
    func columnSums(_ a: Tensor, times b: Tensor?, rowScale: Tensor?, into target: Tensor) throws {
        let columns = target.count
        guard columns > 0 else { return }
        let rows = a.count / columns
        let columnBlocks = (columns + 31) / 32
        let splits = max(1, min((rows + 31) / 32, max(1, 2048 / columnBlocks)))
        let rowsPerSplit = (rows + splits - 1) / max(splits, 1)
        let partial = try allocate([splits, columns], .f32)
        var arguments = KernelArguments()
        arguments.add(address(a)); arguments.add(try dtypeCode(a.dtype, "columnSums"))
        arguments.add(b.map(address) ?? 0); arguments.add(try b.map { try dtypeCode($0.dtype, "columnSums") } ?? 0)
        arguments.add(rowScale.map(address) ?? 0)
        arguments.add(int64: rows); arguments.add(int: columns); arguments.add(int64: max(rowsPerSplit, 1))
        arguments.add(address(partial))
        try launch(.elementwise, "kite_colsum_partial", LaunchShape(grid: (columnBlocks, splits, 1), block: (32, 8, 1)), arguments)
        try reduceColumns(partial, splits: splits, into: target)
    }

    /// target[c] += sum over rows of partial [splits, columns], in a fixed order.
    func reduceColumns(_ partial: Tensor, splits: Int, into target: Tensor) throws {
        let columns = target.count
        var arguments = KernelArguments()
        arguments.add(address(partial)); arguments.add(int: splits); arguments.add(int: columns)
        arguments.add(address(target)); arguments.add(try dtypeCode(target.dtype, "columnSums"))
        try launch(.elementwise, "kite_colsum_reduce", LaunchShape(grid: ((columns + 31) / 32, 1, 1), block: (32, 8, 1)), arguments)
    }

    // MARK: Feed-forward

    public func swiglu(gate: Tensor, up: Tensor) throws -> Tensor {
        try profiler.measure(.other) {
            guard gate.shape == up.shape else { throw KiteTensorError.shapeMismatch(operation: "swiglu", detail: "\(gate.shape) vs \(up.shape)") }
            let gate = try activation(gate, "swiglu"), up = try activation(up, "swiglu")
            let output = try allocate(gate.shape, computeDType)
            var arguments = KernelArguments()
            arguments.add(address(gate)); arguments.add(address(up)); arguments.add(try dtypeCode(computeDType, "swiglu"))
            arguments.add(address(output)); arguments.add(try dtypeCode(computeDType, "swiglu"))
            arguments.add(int64: gate.count)
            let vector = vectorizable(gate, up, output)
            arguments.add(Int32(vector ? 1 : 0))
            try launch(.elementwise, "kite_swiglu", elementwiseShape(gate.count, vector: vector), arguments)
            return output
        }
    }

    public func swigluBackward(dOutput: Tensor, gate: Tensor, up: Tensor) throws -> (dGate: Tensor, dUp: Tensor) {
        try profiler.measure(.other) {
            guard gate.shape == up.shape, dOutput.shape == gate.shape else {
                throw KiteTensorError.shapeMismatch(operation: "swigluBackward", detail: "dOutput \(dOutput.shape), gate \(gate.shape), up \(up.shape)")
            }
            let dOutput = try activation(dOutput, "swigluBackward")
            let gate = try activation(gate, "swigluBackward"), up = try activation(up, "swigluBackward")
            let dGate = try allocate(gate.shape, computeDType), dUp = try allocate(gate.shape, computeDType)
            let code = try dtypeCode(computeDType, "swigluBackward")
            var arguments = KernelArguments()
            arguments.add(address(dOutput)); arguments.add(code)
            arguments.add(address(gate)); arguments.add(address(up)); arguments.add(code)
            arguments.add(address(dGate)); arguments.add(address(dUp)); arguments.add(code)
            arguments.add(int64: gate.count)
            let vector = vectorizable(dOutput, gate, up, dGate, dUp)
            arguments.add(Int32(vector ? 1 : 0))
            try launch(.elementwise, "kite_swiglu_bwd", elementwiseShape(gate.count, vector: vector), arguments)
            return (dGate, dUp)
        }
    }

    // MARK: Rotary position embedding

    public func rope(_ x: Tensor, cos: Tensor, sin: Tensor, inverse: Bool) throws -> Tensor {
        try profiler.measure(.other) {
            guard x.rank == 3, x.shape[2] % 2 == 0 else {
                throw KiteTensorError.shapeMismatch(operation: "rope", detail: "input \(x.shape), expected [tokens, heads, even head dim]")
            }
            let (tokens, heads, dim) = (x.shape[0], x.shape[1], x.shape[2])
            try requireShape(cos, [tokens, dim / 2], "rope", "cos")
            try requireShape(sin, [tokens, dim / 2], "rope", "sin")
            let x = try activation(x, "rope")
            let cos = try float32(cos, "rope"), sin = try float32(sin, "rope")
            let output = try allocate(x.shape, computeDType)
            var arguments = KernelArguments()
            arguments.add(address(x)); arguments.add(try dtypeCode(x.dtype, "rope"))
            arguments.add(address(cos)); arguments.add(address(sin))
            arguments.add(address(output)); arguments.add(try dtypeCode(output.dtype, "rope"))
            arguments.add(int64: tokens); arguments.add(int: heads); arguments.add(int: dim)
            arguments.add(Float(inverse ? -1 : 1))
            let vector = (dim / 2) % 4 == 0 && [x, cos, sin, output].allSatisfy { address($0) % 16 == 0 }
            arguments.add(Int32(vector ? 1 : 0))
            try launch(.elementwise, "kite_rope", elementwiseShape(tokens * heads * dim / 2, vector: vector), arguments)
            return output
        }
    }

    // MARK: Embedding

    public func embedding(ids: Tensor, table: Tensor) throws -> Tensor {
        try profiler.measure(.other) {
            guard ids.dtype == .i32, ids.rank == 1, table.rank == 2 else {
                throw KiteTensorError.shapeMismatch(operation: "embedding", detail: "ids \(ids) and table \(table); expected i32 [T] and [V, D]")
            }
            let ids = try onDevice(ids, "embedding"), table = try onDevice(table, "embedding")
            let (vocabulary, width) = (table.shape[0], table.shape[1])
            let output = try allocate([ids.count, width], computeDType)
            let flag = try resetErrorFlag()
            var arguments = KernelArguments()
            arguments.add(address(ids)); arguments.add(address(table)); arguments.add(try dtypeCode(table.dtype, "embedding"))
            arguments.add(address(output)); arguments.add(try dtypeCode(output.dtype, "embedding"))
            arguments.add(int64: ids.count); arguments.add(int: width); arguments.add(int: vocabulary); arguments.add(flag)
            try launch(.elementwise, "kite_embedding", elementwiseShape(ids.count * width, vector: false), arguments)
            if isCapturing { return output }
            if let position = try readErrorFlag() {
                throw KiteTensorError.indexOutOfRange(operation: "embedding", index: try int32Element(ids, position), limit: vocabulary, position: position)
            }
            return output
        }
    }

    public func embeddingBackward(dOutput: Tensor, ids: Tensor, tableGradient: Tensor) throws {
        try profiler.measure(.other) {
            guard ids.dtype == .i32, tableGradient.rank == 2, dOutput.shape == [ids.count, tableGradient.shape[1]] else {
                throw KiteTensorError.shapeMismatch(operation: "embeddingBackward", detail: "dOutput \(dOutput.shape), ids \(ids.shape), table gradient \(tableGradient.shape)")
            }
            guard tableGradient.dtype == .f32 else {
                throw KiteTensorError.unsupportedDType(operation: "embeddingBackward", dtype: tableGradient.dtype, expected: "an f32 table gradient")
            }
            try inPlaceTarget(tableGradient, "embeddingBackward")
            let ids = try onDevice(ids, "embeddingBackward"), dOutput = try onDevice(dOutput, "embeddingBackward")
            let (vocabulary, width) = (tableGradient.shape[0], tableGradient.shape[1])
            let flag = try resetErrorFlag()
            var arguments = KernelArguments()
            arguments.add(address(ids)); arguments.add(address(dOutput)); arguments.add(try dtypeCode(dOutput.dtype, "embeddingBackward"))
            arguments.add(address(tableGradient))
            arguments.add(int64: ids.count); arguments.add(int: width); arguments.add(int: vocabulary); arguments.add(flag)
            try launch(.elementwise, "kite_embedding_bwd", elementwiseShape(ids.count * width, vector: false), arguments)
            if let position = try readErrorFlag() {
                throw KiteTensorError.indexOutOfRange(operation: "embeddingBackward", index: try int32Element(ids, position), limit: vocabulary, position: position)
            }
        }
    }

    /// Fills `x` with `mean + stddev * N(0, 1)` from a counter-based generator (benchmarks' random weights).
    /// Per-block XORs of every 32-bit word of `x` (i32 `[blocks]`; XOR them for the whole buffer's): one read of
    /// `x` and almost no writes, so timing it measures how fast this GPU reads (`kite bench decode` reports it
    /// beside the roofline). `x` must be 16-byte aligned and a multiple of 16 bytes long.
    public func wordXorPartials(_ x: Tensor) throws -> Tensor {
        let x = try onDevice(x, "wordXorPartials")
        guard address(x) % 16 == 0, x.byteCount % 16 == 0 else {
            throw KiteTensorError.invalidArgument(operation: "wordXorPartials", detail: "\(x.byteCount) bytes at an address that is not 16-byte aligned, or not a multiple of 16 bytes")
        }
        let blocks = 8 * context.multiprocessorCount
        let partials = try allocate([blocks], .i32)
        var arguments = KernelArguments()
        arguments.add(address(x)); arguments.add(int64: x.byteCount / 16); arguments.add(address(partials))
        try launch(.elementwise, "kite_xor_words", LaunchShape(grid: blocks, block: 256), arguments)
        return partials
    }

    public func fillNormal(_ x: Tensor, seed: UInt64, mean: Float = 0, standardDeviation: Float) throws {
        try inPlaceTarget(x, "fillNormal")
        var arguments = KernelArguments()
        arguments.add(address(x)); arguments.add(try dtypeCode(x.dtype, "fillNormal"))
        arguments.add(int64: x.count); arguments.add(seed); arguments.add(mean); arguments.add(standardDeviation)
        try launch(.elementwise, "kite_fill_normal", elementwiseShape(x.count, vector: false), arguments)
    }
}
