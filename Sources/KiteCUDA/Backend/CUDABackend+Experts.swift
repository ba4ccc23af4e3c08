import KiteTensor

/// Multi-head latent attention's column ops and the mixture-of-experts ops (`ExpertKernels`, cuBLASLt for
/// the grouped products), matching the CPU reference.
///
/// - Column ops are copies (split's sums of broadcast rows aside) that read any floating-point dtype and
///   return `computeDType`, like every activation-producing op.
/// - Routing runs one block per token in fp32 (logits of any floating-point dtype): gate weights are f32,
///   experts i32, routing's backward returns `computeDType` and, like `embedding`, waits for the stream to
///   report an expert index out of range with the CPU's error. `routeWeights` (routing replay) waits the same
///   way to report a bad or repeated expert.
/// - `dispatch` waits for the stream once: it reads the chosen experts back to the host and sorts them
///   there (a counting sort, the CPU's exact order), because `ExpertDispatch.tokensPerExpert` are host
///   integers that size the grouped products. It therefore cannot be recorded into a device graph.
/// - `groupedMatmul` and its weight gradient issue one cuBLASLt product per non-empty group on that group's
///   rows (views of the one input and output), so they take the same paths, kept bf16 weight copies
///   included, as `matmul`.
extension CUDABackend {
    // MARK: Column slices

    public func splitColumns(_ x: Tensor, widths: [Int], summingGroups: [Int]?) throws -> [Tensor] {
        try profiler.measure(.other) {
            let columns = x.shape.last ?? 0
            let (rows, groups) = try OperationShapes.columnSplit(x, widths: widths, summingGroups: summingGroups)
            let x = try onDevice(x, "splitColumns")
            let inputCode = try dtypeCode(x.dtype, "splitColumns"), outputCode = try dtypeCode(computeDType, "splitColumns")
            var parts: [Tensor] = []
            var offset = 0
            for (width, group) in zip(widths, groups) {
                let part = try allocate(group == 1 ? Array(x.shape.dropLast()) + [width] : [rows / group, width], computeDType)
                if part.count > 0 {
                    var arguments = KernelArguments()
                    arguments.add(address(x)); arguments.add(inputCode)
                    arguments.add(address(part)); arguments.add(outputCode)
                    arguments.add(int64: rows / group); arguments.add(int: columns); arguments.add(int: offset); arguments.add(int: width)
                    arguments.add(int: group)
                    try launch(.experts, "kite_split_columns", elementwiseShape(part.count, vector: false), arguments)
                }
                parts.append(part)
                offset += width
            }
            return parts
        }
    }

    public func concatenateColumns(_ parts: [Tensor]) throws -> Tensor {
        try profiler.measure(.other) {
            let (widths, repeats, rows, total, shape) = try OperationShapes.columnConcatenation(parts)
            let output = try allocate(shape, computeDType)
            let outputCode = try dtypeCode(computeDType, "concatenateColumns")
            var offset = 0
            for (index, part) in parts.enumerated() {
                let part = try onDevice(part, "concatenateColumns")
                let width = widths[index]
                if rows * width > 0 {
                    var arguments = KernelArguments()
                    arguments.add(address(part)); arguments.add(try dtypeCode(part.dtype, "concatenateColumns"))
                    arguments.add(address(output)); arguments.add(outputCode)
                    arguments.add(int64: rows); arguments.add(int: total); arguments.add(int: offset); arguments.add(int: width)
                    arguments.add(int: repeats[index])
                    try launch(.experts, "kite_concat_columns", elementwiseShape(rows * width, vector: false), arguments)
                }
                offset += width
            }
            return output
        }
    }

    public func gatherColumns(_ x: Tensor, columns: [Int]) throws -> Tensor {
        try profiler.measure(.other) {
            guard x.rank >= 1 else { throw KiteTensorError.shapeMismatch(operation: "gatherColumns", detail: "scalar input") }
            let width = x.shape.last ?? 0
            for (position, column) in columns.enumerated() where column < 0 || column >= width {
                throw KiteTensorError.indexOutOfRange(operation: "gatherColumns", index: column, limit: width, position: position)
            }
            let x = try onDevice(x, "gatherColumns")
            let rows = x.count / max(width, 1), count = columns.count
            let output = try allocate(Array(x.shape.dropLast()) + [count], computeDType)
            guard output.count > 0 else { return output }
            let indices = try upload(Tensor(int32: columns.map { Int32($0) }))
            var arguments = KernelArguments()
            arguments.add(address(x)); arguments.add(try dtypeCode(x.dtype, "gatherColumns"))
            arguments.add(address(indices))
            arguments.add(address(output)); arguments.add(try dtypeCode(computeDType, "gatherColumns"))
            arguments.add(int64: rows); arguments.add(int: width); arguments.add(int: count)
            try launch(.experts, "kite_gather_columns", elementwiseShape(output.count, vector: false), arguments)
            return output
        }
    }

    public func swapLeadingDimensions(_ x: Tensor) throws -> Tensor {
        try profiler.measure(.other) {
            guard x.rank >= 2 else {
                throw KiteTensorError.shapeMismatch(operation: "swapLeadingDimensions", detail: "input \(x.shape), expected rank 2 or more")
            }
            let x = try onDevice(x, "swapLeadingDimensions")
            let (a, b) = (x.shape[0], x.shape[1])
            let inner = x.count / max(a * b, 1)
            let output = try allocate([b, a] + x.shape.dropFirst(2), computeDType)
            guard output.count > 0 else { return output }
            var arguments = KernelArguments()
            arguments.add(address(x)); arguments.add(try dtypeCode(x.dtype, "swapLeadingDimensions"))
            arguments.add(address(output)); arguments.add(try dtypeCode(computeDType, "swapLeadingDimensions"))
            arguments.add(int64: a); arguments.add(int64: b); arguments.add(int64: inner)
            try launch(.experts, "kite_swap_leading", elementwiseShape(output.count, vector: false), arguments)
            return output
        }
    }

    // MARK: Routing

    /// Threads per routing block: one token's experts are spread over them.
    static let routingThreads = 128

    public func route(logits: Tensor, correctionBias: Tensor?, parameters: RoutingParameters) throws -> (weights: Tensor, experts: Tensor) {
        try profiler.measure(.other) {
            let (tokens, expertCount) = try routingShape(logits, correctionBias, parameters, "route")
            let k = parameters.topK
            let logits = try onDevice(logits, "route")
            let bias = try correctionBias.map { try float32($0, "route") }
            let weights = try allocate([tokens, k], .f32), experts = try allocate([tokens, k], .i32)
            guard tokens > 0 else { return (weights, experts) }
            var arguments = KernelArguments()
            arguments.add(address(logits)); arguments.add(try dtypeCode(logits.dtype, "route"))
            arguments.add(bias.map(address) ?? 0)
            arguments.add(int: expertCount); arguments.add(int: k); arguments.add(Int32(parameters.scoring == .sigmoid ? 1 : 0))
            arguments.add(int: parameters.groups); arguments.add(int: parameters.topGroups)
            arguments.add(Int32(parameters.groupScore == .sumOfTopTwo ? 1 : 0))
            arguments.add(Int32(parameters.normalize ? 1 : 0)); arguments.add(parameters.normalizationEpsilon); arguments.add(parameters.scale)
            arguments.add(address(weights)); arguments.add(address(experts))
            let shared = (2 * expertCount + 2 * parameters.groups + k) * 4
            try launch(.experts, "kite_route", LaunchShape(grid: tokens, block: Self.routingThreads, sharedBytes: shared), arguments)
            return (weights, experts)
        }
    }

    public func routeWeights(logits: Tensor, experts: Tensor, parameters: RoutingParameters) throws -> Tensor {
        try profiler.measure(.other) {
            let (tokens, expertCount) = try routingShape(logits, nil, parameters, "routeWeights")
            let k = parameters.topK
            guard experts.shape == [tokens, k] else {
                throw KiteTensorError.shapeMismatch(operation: "routeWeights", detail: "experts \(experts) for logits \(logits.shape), expected i32 [\(tokens), \(k)]")
            }
            let logits = try onDevice(logits, "routeWeights"), experts = try requireInt32(experts, "routeWeights", "experts")
            let weights = try allocate([tokens, k], .f32)
            guard tokens > 0 else { return weights }
            let flag = try resetErrorFlag()
            var arguments = KernelArguments()
            arguments.add(address(logits)); arguments.add(try dtypeCode(logits.dtype, "routeWeights"))
            arguments.add(address(experts)); arguments.add(int: expertCount); arguments.add(int: k)
            arguments.add(Int32(parameters.scoring == .sigmoid ? 1 : 0))
            arguments.add(Int32(parameters.normalize ? 1 : 0)); arguments.add(parameters.normalizationEpsilon); arguments.add(parameters.scale)
            arguments.add(address(weights)); arguments.add(flag)
            try launch(.experts, "kite_route_weights", LaunchShape(grid: tokens, block: Self.routingThreads, sharedBytes: expertCount * 4), arguments)
            if isCapturing { return weights }
            if try readErrorFlag() != nil {
                // Rare: read the indices back and let the host check name the first offence, as the CPU does.
                let host = try download(experts)
                try parameters.validateExperts(UnsafeBufferPointer(host.int32s), experts: expertCount, operation: "routeWeights")
                throw KiteTensorError.invalidArgument(operation: "routeWeights", detail: "the device flagged an expert index the host check accepts")
            }
            return weights
        }
    }

    public func routeBackward(dWeights: Tensor, logits: Tensor, experts: Tensor, parameters: RoutingParameters) throws -> Tensor {
        try profiler.measure(.other) {
            let (tokens, expertCount) = try routingShape(logits, nil, parameters, "routeBackward")
            let k = parameters.topK
            guard dWeights.shape == [tokens, k], experts.shape == [tokens, k], experts.dtype == .i32 else {
                throw KiteTensorError.shapeMismatch(operation: "routeBackward", detail: "dWeights \(dWeights.shape), experts \(experts) for logits \(logits.shape) and top-k \(k)")
            }
            let logits = try onDevice(logits, "routeBackward"), experts = try requireInt32(experts, "routeBackward", "experts")
            let dWeights = try float32(dWeights, "routeBackward")
            let dLogits = try allocate([tokens, expertCount], computeDType)
            guard tokens > 0 else { return dLogits }
            let flag = try resetErrorFlag()
            var arguments = KernelArguments()
            arguments.add(address(dWeights)); arguments.add(address(logits)); arguments.add(try dtypeCode(logits.dtype, "routeBackward"))
            arguments.add(address(experts)); arguments.add(int: expertCount); arguments.add(int: k)
            arguments.add(Int32(parameters.scoring == .sigmoid ? 1 : 0))
            arguments.add(Int32(parameters.normalize ? 1 : 0)); arguments.add(parameters.normalizationEpsilon); arguments.add(parameters.scale)
            arguments.add(address(dLogits)); arguments.add(try dtypeCode(computeDType, "routeBackward")); arguments.add(flag)
            let shared = (expertCount + 2 * k) * 4
            try launch(.experts, "kite_route_bwd", LaunchShape(grid: tokens, block: Self.routingThreads, sharedBytes: shared), arguments)
            if isCapturing { return dLogits }
            if let position = try readErrorFlag() {
                throw KiteTensorError.indexOutOfRange(operation: "routeBackward", index: try int32Element(experts, position), limit: expertCount, position: position)
            }
            return dLogits
        }
    }

    /// Tokens and experts of router logits `[T, E]`; checks the parameters and the correction bias.
    func routingShape(_ logits: Tensor, _ bias: Tensor?, _ parameters: RoutingParameters, _ operation: String) throws -> (tokens: Int, experts: Int) {
        guard logits.rank == 2 else { throw KiteTensorError.shapeMismatch(operation: operation, detail: "logits \(logits.shape), expected [tokens, experts]") }
        guard logits.dtype.isFloatingPoint else {
            throw KiteTensorError.unsupportedDType(operation: operation, dtype: logits.dtype, expected: "floating-point logits")
        }
        let experts = logits.shape[1]
        try parameters.validate(experts: experts, operation: operation)
        if let bias, bias.shape != [experts] {
            throw KiteTensorError.shapeMismatch(operation: operation, detail: "correction bias \(bias.shape) for \(experts) experts")
        }
        // The block keeps a row's scores, masked scores and group scores in shared memory.
        let shared = (2 * experts + 2 * parameters.groups + parameters.topK) * 4
        guard shared <= 48 * 1024 else {
            throw CUDAError.unsupported("\(operation): \(experts) experts need \(shared) bytes of shared memory per token (48 KiB at most)")
        }
        return (logits.shape[0], experts)
    }

    // MARK: Dispatch and combine

    public func dispatch(_ x: Tensor, experts: Tensor, expertCount: Int) throws -> (rows: Tensor, plan: ExpertDispatch) {
        try profiler.measure(.other) {
            guard x.rank == 2, experts.dtype == .i32, experts.rank == 2, experts.shape[0] == x.shape[0], expertCount >= 1 else {
                throw KiteTensorError.shapeMismatch(operation: "dispatch", detail: "input \(x.shape), experts \(experts), \(expertCount) experts; expected [T, D], i32 [T, k]")
            }
            guard !isCapturing else {
                throw CUDAError.unsupported("dispatch reads the chosen experts back to the host and cannot be recorded into a graph")
            }
            let (tokens, k, width) = (x.shape[0], experts.shape[1], x.shape[1])
            let x = try activation(x, "dispatch")
            // The one host round trip: group sizes must be host integers (they size the grouped products).
            let (counts, positions, assignments) = try ExpertDispatch.sortByExpert(try download(experts).toInt32s(), expertCount: expertCount)
            let sourceTokens = assignments.map { $0 / Int32(max(k, 1)) }
            let rows = try allocate([tokens * k, width], x.dtype)
            let plan = ExpertDispatch(
                tokenCount: tokens, topK: k, expertCount: expertCount, tokensPerExpert: counts,
                assignments: try upload(Tensor(int32: assignments)), positions: try upload(Tensor(int32: positions)))
            if rows.count > 0 {
                try moveRows(from: x, sourceRows: try upload(Tensor(int32: sourceTokens)), to: rows, destinationRows: nil, count: tokens * k)
            }
            return (rows, plan)
        }
    }

    public func combine(_ rows: Tensor, weights: Tensor?, plan: ExpertDispatch) throws -> Tensor {
        try profiler.measure(.other) {
            let (tokens, k) = (plan.tokenCount, plan.topK)
            guard rows.rank == 2, rows.shape[0] == plan.rowCount else {
                throw KiteTensorError.shapeMismatch(operation: "combine", detail: "rows \(rows.shape) for \(plan.rowCount) dispatched rows")
            }
            if let weights, weights.shape != [tokens, k] {
                throw KiteTensorError.shapeMismatch(operation: "combine", detail: "weights \(weights.shape), expected [\(tokens), \(k)]")
            }
            let rows = try onDevice(rows, "combine")
            let weights = try weights.map { try float32($0, "combine") }
            let positions = try requireInt32(plan.positions, "combine", "positions")
            let width = rows.shape[1]
            let output = try allocate([tokens, width], computeDType)
            guard output.count > 0 else { return output }
            var arguments = KernelArguments()
            arguments.add(address(rows)); arguments.add(try dtypeCode(rows.dtype, "combine"))
            arguments.add(weights.map(address) ?? 0); arguments.add(address(positions))
            arguments.add(address(output)); arguments.add(try dtypeCode(computeDType, "combine"))
            arguments.add(int64: tokens); arguments.add(int: k); arguments.add(int: width)
            try launch(.experts, "kite_combine", elementwiseShape(output.count, vector: false), arguments)
            return output
        }
    }

    public func combineBackward(dOutput: Tensor, rows: Tensor, weights: Tensor, plan: ExpertDispatch) throws -> (dRows: Tensor, dWeights: Tensor) {
        try profiler.measure(.other) {
            for (name, tensor) in [("dOutput", dOutput), ("rows", rows), ("weights", weights)] where tensor.rank != 2 {
                throw KiteTensorError.shapeMismatch(operation: "combineBackward", detail: "\(name) \(tensor.shape), expected rank 2")
            }
            let (tokens, k, width) = (plan.tokenCount, plan.topK, rows.shape[1])
            guard dOutput.shape == [tokens, width], rows.shape[0] == plan.rowCount, weights.shape == [tokens, k] else {
                throw KiteTensorError.shapeMismatch(operation: "combineBackward", detail: "dOutput \(dOutput.shape), rows \(rows.shape), weights \(weights.shape) for \(tokens) tokens of \(k) experts")
            }
            let dOutput = try onDevice(dOutput, "combineBackward"), rows = try onDevice(rows, "combineBackward")
            let weights = try float32(weights, "combineBackward")
            let positions = try requireInt32(plan.positions, "combineBackward", "positions")
            let dRows = try allocate(rows.shape, computeDType), dWeights = try allocate([tokens, k], .f32)
            let pairs = tokens * k
            guard pairs > 0 else { return (dRows, dWeights) }
            let warpsPerBlock = 8
            var arguments = KernelArguments()
            arguments.add(address(dOutput)); arguments.add(try dtypeCode(dOutput.dtype, "combineBackward"))
            arguments.add(address(rows)); arguments.add(try dtypeCode(rows.dtype, "combineBackward"))
            arguments.add(address(weights)); arguments.add(address(positions))
            arguments.add(address(dRows)); arguments.add(try dtypeCode(computeDType, "combineBackward")); arguments.add(address(dWeights))
            arguments.add(int64: pairs); arguments.add(int: k); arguments.add(int: width)
            try launch(.experts, "kite_combine_bwd", LaunchShape(grid: (pairs + warpsPerBlock - 1) / warpsPerBlock, block: 32 * warpsPerBlock), arguments)
            return (dRows, dWeights)
        }
    }

    // MARK: Grouped products

    public func groupedMatmul(_ x: Tensor, weights: [Tensor], groupSizes: [Int], transposeWeights: Bool) throws -> Tensor {
        try profiler.measure(.gemm) {
            let (n, _, m) = try groupedShape(x, weights, groupSizes, transposeWeights, "groupedMatmul")
            let x = try activation(x, "groupedMatmul")
            let output = try allocate([n, m], computeDType)
            var offset = 0
            for (group, size) in groupSizes.enumerated() {
                defer { offset += size }
                guard size > 0 else { continue }
                let range = offset..<(offset + size)
                try product(x.rows(range), weights[group], transposeA: false, transposeB: transposeWeights, into: output.rows(range), alpha: 1, beta: 0)
            }
            return output
        }
    }

    public func groupedMatmulWeightGradient(dOutput: Tensor, input: Tensor, groupSizes: [Int], weightGradients: [Tensor]) throws {
        try profiler.measure(.gemm) {
            let (n, _, m) = try groupedShape(input, weightGradients, groupSizes, true, "groupedMatmulWeightGradient")
            guard dOutput.shape == [n, m] else {
                throw KiteTensorError.shapeMismatch(operation: "groupedMatmulWeightGradient", detail: "dOutput \(dOutput.shape), expected [\(n), \(m)]")
            }
            let dOutput = try activation(dOutput, "groupedMatmulWeightGradient"), input = try activation(input, "groupedMatmulWeightGradient")
            var offset = 0
            for (group, size) in groupSizes.enumerated() {
                defer { offset += size }
                guard size > 0 else { continue }
                let range = offset..<(offset + size)
                try inPlaceTarget(weightGradients[group], "groupedMatmulWeightGradient")
                try product(dOutput.rows(range), input.rows(range), transposeA: true, transposeB: false, into: weightGradients[group], alpha: 1, beta: 1)
            }
        }
    }

    /// Rows, inner and output widths of a grouped product; checks every weight's shape and that weights of
    /// non-empty groups are floating-point.
    func groupedShape(_ x: Tensor, _ weights: [Tensor], _ sizes: [Int], _ transposed: Bool, _ operation: String) throws -> (n: Int, k: Int, m: Int) {
        let shape = try OperationShapes.groupedProduct(x, weights, sizes, transposed: transposed, operation: operation)
        guard x.dtype.isFloatingPoint else {
            throw KiteTensorError.unsupportedDType(operation: operation, dtype: x.dtype, expected: "a floating-point input")
        }
        for (group, weight) in weights.enumerated() where sizes[group] > 0 && !weight.dtype.isFloatingPoint {
            throw KiteTensorError.unsupportedDType(operation: operation, dtype: weight.dtype, expected: "floating-point weight \(group)")
        }
        return shape
    }
}
