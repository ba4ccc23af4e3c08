import KiteJSON
import KiteTensor

/// One tensor inside a safetensors file: its dtype, shape and bytes (a view of the memory map).
public struct SafetensorsEntry: Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Offset of the first byte within the file.
    public let fileOffset: Int
    public let byteCount: Int
}

/// A memory-mapped `.safetensors` file: an 8-byte little-endian header length, a JSON header naming each
/// tensor's dtype, shape and byte range, then the data. Every field is checked before anything is read.
public final class SafetensorsFile: @unchecked Sendable {
    public let path: String
    public let entries: [String: SafetensorsEntry]
    /// Tensor names in header order.
    public let names: [String]
    public let metadata: [String: String]
    let file: MappedFile

    /// The most header bytes accepted; the format's reference implementation uses the same bound.
    static let maximumHeaderBytes = 100 << 20

    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        let bytes = file.bytes
        guard bytes.count >= 8 else { throw ModelError.malformed(path: path, detail: "truncated: \(bytes.count) bytes, the header length alone needs 8") }
        let headerLength = Int(UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self)) & 0x7FFF_FFFF_FFFF_FFFF)
        guard headerLength <= Self.maximumHeaderBytes else {
            throw ModelError.malformed(path: path, detail: "header length \(headerLength) exceeds the \(Self.maximumHeaderBytes)-byte limit")
        }
        guard 8 + headerLength <= bytes.count else {
            throw ModelError.malformed(path: path, detail: "truncated: header claims \(headerLength) bytes but the file has \(bytes.count - 8) after the length")
        }
        let headerBytes = Array(UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + headerLength)]))
        let header: JSONValue
        do { header = try JSONValue(parsing: headerBytes, source: path + " (header)") } catch {
            throw ModelError.malformed(path: path, detail: "header is not valid JSON: \(error)")
        }
        guard let object = header.objectValue else { throw ModelError.malformed(path: path, detail: "header is \(header.typeName), expected an object") }
        let dataStart = 8 + headerLength
        let dataLength = bytes.count - dataStart
        var entries: [String: SafetensorsEntry] = [:]
        var names: [String] = []
        var metadata: [String: String] = [:]
        var ranges: [(Int, Int, String)] = []
        for (name, value) in object {
            if name == "__metadata__" {
                guard let fields = value.objectValue else { throw ModelError.malformed(path: path, detail: "__metadata__ is \(value.typeName), expected an object") }
                for (key, field) in fields {
                    guard let text = field.stringValue else { throw ModelError.malformed(path: path, detail: "__metadata__.\(key) is \(field.typeName), expected a string") }
                    metadata[key] = text
                }
                continue
            }
            guard let info = value.objectValue else { throw ModelError.badTensor(path: path, name: name, detail: "header entry is \(value.typeName), expected an object") }
            guard let dtypeName = info["dtype"]?.stringValue else { throw ModelError.badTensor(path: path, name: name, detail: "missing 'dtype'") }
            guard let dtype = DType(safetensorsName: dtypeName) else {
                throw ModelError.badTensor(path: path, name: name, detail: "unsupported dtype '\(dtypeName)' (supported: F32, BF16, F16, F8_E4M3, F8_E5M2, I32, I64, U8)")
            }
            guard let dims = info["shape"]?.arrayValue else { throw ModelError.badTensor(path: path, name: name, detail: "missing 'shape'") }
            var shape: [Int] = []
            var elementCount = 1
            for dim in dims {
                guard let size = dim.intValue, size >= 0 else { throw ModelError.badTensor(path: path, name: name, detail: "shape \(dims.map { $0.serialized() }) has a non-integer or negative dimension") }
                let (product, overflow) = elementCount.multipliedReportingOverflow(by: size)
                guard !overflow else { throw ModelError.badTensor(path: path, name: name, detail: "shape \(dims.map { $0.serialized() }) overflows") }
                elementCount = product
                shape.append(size)
            }
            guard let offsets = info["data_offsets"]?.arrayValue, offsets.count == 2,
                let begin = offsets[0].intValue, let end = offsets[1].intValue
            else { throw ModelError.badTensor(path: path, name: name, detail: "'data_offsets' must be two integers") }
            let (expectedBytes, overflow) = elementCount.multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow, begin >= 0, end >= begin, end - begin == expectedBytes else {
                throw ModelError.badTensor(path: path, name: name, detail: "data_offsets [\(begin), \(end)] hold \(end - begin) bytes, but \(dtypeName) \(shape) needs \(overflow ? -1 : expectedBytes)")
            }
            guard end <= dataLength else {
                throw ModelError.badTensor(path: path, name: name, detail: "data_offsets [\(begin), \(end)] run past the end of the data (\(dataLength) bytes): the file is truncated or the header lies")
            }
            entries[name] = SafetensorsEntry(name: name, dtype: dtype, shape: shape, fileOffset: dataStart + begin, byteCount: end - begin)
            names.append(name)
            ranges.append((begin, end, name))
        }
        ranges.sort { $0.0 < $1.0 }
        for i in ranges.indices.dropFirst() where ranges[i].0 < ranges[i - 1].1 {
            throw ModelError.badTensor(path: path, name: ranges[i].2, detail: "its bytes overlap those of '\(ranges[i - 1].2)'")
        }
        self.entries = entries
        self.names = names
        self.metadata = metadata
    }

    /// The raw bytes of a tensor, valid while this file is alive.
    public func bytes(of name: String) throws -> UnsafeRawBufferPointer {
        guard let entry = entries[name] else { throw ModelError.missingTensor(path: path, name: name) }
        return UnsafeRawBufferPointer(rebasing: file.bytes[entry.fileOffset..<(entry.fileOffset + entry.byteCount)])
    }

    /// A host tensor of `name` converted to `dtype` (a copy: the file may be unmapped afterwards).
    public func tensor(_ name: String, as dtype: DType = .f32) throws -> Tensor {
        guard let entry = entries[name] else { throw ModelError.missingTensor(path: path, name: name) }
        let raw = try bytes(of: name)
        // The map's data section need not be aligned for the element type, so copy the bytes first.
        let stored = Tensor(zeros: entry.shape, dtype: entry.dtype)
        if entry.byteCount > 0, let base = raw.baseAddress { stored.rawPointer.copyMemory(from: base, byteCount: entry.byteCount) }
        return dtype == entry.dtype ? stored : stored.converted(to: dtype)
    }
}

/// Writes tensors as one `.safetensors` file, atomically.
public enum SafetensorsWriter {
    public static func write(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:], to path: String) throws {
        var header = JSONObject()
        if !metadata.isEmpty {
            header["__metadata__"] = .object(JSONObject(metadata.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.string($0.value)) }))
        }
        var offset = 0
        for (name, tensor) in tensors {
            guard tensor.device == .cpu else { throw ModelError.badTensor(path: path, name: name, detail: "tensor on \(tensor.device): copy it to the host before saving") }
            header[name] = [
                "dtype": .string(tensor.dtype.safetensorsName),
                "shape": .array(tensor.shape.map { .int($0) }),
                "data_offsets": [.int(offset), .int(offset + tensor.byteCount)],
            ]
            offset += tensor.byteCount
        }
        var headerBytes = Array(JSONValue.object(header).serialized(.compact).utf8)
        // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        var length = UInt64(headerBytes.count).littleEndian
        try withUnsafeBytes(of: &length) { (lengthBytes) throws in
            try headerBytes.withUnsafeBytes { (headerChunk) throws in
                var chunks = [lengthBytes, headerChunk]
                for (_, tensor) in tensors {
                    chunks.append(UnsafeRawBufferPointer(start: tensor.rawPointer, count: tensor.byteCount))
                }
                try FileText.writeAtomically(path, chunks: chunks)
            }
        }
    }
}
