/// Open-addressing hash tables for the tokenizer's hot lookups. Swift's `Dictionary` hashes with SipHash and
/// compares `String` keys by canonical equivalence ("é" equals "e\u{301}"); token lookups need byte equality
/// and speed, so these tables hash bytes and integers directly.

/// Byte strings (stored once in an arena) to ids.
struct ByteStringTable: Sendable {
    private(set) var arena: [UInt8] = []
    private(set) var offsets: [Int] = [0]
    private var ids: [Int32] = []
    private var slots: [Int32]
    private var mask: Int

    init(expectedCount: Int) {
        var capacity = 16
        while capacity < expectedCount * 2 { capacity <<= 1 }
        slots = Array(repeating: -1, count: capacity)
        mask = capacity - 1
    }

    var count: Int { ids.count }

    /// FNV-1a with a final mix; byte strings here are short.
    @inline(__always)
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        hash ^= hash >> 29
        hash = hash &* 0xbf58_476d_1ce4_e5b9
        hash ^= hash >> 32
        return Int(truncatingIfNeeded: hash)
    }

    /// Inserts `bytes` -> `id`; returns the id already stored when the bytes are present (nothing changes).
    @discardableResult
    mutating func insert(_ bytes: some Collection<UInt8>, id: Int) -> Int? {
        let key = Array(bytes)
        if let existing = key.withUnsafeBufferPointer({ lookup($0) }) { return existing }
        if (ids.count + 1) * 2 > slots.count { grow() }
        let entry = Int32(ids.count)
        arena.append(contentsOf: key)
        offsets.append(arena.count)
        ids.append(Int32(truncatingIfNeeded: id))
        place(entry, hash: key.withUnsafeBufferPointer { ByteStringTable.hash($0) })
        return nil
    }

    private mutating func place(_ entry: Int32, hash: Int) {
        var slot = hash & mask
        while slots[slot] >= 0 { slot = (slot + 1) & mask }
        slots[slot] = entry
    }

    private mutating func grow() {
        let capacity = slots.count * 2
        slots = Array(repeating: -1, count: capacity)
        mask = capacity - 1
        for entry in 0..<ids.count {
            let hash = arena.withUnsafeBufferPointer { buffer in
                ByteStringTable.hash(UnsafeBufferPointer(rebasing: buffer[offsets[entry]..<offsets[entry + 1]]))
            }
            place(Int32(entry), hash: hash)
        }
    }

    @inline(__always)
    func lookup(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        var slot = ByteStringTable.hash(bytes) & mask
        return arena.withUnsafeBufferPointer { arena in
            while true {
                let entry = Int(slots[slot])
                if entry < 0 { return nil }
                let start = offsets[entry]
                let length = offsets[entry + 1] - start
                if length == bytes.count {
                    var equal = true
                    for index in 0..<length where arena[start + index] != bytes[index] {
                        equal = false
                        break
                    }
                    if equal { return Int(ids[entry]) }
                }
                slot = (slot + 1) & mask
            }
        }
    }

    func lookup(_ text: String) -> Int? {
        var text = text
        return text.withUTF8 { lookup($0) }
    }

    func lookup(_ bytes: [UInt8]) -> Int? {
        bytes.withUnsafeBufferPointer { lookup($0) }
    }
}

/// Pairs of token ids to the merge that joins them: its rank (lower merges first) and the id it produces.
/// Key and value sit side by side, so a probe touches one cache line: with a 150k-merge vocabulary the table
/// is several megabytes and lookups are bound by memory latency.
struct MergeTable: Sendable {
    /// Slot i holds its key at 2i and its value at 2i+1.
    private var slots: [UInt64]
    private let mask: Int
    private static let empty = UInt64.max

    init(capacityFor count: Int) {
        var capacity = 16
        while capacity < count * 2 { capacity <<= 1 }
        slots = Array(repeating: MergeTable.empty, count: capacity * 2)
        mask = capacity - 1
    }

    @inline(__always)
    private static func slot(_ key: UInt64, _ mask: Int) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 20) & mask
    }

    /// Adds a merge unless the pair already has one (the earlier, lower-ranked merge wins).
    mutating func insert(left: Int32, right: Int32, rank: Int32, result: Int32) {
        let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
        var slot = MergeTable.slot(key, mask)
        while slots[2 * slot] != MergeTable.empty {
            if slots[2 * slot] == key { return }
            slot = (slot + 1) & mask
        }
        slots[2 * slot] = key
        slots[2 * slot + 1] = UInt64(UInt32(bitPattern: rank)) << 32 | UInt64(UInt32(bitPattern: result))
    }

    /// The merge of `left` then `right` as (rank, result), packed: rank in the high half. `UInt64.max` when none.
    @inline(__always)
    func lookup(_ left: Int32, _ right: Int32) -> UInt64 {
        let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
        var slot = MergeTable.slot(key, mask)
        return slots.withUnsafeBufferPointer { slots in
            while true {
                let stored = slots[2 * slot]
                if stored == key { return slots[2 * slot + 1] }
                if stored == MergeTable.empty { return UInt64.max }
                slot = (slot + 1) & mask
            }
        }
    }
}
