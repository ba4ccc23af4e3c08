import Synchronization

/// Single-precision matrix multiply on the CPU: `C = alpha * op(A) * op(B) + beta * C`, row-major.
///
/// Goto-style blocking: B is packed into `kc x 32` column strips that stay in L1 while an `8 x 32` SIMD
/// micro-kernel sweeps the rows of a packed `mc x kc` block of A held in L2. Large problems are split
/// across threads by columns (or by rows when there are few columns), each thread running the serial
/// algorithm on its own part of C, so no two threads ever write the same element.
public enum GEMM {
    static let microRows = 8
    static let microColumns = 32
    static let depthBlock = 1024
    static let rowBlock = 96
    static let columnBlock = 2048

    /// `C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C`.
    ///
    /// - Parameters:
    ///   - transposeA: when true, A is stored `[K, M]` with leading dimension `lda`, else `[M, K]`.
    ///   - transposeB: when true, B is stored `[N, K]` with leading dimension `ldb`, else `[K, N]`.
    ///   - beta: 0 overwrites C (whatever it held, NaN included); 1 accumulates.
    public static func sgemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int
    ) {
        guard m > 0 && n > 0 else { return }
        if k == 0 || alpha == 0 {
            scaleC(m: m, n: n, beta: beta, c: c, ldc: ldc)
            return
        }
        let operandA = Operand(base: a, leading: lda, transposed: transposeA)
        let operandB = Operand(base: b, leading: ldb, transposed: transposeB)
        // Below a few MFLOP, spreading the work costs more than it saves.
        let flops = 2 * m * n * k
        let usable = flops < 4_000_000 ? 1 : max(1, threads)
        let columnTiles = (n + microColumns - 1) / microColumns
        let rowTiles = (m + microRows - 1) / microRows
        if usable == 1 {
            serial(m: 0..<m, n: 0..<n, k: k, alpha: alpha, a: operandA, b: operandB, beta: beta, c: c, ldc: ldc)
        } else if columnTiles >= 2 * usable || columnTiles >= rowTiles {
            let parts = min(usable, columnTiles)
            Parallel.forEach(parts: parts) { part in
                let lo = columnTiles * part / parts * microColumns
                let hi = min(n, columnTiles * (part + 1) / parts * microColumns)
                if lo < hi {
                    serial(m: 0..<m, n: lo..<hi, k: k, alpha: alpha, a: operandA, b: operandB, beta: beta, c: c, ldc: ldc)
                }
            }
        } else {
            let parts = min(usable, rowTiles)
            Parallel.forEach(parts: parts) { part in
                let lo = rowTiles * part / parts * microRows
                let hi = min(m, rowTiles * (part + 1) / parts * microRows)
                if lo < hi {
                    serial(m: lo..<hi, n: 0..<n, k: k, alpha: alpha, a: operandA, b: operandB, beta: beta, c: c, ldc: ldc)
                }
            }
        }
    }

    struct Operand: @unchecked Sendable {
        let base: UnsafePointer<Float>
        let leading: Int
        let transposed: Bool
    }

    static func scaleC(m: Int, n: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        for i in 0..<m {
            let row = c + i * ldc
            if beta == 0 {
                row.update(repeating: 0, count: n)
            } else if beta != 1 {
                for j in 0..<n { row[j] *= beta }
            }
        }
    }

    /// The blocked algorithm on the sub-matrix `C[m, n]`.
    static func serial(
        m rows: Range<Int>, n columns: Range<Int>, k: Int, alpha: Float, a: Operand, b: Operand,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let scratch = ScratchPool.shared.take()
        defer { ScratchPool.shared.give(scratch) }
        let packedA = scratch.packedA
        let packedB = scratch.packedB

        var jc = columns.lowerBound
        while jc < columns.upperBound {
            let nc = min(columnBlock, columns.upperBound - jc)
            var pc = 0
            while pc < k {
                let kc = min(depthBlock, k - pc)
                packB(b, depth: pc..<(pc + kc), columns: jc..<(jc + nc), into: packedB)
                let blockBeta: Float = pc == 0 ? beta : 1
                var ic = rows.lowerBound
                while ic < rows.upperBound {
                    let mc = min(rowBlock, rows.upperBound - ic)
                    packA(a, rows: ic..<(ic + mc), depth: pc..<(pc + kc), into: packedA)
                    var jr = 0
                    while jr < nc {
                        let nr = min(microColumns, nc - jr)
                        let bStrip = packedB + (jr / microColumns) * (kc * microColumns)
                        var ir = 0
                        while ir < mc {
                            let mr = min(microRows, mc - ir)
                            let aStrip = packedA + (ir / microRows) * (kc * microRows)
                            microKernel(
                                depth: kc, a: aStrip, b: bStrip, c: c + (ic + ir) * ldc + jc + jr, ldc: ldc,
                                rows: mr, columns: nr, alpha: alpha, beta: blockBeta)
                            ir += microRows
                        }
                        jr += microColumns
                    }
                    ic += mc
                }
                pc += kc
            }
            jc += nc
        }
    }

    /// Packs `op(A)[rows, depth]` as strips of 8 rows: for each k, the 8 values of that column, zero-padded.
    @inline(__always)
    static func packA(_ a: Operand, rows: Range<Int>, depth: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        var destination = out
        var i0 = rows.lowerBound
        while i0 < rows.upperBound {
            let valid = min(microRows, rows.upperBound - i0)
            if a.transposed {
                // Stored [K, M]: row k holds the M values; the 8 we need are contiguous.
                for kk in depth {
                    let source = a.base + kk * a.leading + i0
                    if valid == microRows {
                        for r in 0..<microRows { destination[r] = source[r] }
                    } else {
                        for r in 0..<microRows { destination[r] = r < valid ? source[r] : 0 }
                    }
                    destination += microRows
                }
            } else {
                for r in 0..<microRows {
                    if r < valid {
                        let source = a.base + (i0 + r) * a.leading + depth.lowerBound
                        for kk in 0..<depth.count { destination[kk * microRows + r] = source[kk] }
                    } else {
                        for kk in 0..<depth.count { destination[kk * microRows + r] = 0 }
                    }
                }
                destination += depth.count * microRows
            }
            i0 += microRows
        }
    }

    /// Packs `op(B)[depth, columns]` as strips of 32 columns: for each k, 32 contiguous values, zero-padded.
    @inline(__always)
    static func packB(_ b: Operand, depth: Range<Int>, columns: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        var destination = out
        var j0 = columns.lowerBound
        while j0 < columns.upperBound {
            let valid = min(microColumns, columns.upperBound - j0)
            if b.transposed {
                // Stored [N, K]: column j of op(B) is row j of storage.
                for c in 0..<microColumns {
                    if c < valid {
                        let source = b.base + (j0 + c) * b.leading + depth.lowerBound
                        for kk in 0..<depth.count { destination[kk * microColumns + c] = source[kk] }
                    } else {
                        for kk in 0..<depth.count { destination[kk * microColumns + c] = 0 }
                    }
                }
                destination += depth.count * microColumns
            } else {
                for kk in depth {
                    let source = b.base + kk * b.leading + j0
                    if valid == microColumns {
                        UnsafeMutableRawPointer(destination).storeBytes(
                            of: UnsafeRawPointer(source).loadUnaligned(as: SIMD16<Float>.self), as: SIMD16<Float>.self)
                        UnsafeMutableRawPointer(destination + 16).storeBytes(
                            of: UnsafeRawPointer(source + 16).loadUnaligned(as: SIMD16<Float>.self), as: SIMD16<Float>.self)
                    } else {
                        for c in 0..<microColumns { destination[c] = c < valid ? source[c] : 0 }
                    }
                    destination += microColumns
                }
            }
            j0 += microColumns
        }
    }

    /// `C[8, 32] = alpha * A_strip * B_strip + beta * C` for one tile; partial tiles go through a buffer.
    @inline(__always)
    static func microKernel(
        depth: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, ldc: Int,
        rows: Int, columns: Int, alpha: Float, beta: Float
    ) {
        typealias V = SIMD16<Float>
        var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V(), c30 = V(), c31 = V()
        var c40 = V(), c41 = V(), c50 = V(), c51 = V(), c60 = V(), c61 = V(), c70 = V(), c71 = V()
        let rawB = UnsafeRawPointer(b)
        var pa = a
        var offset = 0
        for _ in 0..<depth {
            let b0 = rawB.load(fromByteOffset: offset, as: V.self)
            let b1 = rawB.load(fromByteOffset: offset + 64, as: V.self)
            var s = V(repeating: pa[0]); c00.addProduct(s, b0); c01.addProduct(s, b1)
            s = V(repeating: pa[1]); c10.addProduct(s, b0); c11.addProduct(s, b1)
            s = V(repeating: pa[2]); c20.addProduct(s, b0); c21.addProduct(s, b1)
            s = V(repeating: pa[3]); c30.addProduct(s, b0); c31.addProduct(s, b1)
            s = V(repeating: pa[4]); c40.addProduct(s, b0); c41.addProduct(s, b1)
            s = V(repeating: pa[5]); c50.addProduct(s, b0); c51.addProduct(s, b1)
            s = V(repeating: pa[6]); c60.addProduct(s, b0); c61.addProduct(s, b1)
            s = V(repeating: pa[7]); c70.addProduct(s, b0); c71.addProduct(s, b1)
            pa += 8
            offset += 128
        }
        let tile = (c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71)
        withUnsafeBytes(of: tile) { accumulators in
            let acc = accumulators.baseAddress!
            let va = V(repeating: alpha)
            if rows == microRows && columns == microColumns {
                for r in 0..<microRows {
                    let row = UnsafeMutableRawPointer(c + r * ldc)
                    for half in 0..<2 {
                        var value = acc.load(fromByteOffset: (r * 2 + half) * 64, as: V.self) * va
                        if beta != 0 {
                            value.addProduct(V(repeating: beta), row.loadUnaligned(fromByteOffset: half * 64, as: V.self))
                        }
                        row.storeBytes(of: value, toByteOffset: half * 64, as: V.self)
                    }
                }
            } else {
                let values = acc.assumingMemoryBound(to: Float.self)
                for r in 0..<rows {
                    let row = c + r * ldc
                    for j in 0..<columns {
                        // Same operations as the full-tile path (multiply, then a fused add of beta * C), so an
                        // element's value never depends on where its tile falls.
                        var value = values[r * microColumns + j] * alpha
                        if beta != 0 { value.addProduct(beta, row[j]) }
                        row[j] = value
                    }
                }
            }
        }
    }
}

/// Packing buffers reused across calls, so a GEMM never pays for fresh pages.
final class GEMMScratch: @unchecked Sendable {
    let packedA: UnsafeMutablePointer<Float>
    let packedB: UnsafeMutablePointer<Float>

    init() {
        let aCount = GEMM.rowBlock * GEMM.depthBlock + GEMM.microRows * GEMM.depthBlock
        let bCount = (GEMM.columnBlock + GEMM.microColumns) * GEMM.depthBlock
        packedA = UnsafeMutableRawPointer.allocate(byteCount: aCount * 4, alignment: 64).bindMemory(to: Float.self, capacity: aCount)
        packedB = UnsafeMutableRawPointer.allocate(byteCount: bCount * 4, alignment: 64).bindMemory(to: Float.self, capacity: bCount)
    }

    deinit {
        packedA.deallocate()
        packedB.deallocate()
    }
}

final class ScratchPool: Sendable {
    static let shared = ScratchPool()
    private let free = Mutex<[GEMMScratch]>([])

    func take() -> GEMMScratch {
        free.withLock { $0.popLast() } ?? GEMMScratch()
    }

    func give(_ scratch: GEMMScratch) {
        free.withLock { $0.append(scratch) }
    }
}
