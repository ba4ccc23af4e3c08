/// Fixed-size blocks of key/value cache slots with reference counts.
///
/// A block holds `blockSize` consecutive tokens of one sequence. Several sequences (the samples of a GRPO
/// group, or requests sharing a prompt through the prefix cache) may reference the same block; it returns
/// to the free list when the last reference is released.
final class BlockPool {
    let blockSize: Int
    let blockCount: Int
    private(set) var referenceCounts: [Int32]
    private var freeBlocks: [Int32]

    init(blockCount: Int, blockSize: Int) {
        self.blockCount = blockCount
        self.blockSize = blockSize
        referenceCounts = [Int32](repeating: 0, count: blockCount)
        // Popping from the end hands out low block ids first, which keeps tests readable.
        freeBlocks = (0..<Int32(blockCount)).reversed()
    }

    var freeCount: Int { freeBlocks.count }
    var usedCount: Int { blockCount - freeBlocks.count }
    /// The most blocks in use at once since the last `resetPeak`.
    private(set) var peakUsedCount = 0

    func resetPeak() { peakUsedCount = usedCount }

    /// A fresh block with one reference, or nil when none is free.
    func allocate() -> Int32? {
        guard let block = freeBlocks.popLast() else { return nil }
        referenceCounts[Int(block)] = 1
        peakUsedCount = max(peakUsedCount, usedCount)
        return block
    }

    func retain(_ block: Int32) {
        precondition(referenceCounts[Int(block)] > 0, "retain of free block \(block)")
        referenceCounts[Int(block)] += 1
    }

    func release(_ block: Int32) {
        precondition(referenceCounts[Int(block)] > 0, "release of free block \(block)")
        referenceCounts[Int(block)] -= 1
        if referenceCounts[Int(block)] == 0 { freeBlocks.append(block) }
    }

    func references(_ block: Int32) -> Int { Int(referenceCounts[Int(block)]) }
}
