import KiteModels
#if canImport(Glibc)
import Glibc
#endif

/// Writes scalars as TensorBoard event files: TFRecord framing (length, masked CRC-32C of the length, the
/// record, masked CRC-32C of the record) around `Event` protocol buffers holding a `Summary` of simple values.
/// The encoding is written by hand: three small messages do not need a protobuf library.
public final class TensorBoardWriter: @unchecked Sendable {
    public let path: String
    private let file: UnsafeMutablePointer<FILE>

    public init(directory: String) throws {
        try FileText.makeDirectory(directory)
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, host.count)
        let hostName = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        path = directory + "/events.out.tfevents.\(Int(Self.wallTime())).\(hostName.isEmpty ? "kite" : hostName)"
        guard let opened = fopen(path, "wb") else {
            throw ModelError.io(path: path, detail: "cannot create: \(String(cString: strerror(errno)))")
        }
        file = opened
        // The first event names the file format version, as TensorFlow's writers do.
        var event = ProtobufBuffer()
        event.double(field: 1, Self.wallTime())
        event.string(field: 3, "brain.Event:2")
        writeRecord(event.bytes)
    }

    deinit { fclose(file) }

    /// Appends one scalar per (tag, value) at `step`.
    public func scalars(_ values: [(tag: String, value: Double)], step: Int) {
        var summary = ProtobufBuffer()
        for (tag, value) in values where value.isFinite {
            var entry = ProtobufBuffer()
            entry.string(field: 1, tag)
            entry.float(field: 2, Float(value))
            summary.message(field: 1, entry.bytes)
        }
        var event = ProtobufBuffer()
        event.double(field: 1, Self.wallTime())
        event.varint(field: 2, UInt64(bitPattern: Int64(step)))
        event.message(field: 5, summary.bytes)
        writeRecord(event.bytes)
        fflush(file)
    }

    private func writeRecord(_ data: [UInt8]) {
        var header = [UInt8]()
        withUnsafeBytes(of: UInt64(data.count).littleEndian) { header += $0 }
        var lengthCRC = CRC32C.masked(header).littleEndian
        var dataCRC = CRC32C.masked(data).littleEndian
        fwrite(header, 1, header.count, file)
        fwrite(&lengthCRC, 4, 1, file)
        fwrite(data, 1, data.count, file)
        fwrite(&dataCRC, 4, 1, file)
    }

    static func wallTime() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) * 1e-9
    }
}

/// The few protobuf wire encodings an `Event` needs.
struct ProtobufBuffer {
    var bytes: [UInt8] = []

    mutating func rawVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func key(_ field: Int, _ wireType: UInt64) { rawVarint(UInt64(field) << 3 | wireType) }

    mutating func varint(field: Int, _ value: UInt64) {
        key(field, 0)
        rawVarint(value)
    }

    mutating func double(field: Int, _ value: Double) {
        key(field, 1)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes += $0 }
    }

    mutating func float(field: Int, _ value: Float) {
        key(field, 5)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes += $0 }
    }

    mutating func message(field: Int, _ payload: [UInt8]) {
        key(field, 2)
        rawVarint(UInt64(payload.count))
        bytes += payload
    }

    mutating func string(field: Int, _ text: String) { message(field: field, Array(text.utf8)) }
}

/// CRC-32C (Castagnoli), with TFRecord's masking.
enum CRC32C {
    static let table: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        return crc
    }

    static func checksum(_ data: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in data { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    static func masked(_ data: [UInt8]) -> UInt32 {
        let crc = checksum(data)
        return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }
}
