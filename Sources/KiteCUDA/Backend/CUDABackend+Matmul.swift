import KiteTensor

extension CUDABackend {
    struct ProductShape {
        var batch: Int?
        var m: Int
        var n: Int
        var k: Int
        var outputShape: [Int] { batch.map { [$0, m, n] } ?? [m, n] }
    }

    func productShape(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) throws -> ProductShape {
        guard a.rank == b.rank, a.rank == 2 || a.rank == 3 else {
            throw KiteTensorError.shapeMismatch(operation: "matmul", detail: "operands of rank \(a.rank) and \(b.rank); expected both 2 or both 3")
        }
        var batch: Int?
        if a.rank == 3 {
            guard a.shape[0] == b.shape[0] else {
                throw KiteTensorError.shapeMismatch(operation: "matmul", detail: "batch \(a.shape[0]) vs \(b.shape[0])")
            }
            batch = a.shape[0]
        }
        let (ra0, ra1) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
        let (rb0, rb1) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
        let (m, ka) = transposeA ? (ra1, ra0) : (ra0, ra1)
        let (kb, n) = transposeB ? (rb1, rb0) : (rb0, rb1)
        guard ka == kb else {
            throw KiteTensorError.shapeMismatch(operation: "matmul", detail: "inner dimensions \(ka) (\(a.shape), transposed: \(transposeA)) and \(kb) (\(b.shape), transposed: \(transposeB))")
        }
        return ProductShape(batch: batch, m: m, n: n, k: ka)
    }

    public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) throws -> Tensor {
        try profiler.measure(.gemm) {
            let shape = try productShape(a, b, transposeA: transposeA, transposeB: transposeB)
            let c = try allocate(shape.outputShape, computeDType)
            try product(a, b, transposeA: transposeA, transposeB: transposeB, into: c, alpha: 1, beta: 0)
            return c
        }
    }

    public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool, into c: Tensor, alpha: Float, beta: Float) throws {
        try profiler.measure(.gemm) {
            try inPlaceTarget(c, "matmul")
            try product(a, b, transposeA: transposeA, transposeB: transposeB, into: c, alpha: alpha, beta: beta)
        }
    }

    /// `c = alpha op(a) op(b) + beta c` through cuBLASLt, operands converted to `computeDType` (fp32 weights
    /// read through their kept bf16 copies in bf16 mode).
    func product(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool, into c: Tensor, alpha: Float, beta: Float) throws {
        let shape = try productShape(a, b, transposeA: transposeA, transposeB: transposeB)
        guard c.shape == shape.outputShape else {
            throw KiteTensorError.shapeMismatch(operation: "matmul", detail: "output \(c.shape), expected \(shape.outputShape)")
        }
        guard c.dtype == .f32 || c.dtype == computeDType else {
            throw KiteTensorError.unsupportedDType(operation: "matmul", dtype: c.dtype, expected: "f32 or \(computeDType) output")
        }
        if shape.m == 0 || shape.n == 0 { return }
        if shape.k == 0 {
            if beta != 1 { try scaleInPlace(c, by: beta) }
            return
        }
        let a = try converted(try onDevice(a, "matmul"), to: computeDType, keep: true, operation: "matmul")
        let b = try converted(try onDevice(b, "matmul"), to: computeDType, keep: true, operation: "matmul")
        let (m, n, k) = (shape.m, shape.n, shape.k)
        if deterministic, computeDType == .bf16, shape.batch == nil, !transposeA, transposeB, alpha == 1, beta == 0,
            k % 8 == 0, address(a) % 16 == 0, address(b) % 16 == 0
        {
            try batchInvariantProduct(a, b, into: c, m: m, n: n, k: k)
            return
        }
        let batch = shape.batch ?? 1
        let elementType: CUBLASLt.DataType = computeDType == .bf16 ? .bf16 : .f32
        // Column-major view: C^T[n, m] = op(B)^T[n, k] op(A)^T[k, m]; cuBLASLt's "A" is our b, its "B" our a.
        let problem = CUBLASLt.Problem(
            typeA: elementType, typeB: elementType, typeC: c.dtype == .f32 ? .f32 : elementType,
            compute: computeDType == .f32 && useTF32 ? .f32FastTF32 : .f32,
            transposeA: transposeB, transposeB: transposeA,
            m: n, n: m, k: k,
            lda: transposeB ? k : n, ldb: transposeA ? m : k, ldc: n,
            batch: batch, strideA: k * n, strideB: m * k, strideC: m * n,
            alignmentA: alignment(b), alignmentB: alignment(a), alignmentC: alignment(c))
        try context.makeCurrent()
        try blas.matmul(problem, a: address(b), b: address(a), c: address(c), alpha: alpha, beta: beta, stream: context.stream.handle,
                        mayTune: !isCapturing, sideStream: context.isOnSideStream)
        if Self.synchronousLaunches { try context.stream.synchronize() }
    }

    /// The largest power of two (up to 256) dividing the tensor's address.
    func alignment(_ tensor: Tensor) -> Int {
        let pointer = address(tensor)
        var value = 256
        while value > 1 && pointer % CUDevicePointer(value) != 0 { value /= 2 }
        return value
    }
}

extension CUDABackend {
    /// `c = a · b^T` with the fixed-order kernel of deterministic mode (`DeterministicGEMMKernels`). The
    /// block shape only decides how many rows and columns a block covers, never the order of a row's sums,
    /// so it is chosen freely for speed: thin blocks for the few rows of decode steps.
    func batchInvariantProduct(_ a: Tensor, _ b: Tensor, into c: Tensor, m: Int, n: Int, k: Int) throws {
        let mt = m <= 16 ? 1 : (m <= 32 ? 2 : 4)
        let wn = mt == 1 && (n + 127) / 128 < 2 * context.multiprocessorCount ? 1 : 4
        var arguments = KernelArguments()
        arguments.add(address(a)); arguments.add(int64: k); arguments.add(address(b)); arguments.add(int64: k)
        arguments.add(address(c)); arguments.add(try dtypeCode(c.dtype, "matmul")); arguments.add(int64: n)
        arguments.add(int: m); arguments.add(int: n); arguments.add(int: k)
        try launch(.gemm, "kite_det_gemm_m\(mt)_w\(wn)",
                   LaunchShape(grid: ((n + 32 * wn - 1) / (32 * wn), (m + 16 * mt - 1) / (16 * mt), 1), block: (32 * wn, 1, 1),
                               sharedBytes: DeterministicGEMMKernels.sharedBytes(mt: mt, wn: wn)),
                   arguments)
    }
}
