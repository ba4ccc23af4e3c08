/// Column slices, joins and permutations along the last dimension, and the leading-dimension swap: the
/// reshuffling multi-head latent attention needs around its products. Pure copies (and sums of broadcast
/// rows), so the results are exact.
extension CPUBackend {
    public func splitColumns(_ x: Tensor, widths: [Int], summingGroups: [Int]?) throws -> [Tensor] {
        try requireFloat32(x, "splitColumns")
        let columns = x.shape.last ?? 0
        let (rows, groups) = try OperationShapes.columnSplit(x, widths: widths, summingGroups: summingGroups)
        let px = x.floats.baseAddress!
        var parts: [Tensor] = []
        var offset = 0
        for (width, group) in zip(widths, groups) {
            let part: Tensor
            if group == 1 {
                part = Tensor(uninitialized: Array(x.shape.dropLast()) + [width])
                let pp = part.floats.baseAddress!
                for row in 0..<rows { (pp + row * width).update(from: px + row * columns + offset, count: width) }
            } else {
                part = Tensor(zeros: [rows / group, width])
                let pp = part.floats.baseAddress!
                for row in 0..<rows {
                    let target = pp + (row / group) * width, source = px + row * columns + offset
                    for i in 0..<width { target[i] += source[i] }
                }
            }
            parts.append(part)
            offset += width
        }
        return parts
    }

    public func concatenateColumns(_ parts: [Tensor]) throws -> Tensor {
        for part in parts { try requireFloat32(part, "concatenateColumns") }
        let (widths, repeats, rows, total, shape) = try OperationShapes.columnConcatenation(parts)
        let output = Tensor(uninitialized: shape)
        let po = output.floats.baseAddress!
        var offset = 0
        for (index, part) in parts.enumerated() {
            let width = widths[index], copies = repeats[index]
            let pp = part.floats.baseAddress!
            for row in 0..<rows { (po + row * total + offset).update(from: pp + (row / copies) * width, count: width) }
            offset += width
        }
        return output
    }

    public func gatherColumns(_ x: Tensor, columns: [Int]) throws -> Tensor {
        try requireFloat32(x, "gatherColumns")
        let width = x.shape.last ?? 0
        guard x.rank >= 1 else { throw KiteTensorError.shapeMismatch(operation: "gatherColumns", detail: "scalar input") }
        for (position, column) in columns.enumerated() where column < 0 || column >= width {
            throw KiteTensorError.indexOutOfRange(operation: "gatherColumns", index: column, limit: width, position: position)
        }
        let rows = x.count / max(width, 1), count = columns.count
        let output = Tensor(uninitialized: Array(x.shape.dropLast()) + [count])
        let (px, po) = (x.floats.baseAddress!, output.floats.baseAddress!)
        for row in 0..<rows {
            for (j, column) in columns.enumerated() { po[row * count + j] = px[row * width + column] }
        }
        return output
    }

    public func swapLeadingDimensions(_ x: Tensor) throws -> Tensor {
        try requireFloat32(x, "swapLeadingDimensions")
        guard x.rank >= 2 else { throw KiteTensorError.shapeMismatch(operation: "swapLeadingDimensions", detail: "input \(x.shape), expected rank 2 or more") }
        let (a, b) = (x.shape[0], x.shape[1])
        let inner = x.count / max(a * b, 1)
        let output = Tensor(uninitialized: [b, a] + x.shape.dropFirst(2))
        let (px, po) = (x.floats.baseAddress!, output.floats.baseAddress!)
        Parallel.forRanges(count: b, threads: x.count < 1 << 16 ? 1 : threads) { range in
            for j in range {
                for i in 0..<a { (po + (j * a + i) * inner).update(from: px + (i * b + j) * inner, count: inner) }
            }
        }
        return output
    }
}
