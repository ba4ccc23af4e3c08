/// Turns token ids into text as they are generated, emitting only complete UTF-8: a character whose bytes
/// are split across tokens (common for CJK and emoji in byte-level BPE) is held back until its last byte
/// arrives. Bytes that can never become valid UTF-8 are emitted as U+FFFD at once, so the concatenation of
/// everything emitted (including `finish()`) equals `decode` of all the ids.
public struct StreamingDetokenizer: Sendable {
    private let tokenizer: Tokenizer
    private let skipSpecialTokens: Bool
    private var pending: [UInt8] = []

    init(tokenizer: Tokenizer, skipSpecialTokens: Bool) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Adds one token and returns the text it completes (often empty while a character is incomplete).
    public mutating func append(_ id: Int) throws(TokenizerError) -> String {
        try tokenizer.table.appendBytes(of: id, skipSpecial: skipSpecialTokens, to: &pending)
        let complete = StreamingDetokenizer.completePrefixLength(pending)
        if complete == 0 { return "" }
        let text = String(decoding: pending[0..<complete], as: UTF8.self)
        pending.removeFirst(complete)
        return text
    }

    /// Adds several tokens; returns the text they complete.
    public mutating func append(contentsOf ids: [Int]) throws(TokenizerError) -> String {
        var text = ""
        for id in ids { text += try append(id) }
        return text
    }

    /// Returns what is held back (an incomplete character becomes U+FFFD) and starts over.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Bytes held back waiting for the rest of a character.
    public var pendingByteCount: Int { pending.count }

    /// The length of the longest prefix that does not end inside a character that may still be completed:
    /// everything except a trailing sequence that is a valid start of a UTF-8 character but not all of it.
    /// Decoding that prefix and the rest separately gives what decoding them together gives, because the
    /// decoder starts a new sequence at the cut either way.
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        var index = 0
        while index < bytes.count {
            let lead = bytes[index]
            let length: Int
            var lowest: UInt8 = 0x80
            var highest: UInt8 = 0xBF
            switch lead {
            case 0x00...0x7F: index += 1; continue
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; lowest = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; highest = 0x9F
            case 0xF0: length = 4; lowest = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; highest = 0x8F
            default: index += 1; continue  // never valid: U+FFFD now
            }
            // Check the continuation bytes that are present; the first must be in the lead's range.
            var offset = 1
            var valid = true
            while offset < length, index + offset < bytes.count {
                let byte = bytes[index + offset]
                let low = offset == 1 ? lowest : 0x80
                let high = offset == 1 ? highest : 0xBF
                if byte < low || byte > high {
                    valid = false
                    break
                }
                offset += 1
            }
            if !valid {
                // The maximal valid subpart becomes one U+FFFD; decoding restarts at the offending byte.
                index += offset
                continue
            }
            if offset < length { return index }  // incomplete but could still be completed: hold it back
            index += length
        }
        return bytes.count
    }
}
