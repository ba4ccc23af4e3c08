/// One entry of a GGUF tensor table, with its size and place in the file computed and checked.
public struct GGUFTensorInfo: Sendable, Equatable {
    /// The llama.cpp name, e.g. `blk.0.attn_q.weight`.
    public let name: String
    /// The dimensions in GGUF (ggml) order `ne[0..n)`: `ne[0]` varies fastest in memory.
    /// An HF `[out, in]` matrix is stored with `ne = [in, out]`.
    public let dimensions: [Int]
    public let type: GGMLType
    /// Where the data starts, relative to the data section (as stored in the file).
    public let offset: Int
    /// Where the data starts, from the beginning of the file.
    public let fileOffset: Int
    /// Bytes of data.
    public let byteCount: Int
    /// Number of elements (the product of the dimensions).
    public let elementCount: Int
    /// Number of rows: the product of all dimensions but `ne[0]`.
    public let rowCount: Int
    /// Bytes of one row (`ne[0]` elements).
    public let rowByteCount: Int

    init(name: String, dimensions: [Int], type: GGMLType, offset: Int, fileOffset: Int, byteCount: Int,
         elementCount: Int, rowCount: Int, rowByteCount: Int) {
        self.name = name
        self.dimensions = dimensions
        self.type = type
        self.offset = offset
        self.fileOffset = fileOffset
        self.byteCount = byteCount
        self.elementCount = elementCount
        self.rowCount = rowCount
        self.rowByteCount = rowByteCount
    }

    /// The shape in row-major (PyTorch / Hugging Face) order: the dimensions reversed.
    public var shape: [Int] { dimensions.reversed() }

    /// Elements in one row: `ne[0]`, the last dimension of `shape`; always a whole number of blocks.
    public var rowLength: Int { dimensions.first ?? 1 }
}
