#if canImport(Glibc)
import Glibc
#endif

/// Attention of a few query rows computed without GEMM calls (decode, short prompts), where the fixed cost of
/// packing and blocking would dominate.
///
/// Every element is computed with exactly the operations, in exactly the order, that the GEMM micro-kernel
/// uses: a score is one fused multiply-add chain over the head dimension, scaled afterwards; an output
/// element is a fused chain over the keys, restarted every `GEMM.depthBlock` keys and added to the running
/// result. So a row gets the same bits through either path, and the engine's log-probs equal the trainer's.
enum DirectAttention {
    typealias V = SIMD16<Float>

    /// One query row of one head against `visible` keys. `keys`/`values` point at the head's first key/value
    /// row, rows `keyStride`/`valueStride` floats apart. Writes `output[0..<valueDim]`, returns the log-sum-exp.
    /// `scores` and `packed` are scratch of at least `visible` and `16 * headDim` floats.
    static func row(
        query: UnsafePointer<Float>, keys: UnsafePointer<Float>, keyStride: Int, values: UnsafePointer<Float>, valueStride: Int,
        visible: Int, headDim: Int, valueDim: Int, scale: Float, output: UnsafeMutablePointer<Float>,
        scores: UnsafeMutablePointer<Float>, packed: UnsafeMutablePointer<Float>
    ) -> Float {
        // Scores, sixteen keys at a time: lane l runs its own sequential chain over the head dimension.
        var j0 = 0
        while j0 < visible {
            let count = min(16, visible - j0)
            for d in 0..<headDim {
                for l in 0..<16 { packed[d * 16 + l] = l < count ? keys[(j0 + l) * keyStride + d] : 0 }
            }
            let rawPacked = UnsafeRawPointer(packed)
            var result = V()
            var blockStart = 0
            while blockStart < headDim {
                let blockEnd = min(blockStart + GEMM.depthBlock, headDim)
                var accumulator = V()
                for d in blockStart..<blockEnd {
                    accumulator.addProduct(V(repeating: query[d]), rawPacked.load(fromByteOffset: d * 64, as: V.self))
                }
                accumulator *= V(repeating: scale)
                if blockStart == 0 {
                    result = accumulator
                } else {
                    accumulator.addProduct(V(repeating: 1), result)
                    result = accumulator
                }
                blockStart = blockEnd
            }
            for l in 0..<count { scores[j0 + l] = result[l] }
            j0 += 16
        }
        // Softmax, as the GEMM path computes it.
        var maximum = -Float.infinity
        for j in 0..<visible { maximum = max(maximum, scores[j]) }
        var sum: Float = 0
        for j in 0..<visible {
            let e = expf(scores[j] - maximum)
            scores[j] = e
            sum += e
        }
        let inverse = sum > 0 ? 1 / sum : 0
        for j in 0..<visible { scores[j] *= inverse }
        // Output: chains over the keys, blocked like the GEMM's depth dimension.
        var c0 = 0
        while c0 < valueDim {
            let width = min(16, valueDim - c0)
            var result = V()
            var blockStart = 0
            while blockStart < visible {
                let blockEnd = min(blockStart + GEMM.depthBlock, visible)
                var accumulator = V()
                for j in blockStart..<blockEnd {
                    let row = values + j * valueStride + c0
                    var v = V()
                    if width == 16 {
                        v = UnsafeRawPointer(row).loadUnaligned(as: V.self)
                    } else {
                        for l in 0..<width { v[l] = row[l] }
                    }
                    accumulator.addProduct(V(repeating: scores[j]), v)
                }
                // The GEMM stores the first block, then adds each later block (beta = 1) with one rounding.
                if blockStart == 0 {
                    result = accumulator
                } else {
                    accumulator.addProduct(V(repeating: 1), result)
                    result = accumulator
                }
                blockStart = blockEnd
            }
            for l in 0..<width { output[c0 + l] = result[l] }
            c0 += 16
        }
        return sum > 0 ? maximum + logf(sum) : -Float.infinity
    }
}
