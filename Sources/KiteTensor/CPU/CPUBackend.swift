#if canImport(Glibc)
import Glibc
#endif

/// The reference backend: fp32 math on the host, SIMD kernels, work split over `threads` threads.
///
/// Results are deterministic for a given thread count: every reduction has a fixed order.
public final class CPUBackend: Backend {
    public let device: Device = .cpu
    public let threads: Int

    /// - Parameter threads: worker threads; nil reads `KITE_NUM_THREADS`, else uses every core.
    public init(threads: Int? = nil) {
        self.threads = max(1, threads ?? CPUBackend.defaultThreadCount())
    }

    /// `KITE_NUM_THREADS` when set to a positive integer, else the number of online cores.
    public static func defaultThreadCount() -> Int {
        if let text = getenv("KITE_NUM_THREADS").map({ String(cString: $0) }), let value = Int(text), value > 0 {
            return value
        }
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    // MARK: Memory

    public func zeros(_ shape: [Int], dtype: DType) throws -> Tensor {
        Tensor(zeros: shape, dtype: dtype)
    }

    public func upload(_ host: Tensor) throws -> Tensor {
        try requireHost(host, "upload")
        return host
    }

    public func download(_ tensor: Tensor) throws -> Tensor {
        try requireHost(tensor, "download")
        return tensor
    }

    public func copy(_ source: Tensor, into destination: Tensor) throws {
        guard source.shape == destination.shape else {
            throw KiteTensorError.shapeMismatch(operation: "copy", detail: "\(source) into \(destination)")
        }
        if source.dtype == destination.dtype {
            destination.rawPointer.copyMemory(from: source.rawPointer, byteCount: source.byteCount)
            return
        }
        guard source.dtype.isFloatingPoint, destination.dtype.isFloatingPoint else {
            throw KiteTensorError.unsupportedDType(operation: "copy", dtype: source.dtype, expected: "\(destination.dtype), or floating-point types on both sides")
        }
        let converted = source.converted(to: destination.dtype)
        destination.rawPointer.copyMemory(from: converted.rawPointer, byteCount: converted.byteCount)
    }

    public func cast(_ x: Tensor, to dtype: DType) throws -> Tensor {
        try requireHost(x, "cast")
        return x.converted(to: dtype)
    }

    // MARK: Linear algebra

    public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) throws -> Tensor {
        let shape = try matmulShape(a, b, transposeA: transposeA, transposeB: transposeB)
        let c = Tensor(uninitialized: shape.batch.map { [$0, shape.m, shape.n] } ?? [shape.m, shape.n])
        try matmul(a, b, transposeA: transposeA, transposeB: transposeB, into: c, alpha: 1, beta: 0)
        return c
    }

    public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool, into c: Tensor, alpha: Float, beta: Float) throws {
        let shape = try matmulShape(a, b, transposeA: transposeA, transposeB: transposeB)
        let expected = shape.batch.map { [$0, shape.m, shape.n] } ?? [shape.m, shape.n]
        guard c.shape == expected else {
            throw KiteTensorError.shapeMismatch(operation: "matmul", detail: "output \(c.shape), expected \(expected)")
        }
        try requireFloat32(c, "matmul")
        let (m, n, k) = (shape.m, shape.n, shape.k)
        let lda = transposeA ? m : k
        let ldb = transposeB ? k : n
        let pa = UnsafePointer(a.floats.baseAddress!)
        let pb = UnsafePointer(b.floats.baseAddress!)
        let pc = c.floats.baseAddress!
        let batch = shape.batch ?? 1
        if batch == 1 {
            GEMM.sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                       a: pa, lda: lda, b: pb, ldb: ldb, beta: beta, c: pc, ldc: n, threads: threads)
            return
        }
        // Many small products run one per thread; large ones use all threads each.
        let large = 2 * m * n * k >= 8_000_000
        let run = { (index: Int, threads: Int) in
            GEMM.sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                       a: pa + index * m * k, lda: lda, b: pb + index * k * n, ldb: ldb, beta: beta,
                       c: pc + index * m * n, ldc: n, threads: threads)
        }
        if large {
            for index in 0..<batch { run(index, threads) }
        } else {
            Parallel.forRanges(count: batch, threads: threads) { range in
                for index in range { run(index, 1) }
            }
        }
    }

    struct MatmulShape {
        var batch: Int?
        var m: Int
        var n: Int
        var k: Int
    }

    func matmulShape(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) throws -> MatmulShape {
        try requireFloat32(a, "matmul")
        try requireFloat32(b, "matmul")
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
        let ra = a.shape.suffix(2), rb = b.shape.suffix(2)
        let (m, ka) = transposeA ? (ra.last!, ra.first!) : (ra.first!, ra.last!)
        let (kb, n) = transposeB ? (rb.last!, rb.first!) : (rb.first!, rb.last!)
        guard ka == kb else {
            throw KiteTensorError.shapeMismatch(operation: "matmul", detail: "inner dimensions \(ka) (\(a.shape), transposed: \(transposeA)) and \(kb) (\(b.shape), transposed: \(transposeB))")
        }
        return MatmulShape(batch: batch, m: m, n: n, k: ka)
    }

    // MARK: Elementwise

    public func add(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try requireSameShape(a, b, "add")
        let out = Tensor(uninitialized: a.shape)
        let (pa, pb, po) = (a.floats, b.floats, out.floats)
        elementwise(count: a.count) { range in
            for i in range { po[i] = pa[i] + pb[i] }
        }
        return out
    }

    public func accumulate(_ x: Tensor, into target: Tensor, scale: Float) throws {
        try requireSameShape(x, target, "accumulate")
        let (px, pt) = (x.floats, target.floats)
        elementwise(count: x.count) { range in
            if scale == 1 {
                for i in range { pt[i] += px[i] }
            } else {
                for i in range { pt[i] += scale * px[i] }
            }
        }
    }

    public func scale(_ x: Tensor, by factor: Float) throws {
        try requireFloat32(x, "scale")
        let px = x.floats
        elementwise(count: x.count) { range in
            for i in range { px[i] *= factor }
        }
    }

    public func fill(_ x: Tensor, with value: Float) throws {
        try requireFloat32(x, "fill")
        x.floats.update(repeating: value)
    }

    public func addBias(_ x: Tensor, bias: Tensor) throws {
        try requireFloat32(x, "addBias")
        try requireFloat32(bias, "addBias")
        guard bias.rank == 1, x.shape.last == bias.count else {
            throw KiteTensorError.shapeMismatch(operation: "addBias", detail: "input \(x.shape) with bias \(bias.shape)")
        }
        let (px, pb, width) = (x.floats, bias.floats, bias.count)
        for row in 0..<(x.count / max(width, 1)) {
            for i in 0..<width { px[row * width + i] += pb[i] }
        }
    }

    public func accumulateColumnSums(_ x: Tensor, into target: Tensor) throws {
        try requireFloat32(x, "accumulateColumnSums")
        try requireFloat32(target, "accumulateColumnSums")
        guard target.rank == 1, x.shape.last == target.count else {
            throw KiteTensorError.shapeMismatch(operation: "accumulateColumnSums", detail: "input \(x.shape) into \(target.shape)")
        }
        let (px, pt, width) = (x.floats, target.floats, target.count)
        for row in 0..<(x.count / max(width, 1)) {
            for i in 0..<width { pt[i] += px[row * width + i] }
        }
    }

    public func sumOfSquares(_ x: Tensor) throws -> Double {
        try requireFloat32(x, "sumOfSquares")
        let px = x.floats
        // Fixed chunking (independent of the thread count) keeps the result deterministic.
        let chunk = 1 << 14
        let chunks = (x.count + chunk - 1) / chunk
        var partial = [Double](repeating: 0, count: chunks)
        partial.withUnsafeMutableBufferPointer { partial in
            Parallel.forRanges(count: chunks, threads: threads) { range in
                for c in range {
                    var sum = 0.0
                    for i in (c * chunk)..<min(px.count, (c + 1) * chunk) {
                        let v = Double(px[i])
                        sum += v * v
                    }
                    partial[c] = sum
                }
            }
        }
        return partial.reduce(0, +)
    }

    /// Splits large elementwise work over threads; small work runs inline.
    func elementwise(count: Int, _ body: (Range<Int>) -> Void) {
        if count < 1 << 16 {
            body(0..<count)
        } else {
            Parallel.forRanges(count: count, threads: threads, minimumChunk: 1 << 14, body)
        }
    }

    // MARK: Validation

    func requireHost(_ x: Tensor, _ operation: String) throws {
        guard x.device == .cpu else {
            throw KiteTensorError.invalidArgument(operation: operation, detail: "tensor on \(x.device) given to the CPU backend")
        }
    }

    func requireFloat32(_ x: Tensor, _ operation: String) throws {
        try requireHost(x, operation)
        guard x.dtype == .f32 else {
            throw KiteTensorError.unsupportedDType(operation: operation, dtype: x.dtype, expected: "f32 on the CPU backend")
        }
    }

    func requireSameShape(_ a: Tensor, _ b: Tensor, _ operation: String) throws {
        try requireFloat32(a, operation)
        try requireFloat32(b, operation)
        guard a.shape == b.shape else {
            throw KiteTensorError.shapeMismatch(operation: operation, detail: "\(a.shape) vs \(b.shape)")
        }
    }

    func requireShape(_ x: Tensor, _ shape: [Int], _ operation: String, _ name: String) throws {
        guard x.shape == shape else {
            throw KiteTensorError.shapeMismatch(operation: operation, detail: "\(name) has shape \(x.shape), expected \(shape)")
        }
    }
}
