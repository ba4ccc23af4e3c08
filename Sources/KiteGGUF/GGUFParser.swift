/// Everything in a GGUF file before the tensor data: header, metadata and tensor table, validated.
struct GGUFLayout {
    var version: Int
    var metadata: GGUFMetadata
    var tensors: [GGUFTensorInfo]
    var alignment: Int
    var dataOffset: Int
}

/// Parses the GGUF container (versions 2 and 3, little-endian) from a byte buffer.
///
/// Layout: magic `GGUF`, u32 version, u64 tensor count, u64 metadata count; the metadata
/// (string key, u32 value type, value); the tensor table (string name, u32 dimension count,
/// u64 dimensions ne[0..n), u32 ggml type, u64 offset into the data section); then the data section,
/// which starts at the next multiple of `general.alignment` (default 32).
///
/// Tensor data past the end of the buffer is not an error here: a file split into parts has complete
/// metadata and a truncated data section, and the metadata is still useful. Reading such a tensor's
/// data fails later, naming the tensor.
struct GGUFParser {
    /// The default of `general.alignment`.
    static let defaultAlignment = 32
    /// ggml's GGML_MAX_DIMS.
    static let maximumDimensions = 4
    /// Nested metadata arrays deeper than this are rejected (recursion must not exhaust the stack).
    static let maximumArrayDepth = 8
    /// The smallest metadata entry: empty key (8), value type (4), one-byte value.
    static let minimumEntrySize = 13
    /// The smallest tensor table entry: empty name (8), dimension count (4), type (4), offset (8).
    static let minimumTensorInfoSize = 24

    var cursor: ByteCursor
    var path: String? { cursor.path }

    init(bytes: UnsafeRawBufferPointer, path: String?) {
        cursor = ByteCursor(bytes: bytes, path: path)
    }

    mutating func parse() throws -> GGUFLayout {
        let version = try header()
        let tensorCount = try cursor.count("tensor count", minimumItemSize: Self.minimumTensorInfoSize)
        let entryCount = try cursor.count("metadata entry count", minimumItemSize: Self.minimumEntrySize)
        let metadata = try readMetadata(count: entryCount)
        guard tensorCount <= cursor.remaining / Self.minimumTensorInfoSize else {
            throw GGUFError(.truncated, path: path, offset: cursor.offset,
                            "tensor table of \(tensorCount) entries cannot fit in the \(cursor.remaining) bytes left")
        }
        var entries: [TensorEntry] = []
        entries.reserveCapacity(tensorCount)
        for index in 0..<tensorCount {
            entries.append(try tensorEntry(index: index))
        }
        let alignment = try readAlignment(metadata)
        let tableEnd = cursor.offset
        let (padded, overflow) = tableEnd.addingReportingOverflow(alignment - 1)
        guard !overflow else {
            throw GGUFError(.invalidValue, path: path, offset: tableEnd, "data section offset overflows")
        }
        let dataOffset = padded / alignment * alignment
        let tensors = try validate(entries, alignment: alignment, dataOffset: dataOffset)
        return GGUFLayout(version: version, metadata: metadata, tensors: tensors, alignment: alignment,
                          dataOffset: dataOffset)
    }

    // MARK: header

    private mutating func header() throws -> Int {
        let magic = try cursor.integer(UInt32.self, "magic")
        guard magic == 0x4655_4747 else {  // "GGUF" read little-endian
            let shown = withUnsafeBytes(of: magic.littleEndian) { Array($0) }
                .map { byte in byte >= 0x20 && byte < 0x7F ? String(UnicodeScalar(byte)) : "\\x" + hex(byte) }
                .joined()
            throw GGUFError(.badMagic, path: path, offset: 0, "magic is \"\(shown)\", expected \"GGUF\"")
        }
        let version = try cursor.integer(UInt32.self, "version")
        switch version {
        case 2, 3:
            return Int(version)
        case 1:
            throw GGUFError(.unsupportedVersion, path: path, offset: 4,
                            "GGUF version 1 (32-bit counts) is not supported, expected version 2 or 3")
        default:
            if version.byteSwapped == 2 || version.byteSwapped == 3 {
                throw GGUFError(.unsupportedVersion, path: path, offset: 4,
                                "big-endian GGUF is not supported, expected a little-endian file")
            }
            throw GGUFError(.unsupportedVersion, path: path, offset: 4,
                            "GGUF version \(version) is not supported, expected version 2 or 3")
        }
    }

    private func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return String(digits[Int(byte >> 4)]) + String(digits[Int(byte & 0xF)])
    }

    // MARK: metadata

    private mutating func readMetadata(count: Int) throws -> GGUFMetadata {
        var keys: [String] = []
        var values: [String: GGUFValue] = [:]
        keys.reserveCapacity(count)
        values.reserveCapacity(count)
        for index in 0..<count {
            let keyOffset = cursor.offset
            let key = try cursor.string("key of metadata entry #\(index)")
            let type = try valueType("type of metadata '\(key)'")
            let value = try readValue(type, key: key, depth: 0)
            guard values.updateValue(value, forKey: key) == nil else {
                throw GGUFError(.duplicate, path: path, offset: keyOffset, "metadata key '\(key)' appears twice")
            }
            keys.append(key)
        }
        return GGUFMetadata(keys: keys, values: values, path: path)
    }

    private mutating func valueType(_ what: @autoclosure () -> String) throws -> GGUFValueType {
        let start = cursor.offset
        let raw = try cursor.integer(UInt32.self, what())
        guard let type = GGUFValueType(rawValue: raw) else {
            throw GGUFError(.unknownType, path: path, offset: start,
                            "\(what()) is \(raw), expected a GGUF value type 0...12")
        }
        return type
    }

    private mutating func readValue(_ type: GGUFValueType, key: String, depth: Int) throws -> GGUFValue {
        let what = "value of metadata '\(key)'"
        switch type {
        case .uint8: return .uint8(try cursor.integer(UInt8.self, what))
        case .int8: return .int8(try cursor.integer(Int8.self, what))
        case .uint16: return .uint16(try cursor.integer(UInt16.self, what))
        case .int16: return .int16(try cursor.integer(Int16.self, what))
        case .uint32: return .uint32(try cursor.integer(UInt32.self, what))
        case .int32: return .int32(try cursor.integer(Int32.self, what))
        case .uint64: return .uint64(try cursor.integer(UInt64.self, what))
        case .int64: return .int64(try cursor.integer(Int64.self, what))
        case .float32: return .float32(Float(bitPattern: try cursor.integer(UInt32.self, what)))
        case .float64: return .float64(Double(bitPattern: try cursor.integer(UInt64.self, what)))
        case .bool: return .bool(try cursor.integer(UInt8.self, what) != 0)
        case .string: return .string(try cursor.string(what))
        case .array: return .array(try readArray(key: key, depth: depth))
        }
    }

    private mutating func readArray(key: String, depth: Int) throws -> GGUFArray {
        let start = cursor.offset
        guard depth < Self.maximumArrayDepth else {
            throw GGUFError(.invalidValue, path: path, offset: start,
                            "metadata '\(key)' nests arrays deeper than \(Self.maximumArrayDepth) levels")
        }
        let elementType = try valueType("element type of array '\(key)'")
        let count = try cursor.count("element count of array '\(key)'",
                                     minimumItemSize: elementType.minimumEncodedSize)
        let what = "array '\(key)'"
        switch elementType {
        case .uint8: return .uint8(try cursor.integers(UInt8.self, count: count, what))
        case .int8: return .int8(try cursor.integers(Int8.self, count: count, what))
        case .uint16: return .uint16(try cursor.integers(UInt16.self, count: count, what))
        case .int16: return .int16(try cursor.integers(Int16.self, count: count, what))
        case .uint32: return .uint32(try cursor.integers(UInt32.self, count: count, what))
        case .int32: return .int32(try cursor.integers(Int32.self, count: count, what))
        case .uint64: return .uint64(try cursor.integers(UInt64.self, count: count, what))
        case .int64: return .int64(try cursor.integers(Int64.self, count: count, what))
        case .float32: return .float32(try cursor.integers(UInt32.self, count: count, what).map { Float(bitPattern: $0) })
        case .float64: return .float64(try cursor.integers(UInt64.self, count: count, what).map { Double(bitPattern: $0) })
        case .bool: return .bool(try cursor.integers(UInt8.self, count: count, what).map { $0 != 0 })
        case .string:
            var strings: [String] = []
            strings.reserveCapacity(count)
            for index in 0..<count {
                strings.append(try cursor.string("element \(index) of array '\(key)'"))
            }
            return .string(strings)
        case .array:
            var arrays: [GGUFArray] = []
            arrays.reserveCapacity(count)
            for _ in 0..<count {
                arrays.append(try readArray(key: key, depth: depth + 1))
            }
            return .array(arrays)
        }
    }

    private func readAlignment(_ metadata: GGUFMetadata) throws -> Int {
        guard let value = metadata["general.alignment"] else { return Self.defaultAlignment }
        guard let alignment = value.intValue else {
            throw GGUFError(.invalidValue, path: path,
                            "metadata 'general.alignment' holds \(value.typeDescription), expected an integer")
        }
        guard alignment > 0, alignment & (alignment - 1) == 0, alignment <= 1 << 30 else {
            throw GGUFError(.invalidValue, path: path,
                            "metadata 'general.alignment' is \(alignment), expected a power of two up to 2^30")
        }
        return alignment
    }

    // MARK: tensor table

    /// A tensor table entry as read, before its layout is checked.
    private struct TensorEntry {
        var name: String
        var dimensions: [Int]
        var type: GGMLType
        var offset: Int
        var tableOffset: Int
    }

    private mutating func tensorEntry(index: Int) throws -> TensorEntry {
        let tableOffset = cursor.offset
        let name = try cursor.string("name of tensor #\(index)")
        let dimensionCount = try cursor.integer(UInt32.self, "dimension count of tensor '\(name)'")
        guard dimensionCount <= Self.maximumDimensions else {
            throw GGUFError(.invalidValue, path: path, offset: tableOffset,
                            "tensor '\(name)' has \(dimensionCount) dimensions, at most \(Self.maximumDimensions) allowed")
        }
        var dimensions: [Int] = []
        for axis in 0..<Int(dimensionCount) {
            let raw = try cursor.integer(UInt64.self, "ne[\(axis)] of tensor '\(name)'")
            guard let dimension = Int(exactly: raw), raw <= UInt64(Int64.max) else {
                throw GGUFError(.invalidValue, path: path, offset: tableOffset,
                                "tensor '\(name)' has ne[\(axis)] = \(raw), expected a non-negative Int64")
            }
            dimensions.append(dimension)
        }
        let typeOffset = cursor.offset
        let rawType = try cursor.integer(UInt32.self, "ggml type of tensor '\(name)'")
        guard let type = GGMLType(rawValue: rawType) else {
            throw GGUFError(.unknownType, path: path, offset: typeOffset,
                            "tensor '\(name)' has ggml type \(rawType), which is not a known type")
        }
        let rawOffset = try cursor.integer(UInt64.self, "data offset of tensor '\(name)'")
        guard let offset = Int(exactly: rawOffset) else {
            throw GGUFError(.invalidValue, path: path, offset: tableOffset,
                            "tensor '\(name)' has data offset \(rawOffset), which does not fit in Int")
        }
        return TensorEntry(name: name, dimensions: dimensions, type: type, offset: offset, tableOffset: tableOffset)
    }

    /// Computes each tensor's size with overflow checks and rejects misaligned or overlapping tensors
    /// and duplicate names.
    private func validate(_ entries: [TensorEntry], alignment: Int, dataOffset: Int) throws -> [GGUFTensorInfo] {
        var tensors: [GGUFTensorInfo] = []
        tensors.reserveCapacity(entries.count)
        var seen = Set<String>()
        for entry in entries {
            let fail = { (kind: GGUFError.Kind, message: String) in
                GGUFError(kind, path: path, offset: entry.tableOffset, "tensor '\(entry.name)' \(message)")
            }
            guard seen.insert(entry.name).inserted else { throw fail(.duplicate, "appears twice in the tensor table") }
            // Rows first, then elements, so that neither product can overflow even when ne[0] is 0.
            var rowCount = 1
            for dimension in entry.dimensions.dropFirst() {
                let (product, overflow) = rowCount.multipliedReportingOverflow(by: dimension)
                guard !overflow else { throw fail(.invalidValue, "has dimensions \(entry.dimensions) whose product overflows") }
                rowCount = product
            }
            let rowLength = entry.dimensions.first ?? 1
            let (elementCount, overflow) = rowCount.multipliedReportingOverflow(by: rowLength)
            guard !overflow else { throw fail(.invalidValue, "has dimensions \(entry.dimensions) whose product overflows") }
            guard rowLength % entry.type.blockSize == 0 else {
                throw fail(.invalidValue, "has ne[0] = \(rowLength), not a multiple of the \(entry.type) block size \(entry.type.blockSize)")
            }
            // A row's size is checked on its own: with another dimension 0 the total can be 0 while a
            // row of 2^62 elements still overflows.
            let (rowByteCount, rowOverflow) = (rowLength / entry.type.blockSize)
                .multipliedReportingOverflow(by: entry.type.typeSize)
            let (byteCount, sizeOverflow) = rowByteCount.multipliedReportingOverflow(by: rowCount)
            guard !rowOverflow, !sizeOverflow else {
                throw fail(.invalidValue, "has a byte size that overflows (\(entry.dimensions) elements of \(entry.type))")
            }
            guard entry.offset % alignment == 0 else {
                throw fail(.invalidValue, "has data offset \(entry.offset), not a multiple of the alignment \(alignment)")
            }
            let (fileOffset, offsetOverflow) = dataOffset.addingReportingOverflow(entry.offset)
            let (_, endOverflow) = fileOffset.addingReportingOverflow(byteCount)
            guard !offsetOverflow, !endOverflow else {
                throw fail(.invalidValue, "has data offset \(entry.offset) and size \(byteCount) that overflow the file offset range")
            }
            tensors.append(GGUFTensorInfo(name: entry.name, dimensions: entry.dimensions, type: entry.type,
                                          offset: entry.offset, fileOffset: fileOffset, byteCount: byteCount,
                                          elementCount: elementCount, rowCount: rowCount, rowByteCount: rowByteCount))
        }
        // Empty tensors occupy no bytes and may sit anywhere; in offset order, every other tensor must
        // start at or after the end of the one before it.
        let byOffset = tensors.indices.filter { tensors[$0].byteCount > 0 }
            .sorted { (tensors[$0].offset, $0) < (tensors[$1].offset, $1) }
        var furthest: Int?
        for index in byOffset {
            let tensor = tensors[index]
            if let previous = furthest {
                let reach = tensors[previous]
                guard tensor.offset >= reach.offset + reach.byteCount else {
                    throw GGUFError(.invalidValue, path: path, offset: entries[index].tableOffset,
                                    "tensor '\(tensor.name)' (data bytes \(tensor.offset)..<\(tensor.offset + tensor.byteCount)) "
                                        + "overlaps tensor '\(reach.name)' (data bytes \(reach.offset)..<\(reach.offset + reach.byteCount))")
                }
            }
            furthest = index
        }
        return tensors
    }
}
