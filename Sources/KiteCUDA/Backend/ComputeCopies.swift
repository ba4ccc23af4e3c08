import KiteTensor
import Synchronization

/// bf16 copies of fp32 tensors (the master weights) for the matrix products of bf16 mode.
///
/// A weight is converted the first time a product reads it and the copy is kept while the fp32 tensor
/// lives. The copy stays exact because the backend sees every write to device memory: AdamW rewrites
/// the copy in the same pass as the weight, and every other in-place operation (`copy(into:)`, `fill`,
/// `scale`, `accumulate`, products into an existing tensor, ...) drops the copies of what it wrote.
final class ComputeCopies: @unchecked Sendable {
    struct Key: Hashable {
        let storage: ObjectIdentifier
        let offset: Int
        let count: Int
    }

    private struct Entry {
        weak var source: TensorStorage?
        let copy: Tensor
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var keysByStorage: [ObjectIdentifier: Set<Key>] = [:]
    }
    private let state = Mutex(State())

    static func key(_ tensor: Tensor) -> Key {
        Key(storage: ObjectIdentifier(tensor.storage), offset: tensor.byteOffset, count: tensor.count)
    }

    /// The kept copy of `tensor`, if there is one and its source is still the same storage.
    func lookup(_ tensor: Tensor) -> Tensor? {
        let key = Self.key(tensor)
        return state.withLock { state in
            guard let entry = state.entries[key] else { return nil }
            guard entry.source === tensor.storage else {
                Self.remove(key, from: &state)
                return nil
            }
            return entry.copy.reshaped(tensor.shape)
        }
    }

    func insert(_ tensor: Tensor, copy: Tensor) {
        let key = Self.key(tensor)
        state.withLock { state in
            // Drop copies whose weights are gone, so their memory is not held for nothing.
            for (stale, entry) in state.entries where entry.source == nil { Self.remove(stale, from: &state) }
            state.entries[key] = Entry(source: tensor.storage, copy: copy)
            state.keysByStorage[key.storage, default: []].insert(key)
        }
    }

    /// Forgets every copy of memory in `tensor`'s storage (after an in-place write to it).
    func invalidate(_ tensor: Tensor) {
        let id = ObjectIdentifier(tensor.storage)
        state.withLock { state in
            guard let keys = state.keysByStorage[id] else { return }
            for key in keys { Self.remove(key, from: &state) }
        }
    }

    /// Forgets the copies of other views of `tensor`'s storage, keeping `copy` (which the caller rewrites).
    func invalidateExcept(_ tensor: Tensor, keeping copy: Tensor?) {
        let id = ObjectIdentifier(tensor.storage), own = Self.key(tensor)
        state.withLock { state in
            guard let keys = state.keysByStorage[id] else { return }
            for key in keys where key != own || copy == nil { Self.remove(key, from: &state) }
        }
    }

    /// Bytes held by copies.
    var bytes: Int { state.withLock { $0.entries.values.reduce(0) { $0 + $1.copy.byteCount } } }

    func removeAll() { state.withLock { $0 = State() } }

    private static func remove(_ key: Key, from state: inout State) {
        state.entries[key] = nil
        state.keysByStorage[key.storage]?.remove(key)
        if state.keysByStorage[key.storage]?.isEmpty == true { state.keysByStorage[key.storage] = nil }
    }
}
