/// A radix tree over full blocks of tokens: requests that start with the same tokens reuse the cached keys
/// and values of those blocks instead of recomputing them (SGLang's radix cache, at block granularity).
///
/// The tree holds one reference to each block it caches. Blocks whose only reference is the tree can be
/// evicted, least recently used leaves first, when the pool runs out.
final class PrefixCache {
    final class Node {
        let tokens: [Int32]
        let block: Int32
        weak var parent: Node?
        var children: [[Int32]: Node] = [:]
        var lastUse: UInt64 = 0

        init(tokens: [Int32], block: Int32, parent: Node?) {
            self.tokens = tokens
            self.block = block
            self.parent = parent
        }
    }

    let pool: BlockPool
    private let root = Node(tokens: [], block: -1, parent: nil)
    private var clock: UInt64 = 0
    private(set) var cachedBlockCount = 0

    init(pool: BlockPool) {
        self.pool = pool
    }

    /// Blocks caching the longest prefix of `tokens` made of at most `maximumBlocks` full blocks.
    /// Each returned block is retained for the caller.
    func match(_ tokens: [Int32], maximumBlocks: Int) -> [Int32] {
        clock += 1
        var node = root
        var blocks: [Int32] = []
        let size = pool.blockSize
        while blocks.count < maximumBlocks, (blocks.count + 1) * size <= tokens.count {
            let key = Array(tokens[(blocks.count * size)..<((blocks.count + 1) * size)])
            guard let child = node.children[key] else { break }
            child.lastUse = clock
            pool.retain(child.block)
            blocks.append(child.block)
            node = child
        }
        return blocks
    }

    /// Records the full blocks of a sequence: block `i` of `blocks` holds `tokens[i*size ..< (i+1)*size]`.
    /// Prefixes already cached keep their existing blocks.
    func insert(_ tokens: [Int32], blocks: [Int32]) {
        clock += 1
        var node = root
        let size = pool.blockSize
        for (i, block) in blocks.enumerated() where (i + 1) * size <= tokens.count {
            let key = Array(tokens[(i * size)..<((i + 1) * size)])
            if let child = node.children[key] {
                child.lastUse = clock
                node = child
                continue
            }
            let child = Node(tokens: key, block: block, parent: node)
            child.lastUse = clock
            node.children[key] = child
            pool.retain(block)
            cachedBlockCount += 1
            node = child
        }
    }

    /// Frees at least `count` blocks held only by the cache when there are that many, least recently used
    /// leaves first. Evicts an eighth of the cache at a time at least, so that a full pool does not pay a
    /// scan of the tree for every block it hands out. Returns how many were freed.
    @discardableResult
    func evict(_ count: Int) -> Int {
        var leaves: [Node] = []
        collectEvictableLeaves(root, into: &leaves)
        // Most recently used first, so the least recently used is popped from the end.
        leaves.sort { $0.lastUse > $1.lastUse }
        let goal = max(count, cachedBlockCount / 8)
        var freed = 0
        while freed < goal, let leaf = leaves.popLast() {
            guard let parent = leaf.parent else { continue }
            parent.children[leaf.tokens] = nil
            pool.release(leaf.block)
            cachedBlockCount -= 1
            freed += 1
            // The parent may have become an evictable leaf; it keeps its place in the LRU order.
            if parent !== root, parent.children.isEmpty, pool.references(parent.block) == 1 {
                let position = leaves.partitioningIndex { $0.lastUse <= parent.lastUse }
                leaves.insert(parent, at: position)
            }
        }
        return freed
    }

    private func collectEvictableLeaves(_ node: Node, into leaves: inout [Node]) {
        for child in node.children.values {
            if child.children.isEmpty {
                if pool.references(child.block) == 1 { leaves.append(child) }
            } else {
                collectEvictableLeaves(child, into: &leaves)
            }
        }
    }

    /// Drops every cached block (`/flush_cache`, or new weights that make cached keys stale).
    func clear() {
        func drop(_ node: Node) {
            for child in node.children.values {
                drop(child)
                pool.release(child.block)
            }
            node.children = [:]
        }
        drop(root)
        cachedBlockCount = 0
    }
}

extension Array {
    /// The first index whose element satisfies `belongsToSecondPartition`, for an array already partitioned
    /// by it (binary search).
    func partitioningIndex(where belongsToSecondPartition: (Element) -> Bool) -> Int {
        var low = 0, high = count
        while low < high {
            let middle = (low + high) / 2
            if belongsToSecondPartition(self[middle]) { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
