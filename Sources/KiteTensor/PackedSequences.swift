/// How a batch of variable-length sequences is laid out back to back, with no padding.
///
/// `cuSeqlens` are prefix sums: sequence `i` occupies rows `cuSeqlens[i] ..< cuSeqlens[i + 1]`.
public struct PackedSequences: Sendable, Equatable {
    public let cuSeqlens: [Int32]

    /// Validates that the offsets start at 0 and never decrease.
    public init(cuSeqlens: [Int32]) throws(KiteTensorError) {
        guard let first = cuSeqlens.first, first == 0 else {
            throw .invalidArgument(operation: "PackedSequences", detail: "cuSeqlens must start with 0, got \(cuSeqlens.prefix(4))")
        }
        for i in 1..<cuSeqlens.count where cuSeqlens[i] < cuSeqlens[i - 1] {
            throw .invalidArgument(operation: "PackedSequences", detail: "cuSeqlens decreases at index \(i): \(cuSeqlens[i - 1]) -> \(cuSeqlens[i])")
        }
        self.cuSeqlens = cuSeqlens
    }

    /// The layout of sequences with these lengths.
    public init(lengths: [Int]) {
        var offsets: [Int32] = [0]
        offsets.reserveCapacity(lengths.count + 1)
        for length in lengths { offsets.append(offsets[offsets.count - 1] + Int32(length)) }
        self.cuSeqlens = offsets
    }

    public var count: Int { cuSeqlens.count - 1 }
    public var totalLength: Int { Int(cuSeqlens[cuSeqlens.count - 1]) }
    public func range(_ sequence: Int) -> Range<Int> { Int(cuSeqlens[sequence])..<Int(cuSeqlens[sequence + 1]) }
    public var lengths: [Int] { (0..<count).map { range($0).count } }

    /// Position of each row within its own sequence (restarting at `start` for every sequence).
    public func positions(startingAt starts: [Int]? = nil) -> [Int32] {
        var positions = [Int32](repeating: 0, count: totalLength)
        for s in 0..<count {
            let base = Int32(starts?[s] ?? 0)
            for (offset, row) in range(s).enumerated() { positions[row] = base + Int32(offset) }
        }
        return positions
    }
}

/// Which keys each query row may attend to.
///
/// Queries and keys are both packed; sequence `i` has `q` rows and `k >= q` key rows. Attention is causal and
/// aligned at the end: query `j` of a sequence sees keys `0 ... (k - q) + j`, so the same layout serves
/// training (q == k) and prefill after a cached prefix (the prefix's keys come first).
public struct AttentionLayout: Sendable, Equatable {
    public let queries: PackedSequences
    public let keys: PackedSequences
    public let causal: Bool

    public init(queries: PackedSequences, keys: PackedSequences, causal: Bool = true) throws(KiteTensorError) {
        guard queries.count == keys.count else {
            throw .invalidArgument(operation: "AttentionLayout", detail: "\(queries.count) query sequences but \(keys.count) key sequences")
        }
        for s in 0..<queries.count where queries.range(s).count > keys.range(s).count {
            throw .invalidArgument(operation: "AttentionLayout", detail: "sequence \(s) has more queries (\(queries.range(s).count)) than keys (\(keys.range(s).count))")
        }
        self.queries = queries
        self.keys = keys
        self.causal = causal
    }

    /// Self-attention over packed sequences (training, or prefill with no cache).
    public init(selfAttention sequences: PackedSequences, causal: Bool = true) {
        self.queries = sequences
        self.keys = sequences
        self.causal = causal
    }
}
