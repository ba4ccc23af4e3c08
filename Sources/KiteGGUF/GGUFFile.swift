/// A GGUF file (version 2 or 3), memory-mapped read-only: metadata, tensor table and tensor data.
///
/// Opening parses and validates everything before the tensor data; nothing in the file can crash it,
/// every problem throws a `GGUFError`. Tensor data is not touched until it is asked for, and a tensor
/// whose data lies past the end of the file (a split or truncated file) is reported only then.
///
/// ```swift
/// let file = try GGUFFile(path: "SmolLM2-135M-Instruct.Q4_1.gguf")
/// let layers = try file.metadata.int("llama.block_count")
/// let q = try file.dequantize(try file.tensor("blk.0.attn_q.weight"))
/// ```
public final class GGUFFile: @unchecked Sendable {
    // Sendable: every stored property is immutable and the mapped bytes are never written.

    /// The path the file was opened from; `nil` for an in-memory file.
    public let path: String?
    /// The container version: 2 or 3.
    public let version: Int
    /// The key/value metadata in file order.
    public let metadata: GGUFMetadata
    /// The tensor table in file order.
    public let tensors: [GGUFTensorInfo]
    /// `general.alignment`, or 32 when absent.
    public let alignment: Int
    /// Where the data section starts, from the beginning of the file.
    public let dataOffset: Int

    private let storage: MappedBytes
    private let tensorIndex: [String: Int]

    /// Maps and parses the file at `path`.
    public convenience init(path: String) throws {
        try self.init(storage: MappedBytes(mapping: path), path: path)
    }

    /// Parses a GGUF file held in memory (the bytes are copied). `name` is used in error messages.
    public convenience init(bytes: [UInt8], name: String? = nil) throws {
        try self.init(storage: MappedBytes(copying: bytes), path: name)
    }

    private init(storage: MappedBytes, path: String?) throws {
        var parser = GGUFParser(bytes: storage.bytes, path: path)
        let layout = try parser.parse()
        self.storage = storage
        self.path = path
        version = layout.version
        metadata = layout.metadata
        tensors = layout.tensors
        alignment = layout.alignment
        dataOffset = layout.dataOffset
        tensorIndex = Dictionary(uniqueKeysWithValues: layout.tensors.enumerated().map { ($1.name, $0) })
    }

    /// Size of the file in bytes.
    public var fileSize: Int { storage.bytes.count }

    /// `general.architecture` (`llama`, `qwen2`, ...), if present and a string.
    public var architecture: String? {
        if case .string(let value) = metadata["general.architecture"] { return value }
        return nil
    }

    /// The tensor called `name`, or `nil`.
    public func tensorInfo(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The tensor called `name`; throws naming the tensor when the file has none.
    public func tensor(_ name: String) throws -> GGUFTensorInfo {
        guard let info = tensorInfo(named: name) else {
            throw GGUFError(.missingTensor, path: path, "has no tensor named '\(name)'")
        }
        return info
    }

    /// Whether all of the tensor's data lies inside the file.
    public func hasData(for tensor: GGUFTensorInfo) -> Bool {
        tensor.fileOffset + tensor.byteCount <= fileSize
    }

    /// The tensor's bytes, as stored. The view is valid only while this `GGUFFile` is alive;
    /// keep a reference (or use `withRawData`) for as long as the view is used.
    public func rawData(of tensor: GGUFTensorInfo) throws -> UnsafeRawBufferPointer {
        try rawData(of: tensor, bytes: tensor.fileOffset..<(tensor.fileOffset + tensor.byteCount))
    }

    /// Calls `body` with the tensor's bytes, keeping the file alive meanwhile.
    public func withRawData<R>(of tensor: GGUFTensorInfo, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let data = try rawData(of: tensor)
        return try withExtendedLifetime(self) { try body(data) }
    }

    /// A range of the tensor's bytes (file offsets), after checking that the tensor is this file's
    /// and the range is inside the file.
    func rawData(of tensor: GGUFTensorInfo, bytes range: Range<Int>) throws -> UnsafeRawBufferPointer {
        guard let index = tensorIndex[tensor.name], tensors[index] == tensor else {
            throw GGUFError(.missingTensor, path: path, "tensor '\(tensor.name)' is not a tensor of this file")
        }
        guard range.upperBound <= fileSize else {
            let whole = tensor.fileOffset..<(tensor.fileOffset + tensor.byteCount)
            let part = range == whole ? "" : " (bytes \(range.lowerBound)..<\(range.upperBound) requested)"
            throw GGUFError(.tensorDataUnavailable, path: path, offset: range.lowerBound,
                            "tensor '\(tensor.name)' occupies bytes \(whole.lowerBound)..<\(whole.upperBound)\(part), "
                                + "past the end of the file (\(fileSize) bytes); the file is truncated or one part of a split model")
        }
        return UnsafeRawBufferPointer(rebasing: storage.bytes[range])
    }
}
