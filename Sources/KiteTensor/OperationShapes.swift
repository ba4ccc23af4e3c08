/// Shape checks that every backend makes the same way for the same operation, so their errors read alike.
public enum OperationShapes {
    /// Rows, inner and output widths of a grouped product of `x` `[N, K]` by `weights` (`[M, K]` when
    /// `transposed`, else `[K, M]`) over row groups of `sizes`; dtypes are each backend's to check.
    public static func groupedProduct(_ x: Tensor, _ weights: [Tensor], _ sizes: [Int], transposed: Bool, operation: String) throws(KiteTensorError) -> (n: Int, k: Int, m: Int) {
        guard x.rank == 2, !weights.isEmpty, weights.count == sizes.count, sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == x.shape[0] else {
            throw .shapeMismatch(operation: operation, detail: "input \(x.shape), \(weights.count) weights, group sizes summing to \(sizes.reduce(0, +))")
        }
        let k = x.shape[1]
        let first = weights[0].shape
        guard first.count == 2 else { throw .shapeMismatch(operation: operation, detail: "weight 0 has shape \(first), expected rank 2") }
        let m = transposed ? first[0] : first[1]
        let expected = transposed ? [m, k] : [k, m]
        for (group, weight) in weights.enumerated() where weight.shape != expected {
            throw .shapeMismatch(operation: operation, detail: "weight \(group) has shape \(weight.shape), expected \(expected)")
        }
        return (x.shape[0], k, m)
    }

    /// Rows of `x` and the summing group of each part of `splitColumns(x, widths:, summingGroups:)`.
    public static func columnSplit(_ x: Tensor, widths: [Int], summingGroups: [Int]?) throws(KiteTensorError) -> (rows: Int, groups: [Int]) {
        let columns = x.shape.last ?? 0
        guard x.rank >= 1, !widths.isEmpty, widths.allSatisfy({ $0 >= 0 }), widths.reduce(0, +) == columns else {
            throw .shapeMismatch(operation: "splitColumns", detail: "widths \(widths) for input \(x.shape)")
        }
        let rows = x.count / max(columns, 1)
        let groups = summingGroups ?? Array(repeating: 1, count: widths.count)
        guard groups.count == widths.count, groups.allSatisfy({ $0 >= 1 && rows % $0 == 0 }) else {
            throw .invalidArgument(operation: "splitColumns", detail: "summing groups \(groups) for \(rows) rows and \(widths.count) parts")
        }
        return (rows, groups)
    }

    /// The layout of `concatenateColumns(parts)`: each part's width, how many times each of its rows repeats
    /// (a part with fewer rows is broadcast; its row count must divide the largest), the output's rows and
    /// total width, and the output shape (the leading dimensions of the part with the most rows).
    public static func columnConcatenation(_ parts: [Tensor]) throws(KiteTensorError)
        -> (widths: [Int], repeats: [Int], rows: Int, total: Int, shape: [Int])
    {
        guard !parts.isEmpty else { throw .invalidArgument(operation: "concatenateColumns", detail: "no parts") }
        guard parts.allSatisfy({ $0.rank >= 1 }) else { throw .shapeMismatch(operation: "concatenateColumns", detail: "scalar part") }
        let widths = parts.map { $0.shape.last ?? 0 }
        let rowCounts = zip(parts, widths).map { $0.count / max($1, 1) }
        let rows = rowCounts.max() ?? 0
        guard let widest = rowCounts.firstIndex(of: rows), rowCounts.allSatisfy({ $0 > 0 ? rows % $0 == 0 : rows == 0 }) else {
            throw .shapeMismatch(operation: "concatenateColumns", detail: "parts \(parts.map(\.shape)): every row count must divide the largest")
        }
        let total = widths.reduce(0, +)
        return (widths, rowCounts.map { rows / max($0, 1) }, rows, total, Array(parts[widest].shape.dropLast()) + [total])
    }
}
