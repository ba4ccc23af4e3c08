import Synchronization

/// Token ids of recently seen pieces, shared by all encode calls of a tokenizer, as HF's BPE keeps a word
/// cache: text repeats words, and merging a word costs a dozen lookups in a table of megabytes.
///
/// Encoding must not wait on other threads, so the cache is used only when its lock is free; a piece that
/// misses it is merged as usual. When full, it starts over.
final class PieceCache: Sendable {
    private struct Storage {
        var table = ByteStringTable(expectedCount: PieceCache.capacity)
        /// For entry i (the table's ids are entry numbers): its token ids are `ids[starts[i]..<starts[i + 1]]`.
        var starts: [Int] = [0]
        var ids: [Int32] = []
    }

    /// Pieces longer than this are not cached (rare, and they would crowd out words).
    static let maximumPieceLength = 48
    static let capacity = 32_768

    private let storage = Mutex(Storage())

    /// Appends the cached ids of `piece` to `output` and returns true, or returns false.
    func append(_ piece: UnsafeBufferPointer<UInt8>, to output: inout [Int]) -> Bool {
        storage.withLockIfAvailable { storage -> Bool in
            guard let entry = storage.table.lookup(piece) else { return false }
            for index in storage.starts[entry]..<storage.starts[entry + 1] { output.append(Int(storage.ids[index])) }
            return true
        } ?? false
    }

    /// Remembers that `piece` tokenizes to `tokens`.
    func insert(_ piece: UnsafeBufferPointer<UInt8>, tokens: ArraySlice<Int>) {
        _ = storage.withLockIfAvailable { storage in
            if storage.table.count >= PieceCache.capacity { storage = Storage() }
            let entry = storage.table.count
            guard storage.table.insert(piece, id: entry) == nil else { return }
            for token in tokens { storage.ids.append(Int32(truncatingIfNeeded: token)) }
            storage.starts.append(storage.ids.count)
        }
    }
}
