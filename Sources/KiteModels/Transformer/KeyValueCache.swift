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
    /// Latent attention's cache: stores `key` `[T, 1, width]`, one row per token that is both its key and its
    /// value, and returns causal attention `[T, heads, width]` of `query` `[T, heads, width]` over the cached
    /// rows (the caller keeps the value columns it needs). The default hands the row to `attend` as key and
    /// as value; a cache whose value tensors are its key tensors (the engine's paged cache for a layout with
    /// no value rows) thereby holds it once.
    func attendLatent(layer: Int, query: Tensor, key: Tensor, scale: Float, backend: any Backend) throws -> Tensor
    /// `attend` with the queries, keys and values still packed in one product's rows, to be normalised and
    /// rotated first (see `PackedAttentionProjections`); returns attention `[T, heads, headDim]`. The default
    /// computes the three inputs with the backend's separate operations and calls `attend`; a cache that
    /// knows its slots on the device hands the whole step to `Backend.rotateAndCache`.
    func attend(layer: Int, projections: PackedAttentionProjections, scale: Float, backend: any Backend) throws -> Tensor
}

extension KeyValueCache {
    public func attend(layer: Int, projections: PackedAttentionProjections, scale: Float, backend: any Backend) throws -> Tensor {
        let (query, key, value) = try projections.attentionInputs(on: backend)
        return try attend(layer: layer, query: query, key: key, value: value, scale: scale, backend: backend)
    }

    public func attendLatent(layer: Int, query: Tensor, key: Tensor, scale: Float, backend: any Backend) throws -> Tensor {
        try attend(layer: layer, query: query, key: key, value: key, scale: scale, backend: backend)
    }
}

/// What an inference cache holds per token in every layer, as the model declares it; the engine sizes and
/// allocates its paged cache from this.
public struct KeyValueCacheLayout: Sendable, Equatable {
    /// Value rows kept apart from the key rows.
    public struct ValueRows: Sendable, Equatable {
        public var heads: Int
        public var width: Int

        public init(heads: Int, width: Int) {
            self.heads = heads
            self.width = width
        }
    }

    public var layerCount: Int
    /// Key rows are `[keyHeads, keyWidth]` per token.
    public var keyHeads: Int
    public var keyWidth: Int
    /// Separate value rows, or nil when the key rows double as values (latent attention's one
    /// `[latent | rotary key]` row per token, read through `attendLatent`).
    public var values: ValueRows?

    public init(layerCount: Int, keyHeads: Int, keyWidth: Int, values: ValueRows?) {
        self.layerCount = layerCount
        self.keyHeads = keyHeads
        self.keyWidth = keyWidth
        self.values = values
    }

    /// Numbers cached per token over all layers.
    public var elementsPerToken: Int { layerCount * (keyHeads * keyWidth + (values.map { $0.heads * $0.width } ?? 0)) }

    public func bytesPerToken(_ dtype: DType) -> Int { elementsPerToken * dtype.byteSize }
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
