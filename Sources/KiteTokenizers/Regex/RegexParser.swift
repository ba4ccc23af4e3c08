/// Why a regex pattern could not be compiled: the construct and its position (in Unicode scalars, from 0).
struct RegexError: Error, Sendable {
    let message: String
    let offset: Int
}

/// A parsed regex: the subset of Oniguruma's syntax that tokenizer pre-tokenizers use, with Oniguruma's
/// meanings (`\s`, `\d`, `\w` and `\p{..}` are Unicode classes; `.` excludes only "\n"; `^` and `$` match at
/// line boundaries).
indirect enum RegexNode: Sendable {
    case empty
    case set(ScalarSet)
    case concat([RegexNode])
    case alternation([RegexNode])
    case repetition(RegexNode, min: Int, max: Int?, mode: RepetitionMode)
    case lookahead(RegexNode, negated: Bool)
    case atomic(RegexNode)
    case assertion(RegexAssertion)

    /// Whether the node can match the empty string (loops over such nodes need a progress check).
    var isNullable: Bool {
        switch self {
        case .empty, .lookahead, .assertion: return true
        case .set: return false
        case .concat(let items): return items.allSatisfy(\.isNullable)
        case .alternation(let items): return items.contains { $0.isNullable }
        case .repetition(let node, let min, _, _): return min == 0 || node.isNullable
        case .atomic(let node): return node.isNullable
        }
    }
}

enum RepetitionMode: Sendable {
    case greedy, lazy, possessive
}

enum RegexAssertion: Sendable {
    case lineStart, lineEnd, textStart, textEnd, textEndBeforeFinalNewline, wordBoundary, notWordBoundary
}

/// Recursive-descent parser over the pattern's Unicode scalars.
struct RegexParser {
    private let scalars: [UInt32]
    private var position = 0
    private var depth = 0
    /// Deeper nesting is refused rather than risking the stack.
    static let maximumDepth = 64
    /// Larger counted repetitions are refused: they would make the compiled program huge.
    static let maximumRepeat = 1000

    init(_ pattern: String) {
        scalars = pattern.unicodeScalars.map(\.value)
    }

    static func parse(_ pattern: String) throws(RegexError) -> RegexNode {
        var parser = RegexParser(pattern)
        let node = try parser.parseAlternation(caseInsensitive: false)
        if parser.position < parser.scalars.count {
            throw RegexError(message: "unmatched ')'", offset: parser.position)
        }
        return node
    }

    private var atEnd: Bool { position >= scalars.count }

    private func peek(_ ahead: Int = 0) -> UInt32? {
        position + ahead < scalars.count ? scalars[position + ahead] : nil
    }

    private func error(_ message: String, at offset: Int? = nil) -> RegexError {
        RegexError(message: message, offset: offset ?? position)
    }

    private mutating func parseAlternation(caseInsensitive: Bool) throws(RegexError) -> RegexNode {
        depth += 1
        defer { depth -= 1 }
        if depth > RegexParser.maximumDepth { throw error("groups nested deeper than \(RegexParser.maximumDepth)") }
        var flags = caseInsensitive
        var branches: [RegexNode] = [try parseConcat(caseInsensitive: &flags)]
        while peek() == ascii("|") {
            position += 1
            branches.append(try parseConcat(caseInsensitive: &flags))
        }
        return branches.count == 1 ? branches[0] : .alternation(branches)
    }

    /// `caseInsensitive` is inout because an inline `(?i)` changes the flag for the rest of the enclosing group.
    private mutating func parseConcat(caseInsensitive: inout Bool) throws(RegexError) -> RegexNode {
        var items: [RegexNode] = []
        while let next = peek(), next != ascii("|"), next != ascii(")") {
            if next == ascii("("), peek(1) == ascii("?"), let flags = try parseInlineFlags() {
                caseInsensitive = flags
                continue
            }
            var atom = try parseAtom(caseInsensitive: caseInsensitive)
            while let quantified = try parseQuantifier(applyingTo: atom) { atom = quantified }
            items.append(atom)
        }
        if items.isEmpty { return .empty }
        return items.count == 1 ? items[0] : .concat(items)
    }

    /// `(?i)` / `(?-i)` standing alone: returns the new case-insensitivity, or nil (position unchanged) when the
    /// group is something else.
    private mutating func parseInlineFlags() throws(RegexError) -> Bool? {
        var offset = 2
        var enable = true
        var value: Bool?
        while let scalar = peek(offset) {
            if scalar == ascii(")") {
                guard let value else { return nil }
                position += offset + 1
                return value
            }
            if scalar == ascii("-") {
                enable = false
            } else if scalar == ascii("i") {
                value = enable
            } else {
                return nil
            }
            offset += 1
        }
        return nil
    }

    private mutating func parseAtom(caseInsensitive: Bool) throws(RegexError) -> RegexNode {
        guard let scalar = peek() else { throw error("unexpected end of pattern") }
        let start = position
        position += 1
        switch scalar {
        case ascii("("):
            return try parseGroup(caseInsensitive: caseInsensitive, start: start)
        case ascii("["):
            return .set(try parseClass(caseInsensitive: caseInsensitive))
        case ascii("."):
            return .set(ScalarSet(scalar: 0x0A, caseInsensitive: false).negatedCopy())
        case ascii("^"):
            return .assertion(.lineStart)
        case ascii("$"):
            return .assertion(.lineEnd)
        case ascii("\\"):
            return try parseEscape(caseInsensitive: caseInsensitive, start: start)
        case ascii("*"), ascii("+"), ascii("?"):
            throw error("nothing to repeat before '\(Character(Unicode.Scalar(UInt8(scalar))))'", at: start)
        case ascii("{"):
            position = start
            if try parseBraces() != nil { throw error("nothing to repeat before '{'", at: start) }
            position = start + 1
            return .set(ScalarSet(scalar: scalar, caseInsensitive: false))
        default:
            return .set(ScalarSet(scalar: scalar, caseInsensitive: caseInsensitive))
        }
    }

    private mutating func parseGroup(caseInsensitive: Bool, start: Int) throws(RegexError) -> RegexNode {
        var flags = caseInsensitive
        var kind = 0  // 0: plain group, 1: lookahead, 2: negative lookahead, 3: atomic
        if peek() == ascii("?") {
            position += 1
            guard let marker = peek() else { throw error("unterminated group", at: start) }
            switch marker {
            case ascii(":"): position += 1
            case ascii("="): position += 1; kind = 1
            case ascii("!"): position += 1; kind = 2
            case ascii(">"): position += 1; kind = 3
            case ascii("#"):
                while let scalar = peek(), scalar != ascii(")") { position += 1 }
                if atEnd { throw error("unterminated comment", at: start) }
                position += 1
                return .empty
            case ascii("<"), ascii("P"), ascii("'"):
                if marker == ascii("<"), peek(1) == ascii("=") || peek(1) == ascii("!") {
                    throw error("lookbehind is not supported", at: start)
                }
                if marker == ascii("P") { position += 1 }
                let close = peek() == ascii("'") ? ascii("'") : ascii(">")
                position += 1
                while let scalar = peek(), scalar != close { position += 1 }
                if atEnd { throw error("unterminated group name", at: start) }
                position += 1
            case ascii("i"), ascii("-"):
                var enable = true
                while let scalar = peek(), scalar != ascii(":") {
                    if scalar == ascii("-") {
                        enable = false
                    } else if scalar == ascii("i") {
                        flags = enable
                    } else {
                        throw error("group flag '\(Character(Unicode.Scalar(scalar) ?? "?"))' is not supported")
                    }
                    position += 1
                }
                if atEnd { throw error("unterminated group", at: start) }
                position += 1
            default:
                throw error("group syntax '(?\(Character(Unicode.Scalar(marker) ?? "?"))' is not supported", at: start)
            }
        }
        let body = try parseAlternation(caseInsensitive: flags)
        guard peek() == ascii(")") else { throw error("missing ')'", at: start) }
        position += 1
        switch kind {
        case 1: return .lookahead(body, negated: false)
        case 2: return .lookahead(body, negated: true)
        case 3: return .atomic(body)
        default: return body
        }
    }

    /// `{n}`, `{n,}`, `{,m}`, `{n,m}` at the current position, consuming it; nil (position unchanged) when the
    /// brace is not a quantifier, in which case Oniguruma reads it as a literal.
    private mutating func parseBraces() throws(RegexError) -> (Int, Int?)? {
        let start = position
        guard peek() == ascii("{") else { return nil }
        position += 1
        func number() -> Int? {
            var value: Int?
            while let scalar = peek(), scalar >= ascii("0"), scalar <= ascii("9") {
                value = min((value ?? 0) * 10 + Int(scalar - ascii("0")), 1_000_000)
                position += 1
            }
            return value
        }
        let low = number()
        var high: Int?
        var sawComma = false
        if peek() == ascii(",") {
            sawComma = true
            position += 1
            high = number()
        } else {
            high = low
        }
        guard peek() == ascii("}"), low != nil || high != nil else {
            position = start
            return nil
        }
        position += 1
        let minimum = low ?? 0
        if !sawComma, low == nil {
            position = start
            return nil
        }
        if let high, high < minimum { throw error("repeat range {\(minimum),\(high)} is empty", at: start) }
        if minimum > RegexParser.maximumRepeat || (high ?? 0) > RegexParser.maximumRepeat {
            throw error("repeat count above \(RegexParser.maximumRepeat)", at: start)
        }
        return (minimum, high)
    }

    private mutating func parseQuantifier(applyingTo atom: RegexNode) throws(RegexError) -> RegexNode? {
        guard let scalar = peek() else { return nil }
        var minimum = 0
        var maximum: Int?
        switch scalar {
        case ascii("*"): position += 1
        case ascii("+"): position += 1; minimum = 1
        case ascii("?"): position += 1; maximum = 1
        case ascii("{"):
            guard let (low, high) = try parseBraces() else { return nil }
            minimum = low
            maximum = high
        default: return nil
        }
        if case .assertion = atom { throw error("quantifier after an assertion") }
        var mode = RepetitionMode.greedy
        if peek() == ascii("?") {
            position += 1
            mode = .lazy
        } else if peek() == ascii("+"), scalar != ascii("{") {
            position += 1
            mode = .possessive
        }
        return .repetition(atom, min: minimum, max: maximum, mode: mode)
    }

    private mutating func parseEscape(caseInsensitive: Bool, start: Int) throws(RegexError) -> RegexNode {
        guard let scalar = peek() else { throw error("pattern ends with a backslash", at: start) }
        switch scalar {
        case ascii("b"): position += 1; return .assertion(.wordBoundary)
        case ascii("B"): position += 1; return .assertion(.notWordBoundary)
        case ascii("A"): position += 1; return .assertion(.textStart)
        case ascii("z"): position += 1; return .assertion(.textEnd)
        case ascii("Z"): position += 1; return .assertion(.textEndBeforeFinalNewline)
        default:
            switch try parseEscapedItem(inClass: false, start: start) {
            case .scalar(let value): return .set(ScalarSet(scalar: value, caseInsensitive: caseInsensitive))
            case .set(let set): return .set(set)
            }
        }
    }

    private enum EscapedItem {
        case scalar(UInt32)
        case set(ScalarSet)
    }

    /// An escape after the backslash that stands for one scalar or a class (shared by classes and the top level).
    private mutating func parseEscapedItem(inClass: Bool, start: Int) throws(RegexError) -> EscapedItem {
        guard let scalar = peek() else { throw error("pattern ends with a backslash", at: start) }
        position += 1
        switch scalar {
        case ascii("t"): return .scalar(0x09)
        case ascii("n"): return .scalar(0x0A)
        case ascii("r"): return .scalar(0x0D)
        case ascii("f"): return .scalar(0x0C)
        case ascii("v"): return .scalar(0x0B)
        case ascii("a"): return .scalar(0x07)
        case ascii("e"): return .scalar(0x1B)
        case ascii("b") where inClass: return .scalar(0x08)
        case ascii("0"):
            var value: UInt32 = 0
            var digits = 0
            while digits < 2, let next = peek(), next >= ascii("0"), next <= ascii("7") {
                value = value * 8 + (next - ascii("0"))
                position += 1
                digits += 1
            }
            return .scalar(value)
        case ascii("x"):
            if peek() == ascii("{") {
                position += 1
                let value = try hexNumber(maxDigits: 8, start: start)
                guard peek() == ascii("}") else { throw error("unterminated \\x{...}", at: start) }
                position += 1
                return .scalar(try validScalar(value, start: start))
            }
            return .scalar(try hexNumber(maxDigits: 2, start: start))
        case ascii("u"):
            let before = position
            let value = try hexNumber(maxDigits: 4, start: start)
            if position - before != 4 { throw error("\\u needs four hex digits", at: start) }
            return .scalar(try validScalar(value, start: start))
        case ascii("d"): return .set(ScalarSet(classes: .decimalNumber))
        case ascii("D"): return .set(ScalarSet(classes: .decimalNumber, negated: true))
        case ascii("s"): return .set(ScalarSet(classes: .whitespace))
        case ascii("S"): return .set(ScalarSet(classes: .whitespace, negated: true))
        case ascii("w"), ascii("W"):
            // Outside brackets Oniguruma adds a few Latin-1 scalars to \w; inside, it does not.
            var set = ScalarSet(classes: .word, negated: scalar == ascii("W"))
            if !inClass {
                set.ranges = onigWordExtras
                set.finish()
            }
            return .set(set)
        case ascii("h"), ascii("H"):
            var set = ScalarSet()
            set.ranges = [ascii("0")...ascii("9"), ascii("A")...ascii("F"), ascii("a")...ascii("f")]
            set.negated = scalar == ascii("H")
            set.finish()
            return .set(set)
        case ascii("p"), ascii("P"):
            guard peek() == ascii("{") else { throw error("\\p needs a {name}", at: start) }
            position += 1
            var negated = scalar == ascii("P")
            if peek() == ascii("^") {
                negated.toggle()
                position += 1
            }
            var name = ""
            while let next = peek(), next != ascii("}") {
                name.unicodeScalars.append(Unicode.Scalar(next) ?? "?")
                position += 1
            }
            guard peek() == ascii("}") else { throw error("unterminated \\p{...}", at: start) }
            position += 1
            guard let classes = UnicodeClass.named(name) else {
                throw error("Unicode property '\(name)' is not supported", at: start)
            }
            return .set(ScalarSet(classes: classes, negated: negated))
        default:
            if scalar >= ascii("1"), scalar <= ascii("9") { throw error("backreferences are not supported", at: start) }
            let isASCIILetterOrDigit = (scalar >= ascii("a") && scalar <= ascii("z"))
                || (scalar >= ascii("A") && scalar <= ascii("Z")) || (scalar >= ascii("0") && scalar <= ascii("9"))
            if isASCIILetterOrDigit {
                throw error("escape '\\\(Character(Unicode.Scalar(UInt8(scalar))))' is not supported", at: start)
            }
            return .scalar(scalar)
        }
    }

    private mutating func hexNumber(maxDigits: Int, start: Int) throws(RegexError) -> UInt32 {
        var value: UInt32 = 0
        var digits = 0
        while digits < maxDigits, let next = peek(), let digit = hexValue(next) {
            value = value * 16 + digit
            position += 1
            digits += 1
        }
        if digits == 0 { throw error("expected hex digits", at: start) }
        return value
    }

    private func validScalar(_ value: UInt32, start: Int) throws(RegexError) -> UInt32 {
        guard Unicode.Scalar(value) != nil else {
            throw error("U+\(String(value, radix: 16, uppercase: true)) is not a Unicode scalar", at: start)
        }
        return value
    }

    private func hexValue(_ scalar: UInt32) -> UInt32? {
        switch scalar {
        case ascii("0")...ascii("9"): return scalar - ascii("0")
        case ascii("a")...ascii("f"): return scalar - ascii("a") + 10
        case ascii("A")...ascii("F"): return scalar - ascii("A") + 10
        default: return nil
        }
    }

    /// A bracket class, after its "[".
    private mutating func parseClass(caseInsensitive: Bool) throws(RegexError) -> ScalarSet {
        let start = position - 1
        depth += 1
        defer { depth -= 1 }
        if depth > RegexParser.maximumDepth { throw error("classes nested deeper than \(RegexParser.maximumDepth)") }
        var set = ScalarSet()
        set.caseInsensitive = caseInsensitive
        if peek() == ascii("^") {
            set.negated = true
            position += 1
        }
        var first = true
        while true {
            guard let scalar = peek() else { throw error("unterminated character class", at: start) }
            if scalar == ascii("]"), !first {
                position += 1
                break
            }
            first = false
            if scalar == ascii("["), peek(1) == ascii(":") {
                throw error("POSIX bracket classes are not supported")
            }
            if scalar == ascii("&"), peek(1) == ascii("&") {
                throw error("class intersection '&&' is not supported")
            }
            let itemStart = position
            var low: UInt32
            if scalar == ascii("[") {
                position += 1
                set.nested.append(try parseClass(caseInsensitive: caseInsensitive))
                continue
            } else if scalar == ascii("\\") {
                position += 1
                switch try parseEscapedItem(inClass: true, start: itemStart) {
                case .set(let inner):
                    addClass(inner, to: &set)
                    continue
                case .scalar(let value):
                    low = value
                }
            } else {
                position += 1
                low = scalar
            }
            // A range "a-z"; a "-" before "]" is a literal.
            if peek() == ascii("-"), let after = peek(1), after != ascii("]") {
                position += 1
                var high: UInt32
                if after == ascii("\\") {
                    position += 1
                    guard case .scalar(let value) = try parseEscapedItem(inClass: true, start: position - 1) else {
                        throw error("a class cannot end a range", at: itemStart)
                    }
                    high = value
                } else if after == ascii("[") {
                    throw error("a class cannot end a range", at: itemStart)
                } else {
                    position += 1
                    high = after
                }
                if high < low { throw error("range out of order in character class", at: itemStart) }
                set.ranges.append(low...high)
            } else {
                set.ranges.append(low...low)
            }
        }
        set.finish()
        return set
    }

    /// Adds an escaped class (`\s`, `\P{L}`) to a bracket class: a plain class joins `classes`, a negated one
    /// `complementedClasses`, anything else becomes a nested class.
    private func addClass(_ inner: ScalarSet, to set: inout ScalarSet) {
        if inner.ranges.isEmpty, inner.nested.isEmpty, inner.complementedClasses.isEmpty {
            if inner.negated {
                set.complementedClasses.append(inner.classes)
            } else {
                set.classes.formUnion(inner.classes)
            }
        } else {
            set.nested.append(inner)
        }
    }
}

@inline(__always)
func ascii(_ character: Unicode.Scalar) -> UInt32 { character.value }

extension ScalarSet {
    func negatedCopy() -> ScalarSet {
        var copy = self
        copy.negated.toggle()
        copy.finish()
        return copy
    }
}
