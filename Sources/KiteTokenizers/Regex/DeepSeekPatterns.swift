/// Hand-written matchers for DeepSeek-V3's pre-tokenizer, three `Split`s applied in turn (as in its
/// tokenizer.json and llama.cpp's `deepseek-v3`): runs of up to three digits, runs of CJK ideographs and kana,
/// then
///
///     [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+      ASCII punctuation starting an ASCII word
///     |[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+               a word, with one optional leading scalar
///     | ?[\p{P}\p{S}]+[\r\n]*                             punctuation and symbols, then line breaks
///     |\s*[\r\n]+|\s+(?!\S)|\s+                           whitespace, as in Qwen2's pattern
///
/// Each function returns the end of the match at `position`, or nil where the pattern does not match.
enum DeepSeekPatterns {
    static let digits = #"\p{N}{1,3}"#
    static let kana = "[一-龥぀-ゟ゠-ヿ]+"
    static let words = ##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##

    static func digitsMatch(_ text: UnsafeBufferPointer<UInt8>, _ position: Int, _ upper: Int, _ table: ClassLookup) -> Int? {
        let end = runEnd(text, position, upper, .number, table, limit: 3)
        return end > position ? end : nil
    }

    @inline(__always)
    private static func isKana(_ scalar: UInt32) -> Bool {
        (0x4E00...0x9FA5).contains(scalar) || (0x3040...0x30FF).contains(scalar)
    }

    static func kanaMatch(_ text: UnsafeBufferPointer<UInt8>, _ position: Int, _ upper: Int) -> Int? {
        var end = position
        while end < upper {
            let (scalar, length) = decode(text, end, upper)
            guard isKana(scalar) else { break }
            end += length
        }
        return end > position ? end : nil
    }

    private static let letterOrMark: UnicodeClass = [.letter, .mark]
    private static let punctuationOrSymbol: UnicodeClass = [.punctuation, .symbol]
    /// Scalars that may not start the optional prefix of a word: letters, punctuation, symbols (and CR, LF).
    private static let notWordPrefix: UnicodeClass = [.letter, .punctuation, .symbol]

    @inline(__always)
    private static func isASCIIPunctuation(_ scalar: UInt32) -> Bool {
        (0x21...0x2F).contains(scalar) || (0x3A...0x40).contains(scalar) || (0x5B...0x60).contains(scalar)
            || (0x7B...0x7E).contains(scalar)
    }

    @inline(__always)
    private static func isASCIILetter(_ byte: UInt8) -> Bool {
        (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
    }

    static func wordsMatch(_ text: UnsafeBufferPointer<UInt8>, _ position: Int, _ upper: Int, _ table: ClassLookup) -> Int? {
        let (scalar, length) = decode(text, position, upper)
        let next = position + length
        // ASCII punctuation then ASCII letters.
        if isASCIIPunctuation(scalar), next < upper, isASCIILetter(text[next]) {
            var end = next
            while end < upper, isASCIILetter(text[end]) { end += 1 }
            return end
        }
        let classes = table.of(scalar)
        // A word: the optional prefix is taken when a letter or mark follows it; otherwise the scalar itself
        // must start the word.
        if scalar != 0x0D, scalar != 0x0A, classes.isDisjoint(with: notWordPrefix) {
            let wordEnd = runEnd(text, next, upper, letterOrMark, table)
            if wordEnd > next { return wordEnd }
        }
        if !classes.isDisjoint(with: letterOrMark) { return runEnd(text, position, upper, letterOrMark, table) }
        // Punctuation and symbols, optionally after one space, then line breaks.
        var symbolsStart = -1
        if !classes.isDisjoint(with: punctuationOrSymbol) {
            symbolsStart = position
        } else if scalar == 0x20, next < upper, table.contains(decode(text, next, upper).scalar, punctuationOrSymbol) {
            symbolsStart = next
        }
        if symbolsStart >= 0 {
            var end = runEnd(text, symbolsStart, upper, punctuationOrSymbol, table)
            while end < upper, text[end] == 0x0D || text[end] == 0x0A { end += 1 }
            return end
        }
        guard classes.contains(.whitespace) else { return nil }
        // \s*[\r\n]+ : the whitespace run up to and including its last CR or LF; else \s+(?!\S)|\s+.
        let spaceEnd = runEnd(text, position, upper, .whitespace, table)
        var index = spaceEnd
        while index > position {
            index -= 1
            let byte = text[index]
            if byte == 0x0A || byte == 0x0D { return index + 1 }
            if byte < 0x80 { continue }
            while index > position, text[index] & 0xC0 == 0x80 { index -= 1 }
        }
        return whitespaceMatch(text, position, upper, table)
    }
}
