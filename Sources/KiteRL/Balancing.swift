/// slime's `karmarkar_karp` (`slime/utils/seqlen_balancing.py`, from verl): the largest differencing
/// method over `k` sets. Items are sorted ascending by (weight, index); with `equalSize` consecutive
/// k-tuples seed k-way states so every set ends with the same number of items, else each item is its
/// own state. The state with the largest spread (max set sum − min set sum; ties: the larger largest set)
/// is merged with the next by pairing its i-th largest set with the other's i-th smallest, until one
/// state remains. The heap is CPython's `heapq` step for step, so ties resolve as in slime.
/// Returns the sets in descending order of their sums, each as item indices in insertion order.
public func karmarkarKarp(weights: [Double], partitions k: Int, equalSize: Bool) throws(RLError) -> [[Int]] {
    guard k >= 1 else { throw .scheduling("cannot partition into \(k) sets") }
    if equalSize && weights.count % k != 0 {
        throw .scheduling("\(weights.count) items cannot be split into \(k) equal-size sets")
    }
    let sorted = weights.indices.sorted { (weights[$0], $0) < (weights[$1], $1) }
    var heap = PythonHeap<KKState>()
    if equalSize {
        var offset = 0
        while offset < sorted.count {
            heap.push(KKState(items: sorted[offset..<offset + k].map { ($0, weights[$0]) }, k: k))
            offset += k
        }
    } else {
        for i in sorted { heap.push(KKState(items: [(i, weights[i])], k: k)) }
    }
    while heap.count > 1 {
        guard var first = heap.pop(), let second = heap.pop() else { break }
        first.merge(second)
        heap.push(first)
    }
    guard let final = heap.pop() else { return Array(repeating: [], count: k) }
    return final.sets.map { $0.items.map(\.index) }
}

/// slime's `get_seqlen_balanced_partitions`: Karmarkar-Karp, then each set's indices sorted; every set
/// must be non-empty.
public func balancedPartitions(weights: [Double], partitions k: Int, equalSize: Bool) throws(RLError) -> [[Int]] {
    guard weights.count >= k else { throw .scheduling("\(weights.count) items cannot fill \(k) non-empty sets") }
    let sets = try karmarkarKarp(weights: weights, partitions: k, equalSize: equalSize)
    if let empty = sets.firstIndex(where: \.isEmpty) { throw .scheduling("set \(empty) of \(k) is empty") }
    return sets.map { $0.sorted() }
}

struct KKSet {
    var sum: Double = 0
    var items: [(index: Int, value: Double)] = []

    /// Python's `Set.__lt__`: by sum, then item count, then the item lists lexicographically.
    static func less(_ a: KKSet, _ b: KKSet) -> Bool {
        if a.sum != b.sum { return a.sum < b.sum }
        if a.items.count != b.items.count { return a.items.count < b.items.count }
        for (x, y) in zip(a.items, b.items) {
            if x.index != y.index { return x.index < y.index }
            if x.value != y.value { return x.value < y.value }
        }
        return false
    }
}

struct KKState: PythonLessThan {
    var sets: [KKSet]

    init(items: [(Int, Double)], k: Int) {
        sets = Array(repeating: KKSet(), count: k)
        for (i, item) in items.enumerated() {
            sets[i].items.append((item.0, item.1))
            sets[i].sum += item.1
        }
        sortDescending()
    }

    /// `sorted(sets, reverse=True)`: stable, so equal sets keep their order.
    mutating func sortDescending() {
        sets = sets.enumerated().sorted { lhs, rhs in
            if KKSet.less(rhs.element, lhs.element) { return true }
            if KKSet.less(lhs.element, rhs.element) { return false }
            return lhs.offset < rhs.offset
        }.map(\.element)
    }

    mutating func merge(_ other: KKState) {
        let k = sets.count
        for i in 0..<k {
            for item in other.sets[k - 1 - i].items {
                sets[i].items.append(item)
                sets[i].sum += item.value
            }
        }
        sortDescending()
    }

    var spread: Double { sets[0].sum - sets[sets.count - 1].sum }

    /// The largest spread pops first; on a tie, the state whose largest set is larger.
    static func pythonLess(_ a: KKState, _ b: KKState) -> Bool {
        if a.spread != b.spread { return a.spread > b.spread }
        return KKSet.less(b.sets[0], a.sets[0])
    }
}

protocol PythonLessThan {
    static func pythonLess(_ a: Self, _ b: Self) -> Bool
}

/// CPython's `heapq` (`heappush` / `heappop` with `_siftdown` / `_siftup`), using only `<`, so that
/// elements that compare equal come out in the same order as in Python.
struct PythonHeap<Element: PythonLessThan> {
    private(set) var storage: [Element] = []
    var count: Int { storage.count }

    mutating func push(_ item: Element) {
        storage.append(item)
        siftDown(start: 0, position: storage.count - 1)
    }

    mutating func pop() -> Element? {
        guard let last = storage.popLast() else { return nil }
        guard !storage.isEmpty else { return last }
        let top = storage[0]
        storage[0] = last
        siftUp(0)
        return top
    }

    private mutating func siftDown(start: Int, position: Int) {
        var position = position
        let item = storage[position]
        while position > start {
            let parent = (position - 1) >> 1
            if Element.pythonLess(item, storage[parent]) {
                storage[position] = storage[parent]
                position = parent
                continue
            }
            break
        }
        storage[position] = item
    }

    private mutating func siftUp(_ start: Int) {
        var position = start
        let end = storage.count
        let item = storage[position]
        var child = 2 * position + 1
        while child < end {
            let right = child + 1
            if right < end && !Element.pythonLess(storage[child], storage[right]) { child = right }
            storage[position] = storage[child]
            position = child
            child = 2 * position + 1
        }
        storage[position] = item
        siftDown(start: start, position: position)
    }
}

/// The model shape slime's `calculate_fwd_flops` (`slime/utils/flops_utils.py`) reads, for
/// `--balance-data` workloads. Multi-latent attention is not modelled (dense GQA attention only).
public struct FlopsModel: Sendable, Equatable {
    public var hiddenSize: Int
    public var numAttentionHeads: Int
    public var numQueryGroups: Int
    /// Per-head dimension (Megatron's `kv_channels`).
    public var kvChannels: Int
    public var ffnHiddenSize: Int
    public var numLayers: Int
    public var vocabSize: Int
    /// MoE: routed expert FFN size, experts per token, shared expert FFN size, and which layers are MoE
    /// (Megatron's `moe_layer_freq` as a list of 0/1); nil for a dense model.
    public var moe: MoE?

    public struct MoE: Sendable, Equatable {
        public var ffnHiddenSize: Int
        public var routerTopK: Int
        public var sharedExpertIntermediateSize: Int
        public var layerIsMoE: [Bool]?

        public init(ffnHiddenSize: Int, routerTopK: Int, sharedExpertIntermediateSize: Int = 0, layerIsMoE: [Bool]? = nil) {
            self.ffnHiddenSize = ffnHiddenSize
            self.routerTopK = routerTopK
            self.sharedExpertIntermediateSize = sharedExpertIntermediateSize
            self.layerIsMoE = layerIsMoE
        }
    }

    public init(hiddenSize: Int, numAttentionHeads: Int, numQueryGroups: Int, kvChannels: Int, ffnHiddenSize: Int, numLayers: Int, vocabSize: Int, moe: MoE? = nil) {
        self.hiddenSize = hiddenSize
        self.numAttentionHeads = numAttentionHeads
        self.numQueryGroups = numQueryGroups
        self.kvChannels = kvChannels
        self.ffnHiddenSize = ffnHiddenSize
        self.numLayers = numLayers
        self.vocabSize = vocabSize
        self.moe = moe
    }

    /// slime's `calculate_fwd_flops([seqlen], args)`, evaluated in the same order with Python's
    /// int/float promotions (integer products, float attention term).
    public func forwardFlops(sequenceLength s: Int) -> Double {
        let h = hiddenSize, heads = numAttentionHeads
        func layer(_ ffn: Int) -> Double {
            let q = 2 * s * h * heads * kvChannels
            let kv = 2 * 2 * s * h * numQueryGroups * kvChannels
            var attention = Double(2 * heads * s * s * kvChannels) / 2
            attention += Double(heads * s * s * kvChannels)
            let output = 2 * s * h * h
            let mlp = 2 * s * h * ffn * 3
            return ((Double(q + kv) + attention) + Double(output)) + Double(mlp)
        }
        var total = 0.0
        let dense: Int, moeLayers: Int
        if let moe {
            if let pattern = moe.layerIsMoE {
                dense = pattern.filter { !$0 }.count
                moeLayers = pattern.count - dense
            } else {
                dense = 0
                moeLayers = numLayers
            }
        } else {
            dense = numLayers
            moeLayers = 0
        }
        if dense > 0 { total += layer(ffnHiddenSize) * Double(dense) }
        if moeLayers > 0, let moe {
            total += layer(moe.ffnHiddenSize * moe.routerTopK + moe.sharedExpertIntermediateSize) * Double(moeLayers)
        }
        total += Double(2 * s * h * vocabSize)
        return total
    }
}
