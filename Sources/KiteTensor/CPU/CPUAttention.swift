#if canImport(Glibc)
import Glibc
#endif

/// Causal grouped-query attention over packed sequences, computed a tile of queries at a time so the score
/// matrix of a whole sequence is never held: each tile's scores come from one GEMM against the keys it may
/// see, and its output from one GEMM against the values.
extension CPUBackend {
    static let attentionQueryTile = 64
    /// Tiles of at most this many query-key pairs skip the GEMMs (same results, less overhead).
    static let directAttentionLimit = 4096

    struct AttentionShape {
        var queryHeads: Int
        var keyHeads: Int
        var headDim: Int
        var valueDim: Int
        var group: Int { queryHeads / keyHeads }
    }

    func attentionShape(query: Tensor, key: Tensor, value: Tensor, layout: AttentionLayout, operation: String) throws -> AttentionShape {
        for (name, x) in [("query", query), ("key", key), ("value", value)] {
            try requireFloat32(x, operation)
            guard x.rank == 3 else {
                throw KiteTensorError.shapeMismatch(operation: operation, detail: "\(name) has shape \(x.shape), expected [tokens, heads, dim]")
            }
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
        return shape
    }

    /// Keys visible to query row `i` (0-based within its sequence): `0 ..< visible`.
    @inline(__always)
    static func visibleKeys(query i: Int, queries: Int, keys: Int, causal: Bool) -> Int {
        causal ? keys - queries + i + 1 : keys
    }

    public func attention(query: Tensor, key: Tensor, value: Tensor, layout: AttentionLayout, scale: Float) throws -> (output: Tensor, logSumExp: Tensor) {
        let shape = try attentionShape(query: query, key: key, value: value, layout: layout, operation: "attention")
        let rows = query.shape[0]
        let output = Tensor(zeros: [rows, shape.queryHeads, shape.valueDim])
        let logSumExp = Tensor(zeros: [rows, shape.queryHeads])
        let (pq, pk, pv) = (UnsafePointer(query.floats.baseAddress!), UnsafePointer(key.floats.baseAddress!), UnsafePointer(value.floats.baseAddress!))
        let (po, pl) = (output.floats.baseAddress!, logSumExp.floats.baseAddress!)
        let tile = Self.attentionQueryTile

        // Work items: (sequence, query head, query tile).
        var items: [(sequence: Int, head: Int, start: Int)] = []
        for s in 0..<layout.queries.count {
            let count = layout.queries.range(s).count
            for h in 0..<shape.queryHeads {
                for start in stride(from: 0, to: count, by: tile) { items.append((s, h, start)) }
            }
        }
        // Few work items of little work each: one thread avoids the cost of waking others.
        let totalWork = items.count * max(shape.headDim, 16) * 64
        let workers = totalWork < 1 << 16 ? 1 : min(threads, items.count)
        Parallel.forEach(parts: workers) { worker in
            var scores: [Float] = []
            var packed = [Float](repeating: 0, count: 16 * shape.headDim)
            for itemIndex in stride(from: worker, to: items.count, by: workers) {
                let item = items[itemIndex]
                let queryRange = layout.queries.range(item.sequence), keyRange = layout.keys.range(item.sequence)
                let (nq, nk) = (queryRange.count, keyRange.count)
                let tileRows = min(tile, nq - item.start)
                let visibleInTile = Self.visibleKeys(query: item.start + tileRows - 1, queries: nq, keys: nk, causal: layout.causal)
                if visibleInTile <= 0 { continue }
                let kvHead = item.head / shape.group
                let qRow0 = queryRange.lowerBound + item.start
                if scores.count < tileRows * visibleInTile { scores = [Float](repeating: 0, count: tileRows * visibleInTile) }
                if tileRows * visibleInTile <= Self.directAttentionLimit {
                    scores.withUnsafeMutableBufferPointer { scores in
                        packed.withUnsafeMutableBufferPointer { packed in
                            for r in 0..<tileRows {
                                let visible = Self.visibleKeys(query: item.start + r, queries: nq, keys: nk, causal: layout.causal)
                                let row = qRow0 + r
                                pl[row * shape.queryHeads + item.head] = DirectAttention.row(
                                    query: pq + (row * shape.queryHeads + item.head) * shape.headDim,
                                    keys: pk + (keyRange.lowerBound * shape.keyHeads + kvHead) * shape.headDim, keyStride: shape.keyHeads * shape.headDim,
                                    values: pv + (keyRange.lowerBound * shape.keyHeads + kvHead) * shape.valueDim, valueStride: shape.keyHeads * shape.valueDim,
                                    visible: max(visible, 0), headDim: shape.headDim, valueDim: shape.valueDim, scale: scale,
                                    output: po + (row * shape.queryHeads + item.head) * shape.valueDim,
                                    scores: scores.baseAddress!, packed: packed.baseAddress!)
                            }
                        }
                    }
                    continue
                }
                scores.withUnsafeMutableBufferPointer { scores in
                    let ps = scores.baseAddress!
                    // S = scale * Q_tile K^T over the keys the last row of the tile can see.
                    GEMM.sgemm(
                        transposeA: false, transposeB: true, m: tileRows, n: visibleInTile, k: shape.headDim, alpha: scale,
                        a: pq + (qRow0 * shape.queryHeads + item.head) * shape.headDim, lda: shape.queryHeads * shape.headDim,
                        b: pk + (keyRange.lowerBound * shape.keyHeads + kvHead) * shape.headDim, ldb: shape.keyHeads * shape.headDim,
                        beta: 0, c: ps, ldc: visibleInTile, threads: 1)
                    for r in 0..<tileRows {
                        let visible = Self.visibleKeys(query: item.start + r, queries: nq, keys: nk, causal: layout.causal)
                        let row = ps + r * visibleInTile
                        var maximum = -Float.infinity
                        for j in 0..<max(visible, 0) { maximum = max(maximum, row[j]) }
                        var sum: Float = 0
                        for j in 0..<max(visible, 0) {
                            let e = expf(row[j] - maximum)
                            row[j] = e
                            sum += e
                        }
                        let inverse = sum > 0 ? 1 / sum : 0
                        for j in 0..<max(visible, 0) { row[j] *= inverse }
                        for j in max(visible, 0)..<visibleInTile { row[j] = 0 }
                        pl[(qRow0 + r) * shape.queryHeads + item.head] = sum > 0 ? maximum + logf(sum) : -Float.infinity
                    }
                    // O_tile = P V.
                    GEMM.sgemm(
                        transposeA: false, transposeB: false, m: tileRows, n: shape.valueDim, k: visibleInTile, alpha: 1,
                        a: ps, lda: visibleInTile,
                        b: pv + (keyRange.lowerBound * shape.keyHeads + kvHead) * shape.valueDim, ldb: shape.keyHeads * shape.valueDim,
                        beta: 0, c: po + (qRow0 * shape.queryHeads + item.head) * shape.valueDim, ldc: shape.queryHeads * shape.valueDim,
                        threads: 1)
                }
            }
        }
        return (output, logSumExp)
    }

    public func attentionBackward(
        dOutput: Tensor, query: Tensor, key: Tensor, value: Tensor, output: Tensor, logSumExp: Tensor,
        layout: AttentionLayout, scale: Float
    ) throws -> (dQuery: Tensor, dKey: Tensor, dValue: Tensor) {
        let shape = try attentionShape(query: query, key: key, value: value, layout: layout, operation: "attentionBackward")
        try requireShape(dOutput, output.shape, "attentionBackward", "dOutput")
        try requireShape(output, [query.shape[0], shape.queryHeads, shape.valueDim], "attentionBackward", "output")
        try requireShape(logSumExp, [query.shape[0], shape.queryHeads], "attentionBackward", "logSumExp")
        let dQuery = Tensor(zeros: query.shape), dKey = Tensor(zeros: key.shape), dValue = Tensor(zeros: value.shape)
        let (pq, pk, pv) = (UnsafePointer(query.floats.baseAddress!), UnsafePointer(key.floats.baseAddress!), UnsafePointer(value.floats.baseAddress!))
        let (pdo, po, pl) = (UnsafePointer(dOutput.floats.baseAddress!), output.floats, logSumExp.floats)
        let (pdq, pdk, pdv) = (dQuery.floats.baseAddress!, dKey.floats.baseAddress!, dValue.floats.baseAddress!)
        let tile = Self.attentionQueryTile
        let (hq, hk, d, dv) = (shape.queryHeads, shape.keyHeads, shape.headDim, shape.valueDim)

        // D_i = <dO_i, O_i> per query row and head.
        let rows = query.shape[0]
        var rowDot = [Float](repeating: 0, count: rows * hq)
        for index in 0..<(rows * hq) {
            var sum: Float = 0
            for c in 0..<dv { sum += pdo[index * dv + c] * po[index * dv + c] }
            rowDot[index] = sum
        }

        // Work items own (sequence, kv head): every write to dK/dV of that pair happens in one item.
        var items: [(sequence: Int, kvHead: Int)] = []
        for s in 0..<layout.queries.count { for h in 0..<hk { items.append((s, h)) } }
        let workers = min(threads, items.count)
        rowDot.withUnsafeBufferPointer { rowDot in
            Parallel.forEach(parts: workers) { worker in
                var probabilities: [Float] = [], dProbabilities: [Float] = []
                for itemIndex in stride(from: worker, to: items.count, by: workers) {
                    let item = items[itemIndex]
                    let queryRange = layout.queries.range(item.sequence), keyRange = layout.keys.range(item.sequence)
                    let (nq, nk) = (queryRange.count, keyRange.count)
                    let keyBase = pk + (keyRange.lowerBound * hk + item.kvHead) * d
                    let valueBase = pv + (keyRange.lowerBound * hk + item.kvHead) * dv
                    let dKeyBase = pdk + (keyRange.lowerBound * hk + item.kvHead) * d
                    let dValueBase = pdv + (keyRange.lowerBound * hk + item.kvHead) * dv
                    for head in (item.kvHead * shape.group)..<((item.kvHead + 1) * shape.group) {
                        for start in stride(from: 0, to: nq, by: tile) {
                            let tileRows = min(tile, nq - start)
                            let visibleInTile = Self.visibleKeys(query: start + tileRows - 1, queries: nq, keys: nk, causal: layout.causal)
                            if visibleInTile <= 0 { continue }
                            let qRow0 = queryRange.lowerBound + start
                            let needed = tileRows * visibleInTile
                            if probabilities.count < needed {
                                probabilities = [Float](repeating: 0, count: needed)
                                dProbabilities = [Float](repeating: 0, count: needed)
                            }
                            probabilities.withUnsafeMutableBufferPointer { probabilities in
                                dProbabilities.withUnsafeMutableBufferPointer { dProbabilities in
                                    let pp = probabilities.baseAddress!, pdp = dProbabilities.baseAddress!
                                    let queryTile = pq + (qRow0 * hq + head) * d
                                    let dOutputTile = pdo + (qRow0 * hq + head) * dv
                                    // P = exp(scale * Q K^T - lse), zero where masked.
                                    GEMM.sgemm(
                                        transposeA: false, transposeB: true, m: tileRows, n: visibleInTile, k: d, alpha: scale,
                                        a: queryTile, lda: hq * d, b: keyBase, ldb: hk * d, beta: 0, c: pp, ldc: visibleInTile, threads: 1)
                                    for r in 0..<tileRows {
                                        let visible = max(0, Self.visibleKeys(query: start + r, queries: nq, keys: nk, causal: layout.causal))
                                        let lse = pl[(qRow0 + r) * hq + head]
                                        let row = pp + r * visibleInTile
                                        for j in 0..<visible { row[j] = expf(row[j] - lse) }
                                        for j in visible..<visibleInTile { row[j] = 0 }
                                    }
                                    // dV += P^T dO
                                    GEMM.sgemm(
                                        transposeA: true, transposeB: false, m: visibleInTile, n: dv, k: tileRows, alpha: 1,
                                        a: pp, lda: visibleInTile, b: dOutputTile, ldb: hq * dv, beta: 1, c: dValueBase, ldc: hk * dv, threads: 1)
                                    // dP = dO V^T
                                    GEMM.sgemm(
                                        transposeA: false, transposeB: true, m: tileRows, n: visibleInTile, k: dv, alpha: 1,
                                        a: dOutputTile, lda: hq * dv, b: valueBase, ldb: hk * dv, beta: 0, c: pdp, ldc: visibleInTile, threads: 1)
                                    // dS = P * (dP - D_i), kept in dP's buffer.
                                    for r in 0..<tileRows {
                                        let di = rowDot[(qRow0 + r) * hq + head]
                                        let p = pp + r * visibleInTile, ds = pdp + r * visibleInTile
                                        for j in 0..<visibleInTile { ds[j] = p[j] * (ds[j] - di) }
                                    }
                                    // dQ = scale * dS K ;  dK += scale * dS^T Q
                                    GEMM.sgemm(
                                        transposeA: false, transposeB: false, m: tileRows, n: d, k: visibleInTile, alpha: scale,
                                        a: pdp, lda: visibleInTile, b: keyBase, ldb: hk * d, beta: 0,
                                        c: pdq + (qRow0 * hq + head) * d, ldc: hq * d, threads: 1)
                                    GEMM.sgemm(
                                        transposeA: true, transposeB: false, m: visibleInTile, n: d, k: tileRows, alpha: scale,
                                        a: pdp, lda: visibleInTile, b: queryTile, ldb: hq * d, beta: 1, c: dKeyBase, ldc: hk * d, threads: 1)
                                }
                            }
                        }
                    }
                }
            }
        }
        return (dQuery, dKey, dValue)
    }
}
