/// Splits template source into tokens the way jinja2's lexer does under transformers' settings
/// (`trim_blocks=True`, `lstrip_blocks=True`, default delimiters, `keep_trailing_newline=False`):
/// newlines are normalised to `\n` and one trailing newline is dropped before lexing, `{%-`/`-%}`
/// strip surrounding whitespace, a block or comment tag eats the single newline after it, and
/// spaces before a block or comment tag that starts a line are dropped.
struct JinjaToken: Sendable {
    enum Kind: Sendable, Equatable {
        case text(String)
        case variableBegin, variableEnd, blockBegin, blockEnd
        case name(String)
        case string(String)
        case integer(Int)
        case float(Double)
        case op(String)
        case end
    }

    var kind: Kind
    var offset: SourceOffset
}

struct JinjaLexer {
    let source: [Unicode.Scalar]
    private var tokens: [JinjaToken] = []
    private var position = 0
    private var lineStarting = true
    let trimBlocks: Bool
    let lstripBlocks: Bool

    init(source: [Unicode.Scalar], trimBlocks: Bool = true, lstripBlocks: Bool = true) {
        self.source = source
        self.trimBlocks = trimBlocks
        self.lstripBlocks = lstripBlocks
    }

    /// `\r\n` and `\r` become `\n`, and one trailing newline is removed, as jinja2 does before lexing.
    static func normalize(_ text: String) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.unicodeScalars.count)
        var previousWasCR = false
        for scalar in text.unicodeScalars {
            if scalar == "\r" {
                out.append("\n")
                previousWasCR = true
                continue
            }
            if scalar == "\n" && previousWasCR {
                previousWasCR = false
                continue
            }
            previousWasCR = false
            out.append(scalar)
        }
        if out.last == "\n" { out.removeLast() }
        return out
    }

    mutating func tokenize() throws(RuntimeFailure) -> [JinjaToken] {
        while position < source.count {
            try lexRoot()
        }
        tokens.append(JinjaToken(kind: .end, offset: SourceOffset(offset: source.count)))
        return tokens
    }

    // MARK: - Root state: template data up to the next tag

    private enum TagKind { case variable, block, comment, raw }

    private mutating func lexRoot() throws(RuntimeFailure) {
        let textStart = position
        var scan = position
        while scan + 1 < source.count {
            if source[scan] == "{" {
                let next = source[scan + 1]
                if next == "{" || next == "%" || next == "#" { break }
            }
            scan += 1
        }
        guard scan + 1 < source.count else {
            emitText(from: textStart, to: source.count)
            position = source.count
            return
        }
        var kind: TagKind = source[scan + 1] == "{" ? .variable : (source[scan + 1] == "%" ? .block : .comment)
        var afterOpener = scan + 2
        var sign: Unicode.Scalar? = nil
        if afterOpener < source.count, source[afterOpener] == "-" || source[afterOpener] == "+" {
            sign = source[afterOpener]
            afterOpener += 1
        }
        var rawBodyStart = 0
        if kind == .block, let end = matchTagWord("raw", from: afterOpener, trim: false, allowPlus: false) {
            kind = .raw
            rawBodyStart = end
        }
        appendStrippedText(from: textStart, to: scan, sign: sign, isVariable: kind == .variable)
        switch kind {
        case .variable:
            tokens.append(JinjaToken(kind: .variableBegin, offset: SourceOffset(offset: scan)))
            position = afterOpener
            lineStarting = false
            try lexInsideTag(isBlock: false)
        case .block:
            tokens.append(JinjaToken(kind: .blockBegin, offset: SourceOffset(offset: scan)))
            position = afterOpener
            lineStarting = false
            try lexInsideTag(isBlock: true)
        case .comment:
            try skipComment(openedAt: scan, from: afterOpener)
        case .raw:
            lineStarting = rawBodyStart > 0 && source[rawBodyStart - 1] == "\n"
            try lexRaw(openedAt: scan, from: rawBodyStart)
        }
    }

    /// Matches `\s*word\s*` followed by a block end (`-%}` with trailing whitespace, `+%}` unless
    /// `allowPlus` is false as for jinja2's raw opener, or `%}` with the trim_blocks newline when `trim`),
    /// returning the offset after the match.
    private func matchTagWord(_ word: String, from start: Int, trim: Bool, allowPlus: Bool = true) -> Int? {
        var i = start
        while i < source.count, isPythonWhitespace(source[i]) { i += 1 }
        for scalar in word.unicodeScalars {
            guard i < source.count, source[i] == scalar else { return nil }
            i += 1
        }
        while i < source.count, isPythonWhitespace(source[i]) { i += 1 }
        if !allowPlus && hasPrefix("+%}", at: i) { return nil }
        return matchBlockEnd(at: i, trim: trim)
    }

    /// The offset after a block end at `i`, or nil when there is none.
    private func matchBlockEnd(at i: Int, trim: Bool) -> Int? {
        if hasPrefix("+%}", at: i) { return i + 3 }
        if hasPrefix("-%}", at: i) {
            var j = i + 3
            while j < source.count, isPythonWhitespace(source[j]) { j += 1 }
            return j
        }
        if hasPrefix("%}", at: i) {
            if trim && i + 2 < source.count && source[i + 2] == "\n" { return i + 3 }
            return i + 2
        }
        return nil
    }

    private func hasPrefix(_ literal: String, at i: Int) -> Bool {
        var j = i
        for scalar in literal.unicodeScalars {
            guard j < source.count, source[j] == scalar else { return false }
            j += 1
        }
        return true
    }

    /// Emits the data before a tag after whitespace control: `-` strips all whitespace before the tag;
    /// otherwise lstrip_blocks drops spaces between the start of the line and a block or comment tag.
    private mutating func appendStrippedText(from start: Int, to end: Int, sign: Unicode.Scalar?, isVariable: Bool) {
        var stop = end
        if sign == "-" {
            while stop > start, isPythonWhitespace(source[stop - 1]) { stop -= 1 }
        } else if sign != "+" && lstripBlocks && !isVariable {
            var lineStart = end
            while lineStart > start, source[lineStart - 1] != "\n" { lineStart -= 1 }
            let atLineStart = lineStart > start || lineStarting
            if atLineStart && lineStart < end && (lineStart..<end).allSatisfy({ isPythonWhitespace(source[$0]) }) {
                stop = lineStart
            }
        }
        emitText(from: start, to: stop)
    }

    private mutating func emitText(from start: Int, to end: Int) {
        guard end > start else { return }
        var text = String.UnicodeScalarView()
        text.append(contentsOf: source[start..<end])
        tokens.append(JinjaToken(kind: .text(String(text)), offset: SourceOffset(offset: start)))
    }

    // MARK: - Comments and raw blocks

    private mutating func skipComment(openedAt start: Int, from bodyStart: Int) throws(RuntimeFailure) {
        // jinja2 reports a missing `#}` only if something follows the opener; at the very end it stops.
        if bodyStart >= source.count {
            position = source.count
            return
        }
        var i = bodyStart
        while i < source.count {
            if hasPrefix("+#}", at: i) {
                position = i + 3
                lineStarting = false
                return
            }
            if hasPrefix("-#}", at: i) {
                var j = i + 3
                while j < source.count, isPythonWhitespace(source[j]) { j += 1 }
                position = j
                lineStarting = source[j - 1] == "\n"
                return
            }
            if hasPrefix("#}", at: i) {
                var j = i + 2
                if trimBlocks && j < source.count && source[j] == "\n" { j += 1 }
                position = j
                lineStarting = source[j - 1] == "\n"
                return
            }
            i += 1
        }
        throw RuntimeFailure("missing end of comment tag '#}'", kind: .syntax, at: SourceOffset(offset: start))
    }

    private mutating func lexRaw(openedAt start: Int, from bodyStart: Int) throws(RuntimeFailure) {
        if bodyStart >= source.count {
            position = source.count
            return
        }
        var i = bodyStart
        while i + 1 < source.count {
            if source[i] == "{" && source[i + 1] == "%" {
                var afterOpener = i + 2
                var sign: Unicode.Scalar? = nil
                if afterOpener < source.count, source[afterOpener] == "-" || source[afterOpener] == "+" {
                    sign = source[afterOpener]
                    afterOpener += 1
                }
                if let end = matchTagWord("endraw", from: afterOpener, trim: trimBlocks) {
                    appendStrippedText(from: bodyStart, to: i, sign: sign, isVariable: false)
                    position = end
                    lineStarting = source[end - 1] == "\n"
                    return
                }
            }
            i += 1
        }
        throw RuntimeFailure("missing '{% endraw %}' for the raw block", kind: .syntax, at: SourceOffset(offset: start))
    }

    // MARK: - Inside `{{ }}` and `{% %}`

    private mutating func lexInsideTag(isBlock: Bool) throws(RuntimeFailure) {
        var brackets: [(closer: Unicode.Scalar, offset: Int)] = []
        while position < source.count {
            if brackets.isEmpty {
                if isBlock, let end = matchBlockEnd(at: position, trim: trimBlocks) {
                    tokens.append(JinjaToken(kind: .blockEnd, offset: SourceOffset(offset: position)))
                    position = end
                    lineStarting = source[end - 1] == "\n"
                    return
                }
                if !isBlock {
                    if hasPrefix("-}}", at: position) {
                        tokens.append(JinjaToken(kind: .variableEnd, offset: SourceOffset(offset: position)))
                        position += 3
                        while position < source.count, isPythonWhitespace(source[position]) { position += 1 }
                        lineStarting = source[position - 1] == "\n"
                        return
                    }
                    if hasPrefix("}}", at: position) {
                        tokens.append(JinjaToken(kind: .variableEnd, offset: SourceOffset(offset: position)))
                        position += 2
                        lineStarting = false
                        return
                    }
                }
            }
            let scalar = source[position]
            if isPythonWhitespace(scalar) {
                position += 1
                continue
            }
            let start = position
            if let token = try lexNumber() {
                tokens.append(JinjaToken(kind: token, offset: SourceOffset(offset: start)))
            } else if scalar == "_" || scalar.properties.isXIDStart {
                var end = position + 1
                while end < source.count, source[end] == "_" || source[end].properties.isXIDContinue { end += 1 }
                var name = String.UnicodeScalarView()
                name.append(contentsOf: source[position..<end])
                tokens.append(JinjaToken(kind: .name(String(name)), offset: SourceOffset(offset: start)))
                position = end
            } else if scalar == "'" || scalar == "\"" {
                let value = try lexString(quote: scalar)
                tokens.append(JinjaToken(kind: .string(value), offset: SourceOffset(offset: start)))
            } else if let op = lexOperator() {
                let first = op.unicodeScalars.first ?? " "
                switch first {
                case "(": brackets.append((")", start))
                case "[": brackets.append(("]", start))
                case "{": brackets.append(("}", start))
                case ")", "]", "}":
                    guard let expected = brackets.popLast() else {
                        throw RuntimeFailure("unexpected '\(op)'", kind: .syntax, at: SourceOffset(offset: start))
                    }
                    if expected.closer != first {
                        throw RuntimeFailure("unexpected '\(op)', expected '\(expected.closer)'", kind: .syntax, at: SourceOffset(offset: start))
                    }
                default: break
                }
                tokens.append(JinjaToken(kind: .op(op), offset: SourceOffset(offset: start)))
            } else {
                throw RuntimeFailure("unexpected character \(pythonRepr(String(scalar)))", kind: .syntax, at: SourceOffset(offset: start))
            }
        }
    }

    private static let twoCharacterOperators: Set<String> = ["//", "**", "==", "!=", ">=", "<="]
    private static let oneCharacterOperators: Set<Unicode.Scalar> = [
        "+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";",
    ]

    private mutating func lexOperator() -> String? {
        if position + 1 < source.count {
            var pair = String.UnicodeScalarView()
            pair.append(source[position])
            pair.append(source[position + 1])
            let text = String(pair)
            if Self.twoCharacterOperators.contains(text) {
                position += 2
                return text
            }
        }
        if Self.oneCharacterOperators.contains(source[position]) {
            position += 1
            return String(source[position - 1])
        }
        return nil
    }

    private func isDigit(_ i: Int) -> Bool {
        i < source.count && source[i].value >= 48 && source[i].value <= 57
    }

    /// `(\d+_)*\d+` starting at `i`: the offset after it, or nil.
    private func digitRun(at i: Int) -> Int? {
        guard isDigit(i) else { return nil }
        var j = i
        while true {
            while isDigit(j) { j += 1 }
            if j < source.count && source[j] == "_" && isDigit(j + 1) { j += 1 } else { break }
        }
        return j
    }

    private func text(_ range: Range<Int>) -> String {
        var view = String.UnicodeScalarView()
        for scalar in source[range] where scalar != "_" { view.append(scalar) }
        return String(view)
    }

    /// jinja2's float rule (tried first, and not right after a `.`), then its integer rule.
    private mutating func lexNumber() throws(RuntimeFailure) -> JinjaToken.Kind? {
        let start = position
        guard isDigit(start) else { return nil }
        if start == 0 || source[start - 1] != "." {
            if let mantissaEnd = digitRun(at: start) {
                var fractionEnd: Int? = nil
                if mantissaEnd < source.count && source[mantissaEnd] == ".", let end = digitRun(at: mantissaEnd + 1) {
                    fractionEnd = end
                }
                let exponentStart = fractionEnd ?? mantissaEnd
                if exponentStart < source.count && (source[exponentStart] == "e" || source[exponentStart] == "E") {
                    var j = exponentStart + 1
                    if j < source.count && (source[j] == "+" || source[j] == "-") { j += 1 }
                    if let end = digitRun(at: j) {
                        position = end
                        return .float(Double(text(start..<end)) ?? .infinity)
                    }
                }
                if let end = fractionEnd {
                    position = end
                    return .float(Double(text(start..<end)) ?? .infinity)
                }
            }
        }
        // Integers: 0b.., 0o.., 0x.. (underscores allowed between digits), decimal, or zeros.
        if source[start] == "0", start + 1 < source.count {
            let marker = source[start + 1]
            let radix: Int? = switch marker {
            case "b", "B": 2
            case "o", "O": 8
            case "x", "X": 16
            default: nil
            }
            if let radix {
                var j = start + 2
                var digits = ""
                while j < source.count {
                    if source[j] == "_" && j + 1 < source.count && Int(String(source[j + 1]), radix: radix) != nil {
                        j += 1
                        continue
                    }
                    guard Int(String(source[j]), radix: radix) != nil else { break }
                    digits.unicodeScalars.append(source[j])
                    j += 1
                }
                if !digits.isEmpty {
                    guard let value = Int(digits, radix: radix) else {
                        throw RuntimeFailure("integer literal too large", kind: .syntax, at: SourceOffset(offset: start))
                    }
                    position = j
                    return .integer(value)
                }
            }
        }
        if source[start] == "0" {
            var j = start + 1
            while true {
                if j < source.count && source[j] == "0" { j += 1; continue }
                if j + 1 < source.count && source[j] == "_" && source[j + 1] == "0" { j += 2; continue }
                break
            }
            position = j
            return .integer(0)
        }
        let end = digitRun(at: start) ?? start + 1
        guard let value = Int(text(start..<end)) else {
            throw RuntimeFailure("integer literal too large", kind: .syntax, at: SourceOffset(offset: start))
        }
        position = end
        return .integer(value)
    }

    /// A quoted literal, decoded as jinja2 does: the body is made ASCII with backslash escapes for
    /// non-ASCII characters, then decoded with Python's `unicode-escape` codec.
    private mutating func lexString(quote: Unicode.Scalar) throws(RuntimeFailure) -> String {
        let start = position
        var i = position + 1
        while i < source.count && source[i] != quote {
            i += source[i] == "\\" ? 2 : 1
        }
        guard i < source.count else {
            throw RuntimeFailure("unterminated string literal", kind: .syntax, at: SourceOffset(offset: start))
        }
        position = i + 1
        return try decodeUnicodeEscape(source[(start + 1)..<i], at: SourceOffset(offset: start))
    }
}

/// Python's `s.encode("ascii", "backslashreplace").decode("unicode-escape")`.
func decodeUnicodeEscape(_ body: ArraySlice<Unicode.Scalar>, at offset: SourceOffset) throws(RuntimeFailure) -> String {
    var ascii: [UInt8] = []
    ascii.reserveCapacity(body.count)
    for scalar in body {
        if scalar.isASCII {
            ascii.append(UInt8(scalar.value))
        } else {
            let (prefix, width): (String, Int) = scalar.value < 0x100 ? ("\\x", 2) : (scalar.value < 0x10000 ? ("\\u", 4) : ("\\U", 8))
            let hex = String(scalar.value, radix: 16)
            ascii.append(contentsOf: Array((prefix + String(repeating: "0", count: width - hex.count) + hex).utf8))
        }
    }
    var out = String.UnicodeScalarView()
    var i = 0
    func hexValue(_ count: Int, _ name: String) throws(RuntimeFailure) -> UInt32 {
        guard i + count <= ascii.count else {
            throw RuntimeFailure("truncated \(name) escape in string literal", kind: .syntax, at: offset)
        }
        var value: UInt32 = 0
        for k in 0..<count {
            guard let digit = Int(String(UnicodeScalar(ascii[i + k])), radix: 16) else {
                throw RuntimeFailure("truncated \(name) escape in string literal", kind: .syntax, at: offset)
            }
            value = value * 16 + UInt32(digit)
        }
        i += count
        return value
    }
    func append(_ value: UInt32) throws(RuntimeFailure) {
        guard value <= 0x10FFFF else {
            throw RuntimeFailure("illegal Unicode character in string literal", kind: .syntax, at: offset)
        }
        // Python keeps lone surrogates; a Swift string cannot, so they become U+FFFD.
        out.append(Unicode.Scalar(value) ?? "\u{FFFD}")
    }
    while i < ascii.count {
        let byte = ascii[i]
        guard byte == UInt8(ascii: "\\") else {
            out.append(Unicode.Scalar(byte))
            i += 1
            continue
        }
        guard i + 1 < ascii.count else {
            throw RuntimeFailure("string literal ends with a lone backslash", kind: .syntax, at: offset)
        }
        let code = ascii[i + 1]
        i += 2
        switch code {
        case UInt8(ascii: "\n"): break
        case UInt8(ascii: "\\"): out.append("\\")
        case UInt8(ascii: "'"): out.append("'")
        case UInt8(ascii: "\""): out.append("\"")
        case UInt8(ascii: "a"): out.append("\u{07}")
        case UInt8(ascii: "b"): out.append("\u{08}")
        case UInt8(ascii: "f"): out.append("\u{0C}")
        case UInt8(ascii: "n"): out.append("\n")
        case UInt8(ascii: "r"): out.append("\r")
        case UInt8(ascii: "t"): out.append("\t")
        case UInt8(ascii: "v"): out.append("\u{0B}")
        case UInt8(ascii: "x"): try append(try hexValue(2, "\\xXX"))
        case UInt8(ascii: "u"): try append(try hexValue(4, "\\uXXXX"))
        case UInt8(ascii: "U"): try append(try hexValue(8, "\\UXXXXXXXX"))
        case UInt8(ascii: "0")...UInt8(ascii: "7"):
            var value = UInt32(code - UInt8(ascii: "0"))
            var digits = 1
            while digits < 3, i < ascii.count, ascii[i] >= UInt8(ascii: "0"), ascii[i] <= UInt8(ascii: "7") {
                value = value * 8 + UInt32(ascii[i] - UInt8(ascii: "0"))
                i += 1
                digits += 1
            }
            try append(value)
        case UInt8(ascii: "N"):
            throw RuntimeFailure("\\N{...} escapes are not supported in string literals", kind: .syntax, at: offset)
        default:
            out.append("\\")
            out.append(Unicode.Scalar(code))
        }
    }
    return String(out)
}
