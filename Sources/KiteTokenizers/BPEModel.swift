/// A byte-level BPE model: the vocabulary and the ranked merges, applied to one pre-tokenized piece at a time.
///
/// A piece starts as one symbol per byte (the token spelling that byte); then, as long as some adjacent pair
/// has a merge, the pair with the lowest rank (leftmost among equals) is joined into the merge's token. Short
/// pieces keep their pair ranks in an array and rescan it; long ones (runs of spaces, minified code) use a
/// heap over a linked list, so a piece of n bytes costs O(n log n), not O(n^2).
struct BPEModel: Sendable {
    /// Token spellings (UTF-8, as in the vocabulary file) to ids.
    let vocabulary: ByteStringTable
    let merges: MergeTable
    /// The id of the token spelling each byte, or -1 when the vocabulary lacks it (such bytes are dropped, as
    /// HF does for a BPE without an unknown token).
    let byteTokens: [Int32]
    /// Look a whole piece up before merging (Llama 3's `ignore_merges`).
    let ignoreMerges: Bool

    /// Pieces longer than this use the heap.
    static let heapThreshold = 48

    /// Appends the ids of `piece` (bytes of the text) to `ids`.
    func tokenize(_ piece: UnsafeBufferPointer<UInt8>, into ids: inout [Int], scratch: inout BPEScratch) {
        if piece.isEmpty { return }
        if ignoreMerges, let id = wholePieceID(piece, scratch: &scratch) {
            ids.append(id)
            return
        }
        scratch.symbols.removeAll(keepingCapacity: true)
        for byte in piece {
            let token = byteTokens[Int(byte)]
            if token >= 0 { scratch.symbols.append(token) }
        }
        let count = scratch.symbols.count
        if count <= 1 {
            if count == 1 { ids.append(Int(scratch.symbols[0])) }
            return
        }
        if count <= BPEModel.heapThreshold {
            mergeByScanning(&scratch)
            for symbol in scratch.symbols { ids.append(Int(symbol)) }
        } else {
            mergeWithHeap(&scratch, into: &ids)
        }
    }

    private func wholePieceID(_ piece: UnsafeBufferPointer<UInt8>, scratch: inout BPEScratch) -> Int? {
        scratch.spelling.removeAll(keepingCapacity: true)
        for byte in piece { scratch.spelling.append(contentsOf: ByteLevel.utf8ForByte[Int(byte)]) }
        return scratch.spelling.withUnsafeBufferPointer { vocabulary.lookup($0) }
    }

    private func mergeByScanning(_ scratch: inout BPEScratch) {
        scratch.ranks.removeAll(keepingCapacity: true)
        for index in 0..<(scratch.symbols.count - 1) {
            scratch.ranks.append(merges.lookup(scratch.symbols[index], scratch.symbols[index + 1]))
        }
        while true {
            // Lowest (rank, result) packed value; the leftmost wins ties because the scan keeps the first.
            var best = UInt64.max
            var bestIndex = -1
            for index in 0..<scratch.ranks.count where scratch.ranks[index] < best {
                best = scratch.ranks[index]
                bestIndex = index
            }
            if bestIndex < 0 { return }
            scratch.symbols[bestIndex] = Int32(truncatingIfNeeded: best & 0xFFFF_FFFF)
            scratch.symbols.remove(at: bestIndex + 1)
            scratch.ranks.remove(at: bestIndex)
            if bestIndex > 0 {
                scratch.ranks[bestIndex - 1] = merges.lookup(scratch.symbols[bestIndex - 1], scratch.symbols[bestIndex])
            }
            if bestIndex < scratch.ranks.count {
                scratch.ranks[bestIndex] = merges.lookup(scratch.symbols[bestIndex], scratch.symbols[bestIndex + 1])
            }
        }
    }

    /// The heap holds (rank, left position) pairs; an entry is stale when its left symbol was merged away or
    /// its pair changed since it was pushed, which is checked when it is popped.
    private func mergeWithHeap(_ scratch: inout BPEScratch, into ids: inout [Int]) {
        let count = scratch.symbols.count
        scratch.next.removeAll(keepingCapacity: true)
        scratch.previous.removeAll(keepingCapacity: true)
        for index in 0..<count {
            scratch.next.append(Int32(index + 1 < count ? index + 1 : -1))
            scratch.previous.append(Int32(index - 1))
        }
        scratch.heap.removeAll(keepingCapacity: true)
        for index in 0..<(count - 1) {
            let merge = merges.lookup(scratch.symbols[index], scratch.symbols[index + 1])
            if merge != UInt64.max { heapPush(&scratch.heap, rank: merge >> 32, position: index) }
        }
        while let (rank, position) = heapPop(&scratch.heap) {
            let right = Int(scratch.next[position])
            // Removed symbols have previous == -2.
            guard scratch.previous[position] != -2, right >= 0 else { continue }
            let merge = merges.lookup(scratch.symbols[position], scratch.symbols[right])
            guard merge != UInt64.max, merge >> 32 == rank else { continue }
            scratch.symbols[position] = Int32(truncatingIfNeeded: merge & 0xFFFF_FFFF)
            let afterRight = Int(scratch.next[right])
            scratch.next[position] = Int32(afterRight)
            scratch.previous[right] = -2
            if afterRight >= 0 { scratch.previous[afterRight] = Int32(position) }
            let before = Int(scratch.previous[position])
            if before >= 0 {
                let left = merges.lookup(scratch.symbols[before], scratch.symbols[position])
                if left != UInt64.max { heapPush(&scratch.heap, rank: left >> 32, position: before) }
            }
            if afterRight >= 0 {
                let next = merges.lookup(scratch.symbols[position], scratch.symbols[afterRight])
                if next != UInt64.max { heapPush(&scratch.heap, rank: next >> 32, position: position) }
            }
        }
        var index = 0
        while index >= 0 {
            ids.append(Int(scratch.symbols[index]))
            index = Int(scratch.next[index])
        }
    }

    /// Min-heap of (rank << 32 | position): lower rank first, then leftmost position.
    private func heapPush(_ heap: inout [UInt64], rank: UInt64, position: Int) {
        heap.append(rank << 32 | UInt64(position))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if heap[parent] <= heap[child] { break }
            heap.swapAt(parent, child)
            child = parent
        }
    }

    private func heapPop(_ heap: inout [UInt64]) -> (UInt64, Int)? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1
                if left >= heap.count { break }
                var smallest = left
                if left + 1 < heap.count, heap[left + 1] < heap[left] { smallest = left + 1 }
                if heap[parent] <= heap[smallest] { break }
                heap.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return (top >> 32, Int(top & 0xFFFF_FFFF))
    }
}

/// Reusable buffers for BPE, one per encode call.
struct BPEScratch {
    var symbols: [Int32] = []
    var ranks: [UInt64] = []
    var next: [Int32] = []
    var previous: [Int32] = []
    var heap: [UInt64] = []
    var spelling: [UInt8] = []
}

extension BPEModel {
    /// Builds the merge table from spellings. Every merge's parts and their concatenation must be in the
    /// vocabulary (HF refuses such a file too).
    init(
        vocabulary: ByteStringTable, merges spelledMerges: [(left: String, right: String)], unknownToken: String?,
        ignoreMerges: Bool, source: String, mergesField: String
    ) throws(TokenizerError) {
        var merges = MergeTable(capacityFor: spelledMerges.count)
        var joined: [UInt8] = []
        for (rank, merge) in spelledMerges.enumerated() {
            guard let left = vocabulary.lookup(merge.left) else {
                throw TokenizerError(.invalidField, source: source, field: "\(mergesField)[\(rank)]",
                                     "\(quoted(merge.left)) is not in the vocabulary")
            }
            guard let right = vocabulary.lookup(merge.right) else {
                throw TokenizerError(.invalidField, source: source, field: "\(mergesField)[\(rank)]",
                                     "\(quoted(merge.right)) is not in the vocabulary")
            }
            joined.removeAll(keepingCapacity: true)
            joined.append(contentsOf: merge.left.utf8)
            joined.append(contentsOf: merge.right.utf8)
            guard let result = vocabulary.lookup(joined) else {
                throw TokenizerError(.invalidField, source: source, field: "\(mergesField)[\(rank)]",
                                     "the merged token \(quoted(merge.left + merge.right)) is not in the vocabulary")
            }
            merges.insert(left: Int32(left), right: Int32(right), rank: Int32(rank), result: Int32(result))
        }
        var unknownID: Int32 = -1
        if let unknownToken {
            guard let id = vocabulary.lookup(unknownToken) else {
                throw TokenizerError(.invalidField, source: source, field: "model.unk_token",
                                     "\(quoted(unknownToken)) is not in the vocabulary")
            }
            unknownID = Int32(id)
        }
        var byteTokens = [Int32](repeating: unknownID, count: 256)
        for byte in 0..<256 {
            if let id = vocabulary.lookup(ByteLevel.utf8ForByte[byte]) { byteTokens[byte] = Int32(id) }
        }
        self.init(vocabulary: vocabulary, merges: merges, byteTokens: byteTokens, ignoreMerges: ignoreMerges)
    }
}
