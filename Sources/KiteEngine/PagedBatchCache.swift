import KiteModels
import KiteTensor

/// The paged cache as one forward step sees it: where each row's keys and values go, and which blocks hold
/// each sequence's context. Implements the model's `KeyValueCache` with the backend's paged ops, from host
/// lists (any mix of prefill chunks and decode tokens) or, for decode steps, from i32 tensors already on the
/// device (one query row per sequence; no host copy per layer, so the step can be captured as a graph). For
/// latent attention (a layout with no value rows) `valueCaches` are the key tensors themselves, so
/// `attendLatent`'s default stores each row once and reads it as key and as value.
final class PagedBatchCache: KeyValueCache {
    enum Metadata {
        case host(slots: [Int32], blockTables: [[Int32]], contextLengths: [Int], queries: PackedSequences)
        /// `slots` `[B]`, `blockTable` `[B, maxBlocks]`, `contextLengths` `[B]`; every length at most `maxContextLength`.
        case device(slots: Tensor, blockTable: Tensor, contextLengths: Tensor, maxContextLength: Int)
    }

    let keyCaches: [Tensor]
    let valueCaches: [Tensor]
    let blockSize: Int
    let metadata: Metadata

    init(keyCaches: [Tensor], valueCaches: [Tensor], blockSize: Int, metadata: Metadata) {
        self.keyCaches = keyCaches
        self.valueCaches = valueCaches
        self.blockSize = blockSize
        self.metadata = metadata
    }

    convenience init(keyCaches: [Tensor], valueCaches: [Tensor], slots: [Int32], blockTables: [[Int32]], blockSize: Int, contextLengths: [Int], queries: PackedSequences) {
        self.init(keyCaches: keyCaches, valueCaches: valueCaches, blockSize: blockSize,
                  metadata: .host(slots: slots, blockTables: blockTables, contextLengths: contextLengths, queries: queries))
    }

    /// Packed q/k/v rows: norms, RoPE and the store of keys and values in one backend operation
    /// (`rotateAndCache`), then attention as `attend`. Host slot lists are checked and uploaded first.
    func attend(layer: Int, projections: PackedAttentionProjections, scale: Float, backend: any Backend) throws -> Tensor {
        let (keyCache, valueCache) = (keyCaches[layer], valueCaches[layer])
        switch metadata {
        case .host(let slots, let blockTables, let contextLengths, let queries):
            for (position, slot) in slots.enumerated() where slot < 0 || Int(slot) >= keyCache.shape[0] {
                throw KiteTensorError.indexOutOfRange(operation: "storeKeyValues", index: Int(slot), limit: keyCache.shape[0], position: position)
            }
            let query = try backend.rotateAndCache(projections, keyCache: keyCache, valueCache: valueCache, slotIndices: try backend.upload(Tensor(int32: slots)))
            return try backend.pagedAttention(
                query: query, keyCache: keyCache, valueCache: valueCache, blockTables: blockTables,
                blockSize: blockSize, contextLengths: contextLengths, queries: queries, scale: scale)
        case .device(let slots, let blockTable, let contextLengths, let maxContextLength):
            let query = try backend.rotateAndCache(projections, keyCache: keyCache, valueCache: valueCache, slotIndices: slots)
            return try backend.pagedDecodeAttention(
                query: query, keyCache: keyCache, valueCache: valueCache, blockTable: blockTable,
                contextLengths: contextLengths, blockSize: blockSize, maxContextLength: maxContextLength, scale: scale)
        }
    }

    func attend(layer: Int, query: Tensor, key: Tensor, value: Tensor, scale: Float, backend: any Backend) throws -> Tensor {
        switch metadata {
        case .host(let slots, let blockTables, let contextLengths, let queries):
            try backend.storeKeyValues(key: key, value: value, keyCache: keyCaches[layer], valueCache: valueCaches[layer], slots: slots)
            return try backend.pagedAttention(
                query: query, keyCache: keyCaches[layer], valueCache: valueCaches[layer], blockTables: blockTables,
                blockSize: blockSize, contextLengths: contextLengths, queries: queries, scale: scale)
        case .device(let slots, let blockTable, let contextLengths, let maxContextLength):
            try backend.storeKeyValues(key: key, value: value, keyCache: keyCaches[layer], valueCache: valueCaches[layer], slotIndices: slots)
            return try backend.pagedDecodeAttention(
                query: query, keyCache: keyCaches[layer], valueCache: valueCaches[layer], blockTable: blockTable,
                contextLengths: contextLengths, blockSize: blockSize, maxContextLength: maxContextLength, scale: scale)
        }
    }
}
