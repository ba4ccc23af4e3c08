import KiteTensor

/// Where attention finds keys and values during inference (prefill and decode).
///
/// Before a forward, the owner of the cache decides which sequences the batch's rows belong to; during the
/// forward, each layer hands its new keys and values to `attend`, which stores them and returns attention
/// of the queries over everything cached for their sequences. The engine's paged cache implements this;
/// `ContiguousKeyValueCache` is the simple single-sequence version.
public protocol KeyValueCache: AnyObject {
    /// Stores `key` and `value` (`[T, kvHeads, headDim]`) for `layer` and returns causal attention of
    /// `query` (`[T, heads, headDim]`) over the cached keys of each row's sequence, the new ones included.
    func attend(layer: Int, query: Tensor, key: Tensor, value: Tensor, scale: Float, backend: any Backend) throws -> Tensor
}

/// One sequence's keys and values for every layer, grown as tokens arrive.
public final class ContiguousKeyValueCache: KeyValueCache {
    public let layerCount: Int
    private var keys: [[Float]]
    private var values: [[Float]]
    private var stored: [Int]
    private var keyHeads = 0, headDim = 0, valueDim = 0

    public init(layerCount: Int) {
        self.layerCount = layerCount
        keys = Array(repeating: [], count: layerCount)
        values = Array(repeating: [], count: layerCount)
        stored = Array(repeating: 0, count: layerCount)
    }

    /// Tokens cached so far (the position the next token will take).
    public var length: Int { stored.first ?? 0 }

    public func attend(layer: Int, query: Tensor, key: Tensor, value: Tensor, scale: Float, backend: any Backend) throws -> Tensor {
        guard layer >= 0 && layer < layerCount else {
            throw KiteTensorError.invalidArgument(operation: "KeyValueCache", detail: "layer \(layer) of \(layerCount)")
        }
        let hostKey = try backend.download(key), hostValue = try backend.download(value)
        keyHeads = key.shape[1]
        headDim = key.shape[2]
        valueDim = value.shape[2]
        keys[layer] += hostKey.toFloats()
        values[layer] += hostValue.toFloats()
        stored[layer] += key.shape[0]
        let total = stored[layer]
        let layout = try AttentionLayout(queries: PackedSequences(lengths: [query.shape[0]]), keys: PackedSequences(lengths: [total]))
        let allKeys = try backend.upload(Tensor(keys[layer], shape: [total, keyHeads, headDim]))
        let allValues = try backend.upload(Tensor(values[layer], shape: [total, keyHeads, valueDim]))
        return try backend.attention(query: query, key: allKeys, value: allValues, layout: layout, scale: scale).output
    }
}
