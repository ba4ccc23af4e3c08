/// GPT-2's reversible map between bytes and printable Unicode characters: byte-level BPE vocabularies spell
/// every byte as one visible character ("Ġ" is the space byte 0x20, "Ċ" is "\n"), so that tokens are strings.
///
/// The printable bytes `!`...`~`, `¡`...`¬` and `®`...`ÿ` stand for themselves; the other 68 bytes take the
/// scalars from U+0100 upwards, in byte order.
enum ByteLevel {
    /// The scalar that spells each byte.
    static let scalarForByte: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            let printable = (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
            if printable {
                table[byte] = UInt32(byte)
            } else {
                table[byte] = next
                next += 1
            }
        }
        return table
    }()

    /// The byte each spelling scalar stands for, indexed by scalar (all are below U+0144); -1 for others.
    static let byteForScalar: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (byte, scalar) in scalarForByte.enumerated() { table[Int(scalar)] = Int16(byte) }
        return table
    }()

    /// The UTF-8 of each byte's spelling (one or two bytes), for building byte-level strings quickly.
    static let utf8ForByte: [[UInt8]] = scalarForByte.map { value in
        Array(String(Character(Unicode.Scalar(value) ?? "?")).utf8)
    }

    /// The bytes a byte-level token string spells, or nil when a character is not a spelling (added tokens
    /// like "<｜User｜>" are stored as plain text).
    static func bytes(spelledBy text: String) -> [UInt8]? {
        var result: [UInt8] = []
        result.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            let value = Int(scalar.value)
            guard value < byteForScalar.count, byteForScalar[value] >= 0 else { return nil }
            result.append(UInt8(byteForScalar[value]))
        }
        return result
    }

    /// The byte-level spelling of `bytes`.
    static func spelling(of bytes: some Sequence<UInt8>) -> String {
        var text = ""
        for byte in bytes { text.unicodeScalars.append(Unicode.Scalar(scalarForByte[Int(byte)]) ?? "?") }
        return text
    }
}
