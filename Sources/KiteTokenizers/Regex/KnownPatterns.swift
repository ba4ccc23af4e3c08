/// Hand-written matchers for the pre-tokenizer regexes that real byte-level BPE tokenizers use, equivalent to
/// running the regex with Oniguruma's backtracking semantics but without an interpreter: each decides the
/// match at a position by looking at one or two scalars. The general `RegexProgram` runs every other pattern,
/// and the tests check each hand-written matcher against it and against HF `tokenizers`.
enum KnownPattern: Sendable, Equatable {
    /// GPT-2's `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` (ByteLevel's regex).
    case gpt2
    /// Qwen2's `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    /// (`maxDigits` 1) and Llama 3's, the same with `\p{N}{1,3}` (`maxDigits` 3).
    case qwen2(maxDigits: Int)
    /// DeepSeek-V3's three splits, in order: `\p{N}{1,3}`, `[一-龥぀-ゟ゠-ヿ]+` and its word pattern (see
    /// DeepSeekPatterns.swift). Unlike the others they leave text unmatched.
    case deepSeekDigits, deepSeekKana, deepSeekWords

    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let qwen2Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let llama3Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// The hand-written matcher for `pattern`, if there is one. Carriage returns and line feeds written as
    /// themselves or as `\r` `\n` escapes, and `"` escaped or not, are the same pattern (tokenizer.json files
    /// have both spellings).
    init?(pattern: String) {
        let normalized = pattern.normalizedSpelling()
        switch normalized {
        case KnownPattern.gpt2Pattern: self = .gpt2
        case KnownPattern.qwen2Pattern: self = .qwen2(maxDigits: 1)
        case KnownPattern.llama3Pattern: self = .qwen2(maxDigits: 3)
        case DeepSeekPatterns.digits: self = .deepSeekDigits
        case DeepSeekPatterns.kana: self = .deepSeekKana
        case DeepSeekPatterns.words: self = .deepSeekWords
        default: return nil
        }
    }

    /// Whether the pattern matches at every position, so that its matches tile the text.
    var tiles: Bool {
        switch self {
        case .gpt2, .qwen2: return true
        case .deepSeekDigits, .deepSeekKana, .deepSeekWords: return false
        }
    }

    /// Appends (start, end) of each successive match in `text[lower..<upper]` (none is empty).
    func appendMatches(in text: UnsafeBufferPointer<UInt8>, lower: Int, upper: Int, into matches: inout [(Int, Int)]) {
        if tiles {
            var ends: [Int] = []
            appendMatchEnds(in: text, lower: lower, upper: upper, into: &ends)
            var start = lower
            for end in ends {
                matches.append((start, end))
                start = end
            }
            return
        }
        UnicodeClassTable.with { table in
            var position = lower
            while position < upper {
                let end: Int?
                switch self {
                case .deepSeekDigits: end = DeepSeekPatterns.digitsMatch(text, position, upper, table)
                case .deepSeekKana: end = DeepSeekPatterns.kanaMatch(text, position, upper)
                default: end = DeepSeekPatterns.wordsMatch(text, position, upper, table)
                }
                if let end {
                    matches.append((position, end))
                    position = end
                } else {
                    position += scalarLength(text[position])
                }
            }
        }
    }

    /// Appends the end offset of each match in `text[lower..<upper]`, for patterns that tile the text (whose
    /// match ends are all a split needs).
    func appendMatchEnds(in text: UnsafeBufferPointer<UInt8>, lower: Int, upper: Int, into ends: inout [Int]) {
        UnicodeClassTable.with { table in
            var position = lower
            switch self {
            case .gpt2:
                while position < upper {
                    position = gpt2Match(text, position, upper, table)
                    ends.append(position)
                }
            case .qwen2(let maxDigits):
                while position < upper {
                    position = qwen2Match(text, position, upper, maxDigits: maxDigits, table)
                    ends.append(position)
                }
            case .deepSeekDigits, .deepSeekKana, .deepSeekWords:
                var matches: [(Int, Int)] = []
                appendMatches(in: text, lower: lower, upper: upper, into: &matches)
                ends.append(contentsOf: matches.map(\.1))
            }
        }
    }
}

extension String {
    /// The pattern with carriage returns and line feeds written as escapes and escaped quotes unescaped.
    func normalizedSpelling() -> String {
        var result = ""
        var scalars = unicodeScalars.makeIterator()
        while let scalar = scalars.next() {
            switch scalar {
            case "\r": result += "\\r"
            case "\n": result += "\\n"
            case "\\":
                // Copy an escape pair as it is, except \" which means the quote itself.
                guard let escaped = scalars.next() else {
                    result.unicodeScalars.append(scalar)
                    break
                }
                if escaped != "\"" { result.unicodeScalars.append(scalar) }
                result.unicodeScalars.append(escaped)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}

private let letter = UnicodeClass.letter
private let number = UnicodeClass.number
private let whitespace = UnicodeClass.whitespace
private let letterNumberOrSpace: UnicodeClass = [.letter, .number, .whitespace]

/// The end of the contraction (`'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d`) at `position` (an apostrophe), or
/// nil. `ignoringCase` follows Oniguruma's case folding for the letters involved, which includes U+017F LONG S.
@inline(__always)
private func contractionEnd(_ text: UnsafeBufferPointer<UInt8>, _ position: Int, _ upper: Int, ignoringCase: Bool) -> Int? {
    guard position + 1 < upper else { return nil }
    func letterAt(_ index: Int) -> (UInt32, Int)? {
        guard index < upper else { return nil }
        var (scalar, length) = decode(text, index, upper)
        if ignoringCase {
            if scalar >= 0x41 && scalar <= 0x5A {
                scalar += 0x20
            } else if scalar == 0x17F {
                scalar = 0x73  // LONG S folds to "s"
            }
        }
        return (scalar, length)
    }
    guard let (first, firstLength) = letterAt(position + 1) else { return nil }
    let afterFirst = position + 1 + firstLength
    switch first {
    case 0x73, 0x74, 0x6D, 0x64:  // s t m d
        return afterFirst
    case 0x72, 0x76:  // r v -> re ve
        if let (second, length) = letterAt(afterFirst), second == 0x65 { return afterFirst + length }
    case 0x6C:  // l -> ll
        if let (second, length) = letterAt(afterFirst), second == 0x6C { return afterFirst + length }
    default:
        break
    }
    return nil
}

/// The end of the run of scalars in (or, with `outside`, not in) `classes` starting at `position`.
@inline(__always)
func runEnd(
    _ text: UnsafeBufferPointer<UInt8>, _ position: Int, _ upper: Int, _ classes: UnicodeClass, _ table: ClassLookup,
    outside: Bool = false, limit: Int = Int.max
) -> Int {
    var index = position
    var count = 0
    while index < upper, count < limit {
        let byte = text[index]
        let scalar: UInt32
        let length: Int
        if byte < 0x80 {
            scalar = UInt32(byte)
            length = 1
        } else {
            (scalar, length) = decode(text, index, upper)
        }
        if table.contains(scalar, classes) == outside { break }
        index += length
        count += 1
    }
    return index
}

/// `\s+(?!\S)|\s+` at a whitespace scalar: the whole run when it reaches the end of the text, otherwise all
/// but its last scalar (which then prefixes the next word), or the single scalar when the run has one.
@inline(__always)
func whitespaceMatch(_ text: UnsafeBufferPointer<UInt8>, _ position: Int, _ upper: Int, _ table: ClassLookup) -> Int {
    let end = runEnd(text, position, upper, whitespace, table)
    if end == upper { return end }
    let last = previousScalarStart(text, before: end, lower: position)
    return last > position ? last : end
}

private func gpt2Match(_ text: UnsafeBufferPointer<UInt8>, _ position: Int, _ upper: Int, _ table: ClassLookup) -> Int {
    let (scalar, length) = decode(text, position, upper)
    if scalar == 0x27, let end = contractionEnd(text, position, upper, ignoringCase: false) { return end }
    var start = position
    var classes = table.of(scalar)
    if scalar == 0x20 {
        // " ?X+": the optional space joins a following letter, number or other run.
        guard position + length < upper else { return upper }
        let next = decode(text, position + length, upper).scalar
        classes = table.of(next)
        if classes.rawValue & whitespace.rawValue != 0 { return whitespaceMatch(text, position, upper, table) }
        start = position + length
    } else if classes.rawValue & whitespace.rawValue != 0 {
        return whitespaceMatch(text, position, upper, table)
    }
    if classes.rawValue & letter.rawValue != 0 { return runEnd(text, start, upper, letter, table) }
    if classes.rawValue & number.rawValue != 0 { return runEnd(text, start, upper, number, table) }
    return runEnd(text, start, upper, letterNumberOrSpace, table, outside: true)
}

private func qwen2Match(_ text: UnsafeBufferPointer<UInt8>, _ position: Int, _ upper: Int, maxDigits: Int, _ table: ClassLookup) -> Int {
    let (scalar, length) = decode(text, position, upper)
    if scalar == 0x27, let end = contractionEnd(text, position, upper, ignoringCase: true) { return end }
    let classes = table.of(scalar)
    if classes.rawValue & letter.rawValue != 0 { return runEnd(text, position, upper, letter, table) }
    if classes.rawValue & number.rawValue != 0 { return runEnd(text, position, upper, number, table, limit: maxDigits) }
    let next = position + length < upper ? decode(text, position + length, upper).scalar : nil
    let nextClasses = next.map { table.of($0) } ?? []
    // [^\r\n\p{L}\p{N}]?\p{L}+ : any other scalar but CR and LF may prefix a word.
    if scalar != 0x0D, scalar != 0x0A, nextClasses.rawValue & letter.rawValue != 0 {
        return runEnd(text, position + length, upper, letter, table)
    }
    let isSpace = classes.rawValue & whitespace.rawValue != 0
    //  ?[^\s\p{L}\p{N}]+[\r\n]*
    var otherStart = -1
    if !isSpace {
        otherStart = position
    } else if scalar == 0x20, next != nil, nextClasses.rawValue & letterNumberOrSpace.rawValue == 0 {
        otherStart = position + length
    }
    if otherStart >= 0 {
        var end = runEnd(text, otherStart, upper, letterNumberOrSpace, table, outside: true)
        while end < upper, text[end] == 0x0D || text[end] == 0x0A { end += 1 }
        return end
    }
    // \s*[\r\n]+ : the whitespace run up to and including its last CR or LF.
    let runEnd = runEnd(text, position, upper, whitespace, table)
    var index = runEnd
    while index > position {
        index -= 1
        let byte = text[index]
        if byte == 0x0A || byte == 0x0D { return index + 1 }
        if byte < 0x80 { continue }
        // Skip back over a multi-byte whitespace scalar (none of them is CR or LF).
        while index > position, text[index] & 0xC0 == 0x80 { index -= 1 }
    }
    return whitespaceMatch(text, position, upper, table)
}
