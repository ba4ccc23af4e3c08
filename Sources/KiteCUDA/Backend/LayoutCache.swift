import KiteTensor
import Synchronization

/// Device copies of a packed layout's offsets and the tile schedules of the attention kernels, uploaded
/// once per distinct layout (every layer of a step reuses them).
final class LayoutCache: @unchecked Sendable {
    struct Key: Hashable {
        let queries: [Int32]
        let keys: [Int32]
        let causal: Bool
    }

    struct Entry {
        let queryOffsets: Tensor
        let keyOffsets: Tensor
        /// (sequence, first query row) per forward tile, most work first.
        let forwardTiles: Tensor
        let forwardTileCount: Int
        /// (sequence, first key row) per dK/dV tile, most work first.
        let backwardTiles: Tensor
        let backwardTileCount: Int
    }

    private let state = Mutex<[Key: Entry]>([:])

    func entry(for layout: AttentionLayout, make: () throws -> Entry) throws -> Entry {
        let key = Key(queries: layout.queries.cuSeqlens, keys: layout.keys.cuSeqlens, causal: layout.causal)
        if let entry = state.withLock({ $0[key] }) { return entry }
        let entry = try make()
        state.withLock { entries in
            if entries.count >= 16 { entries.removeAll() }
            entries[key] = entry
        }
        return entry
    }
}
