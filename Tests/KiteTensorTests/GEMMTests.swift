import Testing
@testable import KiteTensor

/// The blocked GEMM against a plain triple loop in fp64; sizes straddle every tile and block edge.
struct GEMMTests {
    static func reference(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: [Float], b: [Float], beta: Float, c: [Float]) -> [Float] {
        var out = c
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k {
                    let av = transposeA ? a[p * m + i] : a[i * k + p]
                    let bv = transposeB ? b[j * k + p] : b[p * n + j]
                    sum += Double(av) * Double(bv)
                }
                out[i * n + j] = Float(Double(alpha) * sum + (beta == 0 ? 0 : Double(beta) * Double(c[i * n + j])))
            }
        }
        return out
    }

    @Test(arguments: [(1, 1, 1), (7, 33, 5), (8, 32, 256), (9, 31, 257), (65, 97, 300), (130, 70, 513), (200, 2100, 40)])
    func matchesReferenceForEveryTransposition(m: Int, n: Int, k: Int) {
        var random = SeededRandom(seed: UInt64(m * 1_000_003 + n * 1009 + k))
        for (transposeA, transposeB) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = random.floats(m * k), b = random.floats(k * n)
            let initial = random.floats(m * n)
            for (alpha, beta): (Float, Float) in [(1, 0), (0.5, 1), (-2, 0.25)] {
                var c = initial
                a.withUnsafeBufferPointer { pa in
                    b.withUnsafeBufferPointer { pb in
                        c.withUnsafeMutableBufferPointer { pc in
                            GEMM.sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                                       a: pa.baseAddress!, lda: transposeA ? m : k, b: pb.baseAddress!, ldb: transposeB ? k : n,
                                       beta: beta, c: pc.baseAddress!, ldc: n, threads: 2)
                        }
                    }
                }
                let expected = Self.reference(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, b: b, beta: beta, c: initial)
                // fp32 accumulation of k products of values in [-1, 1]: error grows like sqrt(k) * 2^-24 * k.
                #expect(maxRelativeError(c, expected) < 1e-5 * Float(max(k, 1)).squareRoot(), "m \(m) n \(n) k \(k) tA \(transposeA) tB \(transposeB) alpha \(alpha) beta \(beta)")
            }
        }
    }

    @Test func betaZeroOverwritesNaN() {
        var c = [Float](repeating: .nan, count: 4)
        let a: [Float] = [1, 2], b: [Float] = [3, 4]
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    GEMM.sgemm(transposeA: false, transposeB: false, m: 2, n: 2, k: 1, alpha: 1,
                               a: pa.baseAddress!, lda: 1, b: pb.baseAddress!, ldb: 2, beta: 0, c: pc.baseAddress!, ldc: 2, threads: 1)
                }
            }
        }
        #expect(c == [3, 4, 6, 8])
    }

    @Test func stridedOperandsUseLeadingDimensions() {
        // A 2x2 block inside a 3x4 matrix times a 2x2 block inside a 2x3 matrix.
        let a: [Float] = [1, 2, 0, 0, 3, 4, 0, 0, 9, 9, 9, 9]
        let b: [Float] = [5, 6, 9, 7, 8, 9]
        var c: [Float] = [0, 0, -1, 0, 0, -1]
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    GEMM.sgemm(transposeA: false, transposeB: false, m: 2, n: 2, k: 2, alpha: 1,
                               a: pa.baseAddress!, lda: 4, b: pb.baseAddress!, ldb: 3, beta: 0, c: pc.baseAddress!, ldc: 3, threads: 1)
                }
            }
        }
        #expect(c == [19, 22, -1, 43, 50, -1])
    }

    @Test func batchedMatmulMatchesPerItemProducts() throws {
        let backend = CPUBackend(threads: 2)
        var random = SeededRandom(seed: 7)
        let a = random.tensor([3, 5, 4]), b = random.tensor([3, 6, 4])
        let c = try backend.matmul(a, b, transposeA: false, transposeB: true)
        #expect(c.shape == [3, 5, 6])
        for batch in 0..<3 {
            let single = try backend.matmul(a.rows(batch..<(batch + 1)).reshaped([5, 4]), b.rows(batch..<(batch + 1)).reshaped([6, 4]), transposeA: false, transposeB: true)
            #expect(c.rows(batch..<(batch + 1)).toFloats() == single.toFloats())
        }
    }

    @Test func mismatchedInnerDimensionsThrow() {
        let backend = CPUBackend(threads: 1)
        #expect(throws: KiteTensorError.self) {
            try backend.matmul(Tensor(zeros: [2, 3]), Tensor(zeros: [4, 2]), transposeA: false, transposeB: false)
        }
    }
}
