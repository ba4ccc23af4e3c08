import KiteModels
import KiteTensor

/// The paged cache as one forward step sees it: where each row's keys and values go, and which blocks hold
/// each sequence's context. Implements the model's `KeyValueCache` with the backend's paged ops. For latent
/// attention (a layout with no value rows) `valueCaches` are the key tensors themselves, so `attendLatent`'s
/// default stores each row once and reads it as key and as value.
final class PagedBatchCache: KeyValueCache {
    let keyCaches: [Tensor]
    let valueCaches: [Tensor]
    let slots: [Int32]
    let blockTables: [[Int32]]
    let blockSize: Int
    let contextLengths: [Int]
    let queries: PackedSequences

    init(keyCaches: [Tensor], valueCaches: [Tensor], slots: [Int32], blockTables: [[Int32]], blockSize: Int, contextLengths: [Int], queries: PackedSequences) {
        self.keyCaches = keyCaches
        self.valueCaches = valueCaches
        self.slots = slots
        self.blockTables = blockTables
        self.blockSize = blockSize
        self.contextLengths = contextLengths
        self.queries = queries
    }

    func attend(layer: Int, query: Tensor, key: Tensor, value: Tensor, scale: Float, backend: any Backend) throws -> Tensor {
        try backend.storeKeyValues(key: key, value: value, keyCache: keyCaches[layer], valueCache: valueCaches[layer], slots: slots)
        return try backend.pagedAttention(
            query: query, keyCache: keyCaches[layer], valueCache: valueCaches[layer], blockTables: blockTables,
            blockSize: blockSize, contextLengths: contextLengths, queries: queries, scale: scale)
    }
}
