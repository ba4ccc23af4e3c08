/// Reads little-endian fields from a byte buffer, checking every read against the end of the buffer.
///
/// Every length or count taken from the file is compared with what remains *before* anything is
/// allocated, so a lying length (2^60) costs nothing but an error.
struct ByteCursor {
    let bytes: UnsafeRawBufferPointer
    let path: String?
    private(set) var offset: Int = 0

    init(bytes: UnsafeRawBufferPointer, path: String?) {
        self.bytes = bytes
        self.path = path
    }

    var remaining: Int { bytes.count - offset }

    mutating func integer<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        let size = MemoryLayout<T>.size
        guard size <= remaining else {
            throw GGUFError(.truncated, path: path, offset: offset,
                            "file ends inside \(what()): needs \(size) bytes, \(remaining) remain")
        }
        let value = T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += size
        return value
    }

    /// A length or count stored as u64, checked to fit in what remains when each item takes at least
    /// `minimumItemSize` bytes.
    mutating func count(_ what: @autoclosure () -> String, minimumItemSize: Int) throws -> Int {
        let start = offset
        let raw = try integer(UInt64.self, "\(what())")
        let available = remaining / max(minimumItemSize, 1)
        guard raw <= UInt64(available) else {
            throw GGUFError(.truncated, path: path, offset: start,
                            "\(what()) is \(raw), but only \(remaining) bytes remain "
                                + "(room for at most \(available) items of at least \(minimumItemSize) bytes)")
        }
        return Int(raw)
    }

    /// A GGUF string: u64 byte length, then that many bytes of UTF-8.
    mutating func string(_ what: @autoclosure () -> String) throws -> String {
        let start = offset
        let length = try count("length of \(what())", minimumItemSize: 1)
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)])
        guard let value = String(validating: slice, as: UTF8.self) else {
            throw GGUFError(.invalidValue, path: path, offset: start, "\(what()) is not valid UTF-8")
        }
        offset += length
        return value
    }

    /// `count` fixed-width integers, read in one pass into a new array.
    mutating func integers<T: FixedWidthInteger>(_: T.Type, count: Int, _ what: @autoclosure () -> String) throws -> [T] {
        let size = MemoryLayout<T>.size
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: size)
        guard !overflow, byteCount <= remaining else {
            throw GGUFError(.truncated, path: path, offset: offset,
                            "file ends inside \(what()): \(count) items of \(size) bytes, \(remaining) bytes remain")
        }
        let base = offset
        let result = [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            for index in 0..<count {
                buffer[index] = T(littleEndian: bytes.loadUnaligned(fromByteOffset: base + index * size, as: T.self))
            }
            initialized = count
        }
        offset += byteCount
        return result
    }
}
