/// How to write JSON, with the same knobs and output as Python's `json.dumps`, so that
/// `{{ x | tojson }}` in a chat template renders exactly what transformers renders.
public struct JSONWriteOptions: Sendable {
    /// Escape every non-ASCII character as `\uXXXX` (Python's default `ensure_ascii=True`).
    public var ensureASCII: Bool
    /// Pretty-print with this many spaces per level; nil writes one line.
    public var indent: Int?
    /// Between items and between a key and its value. Python's default is `(", ", ": ")`, or
    /// `(",", ": ")` when indenting.
    public var itemSeparator: String
    public var keySeparator: String
    public var sortKeys: Bool

    public init(ensureASCII: Bool = true, indent: Int? = nil, itemSeparator: String? = nil, keySeparator: String = ": ", sortKeys: Bool = false) {
        self.ensureASCII = ensureASCII
        self.indent = indent
        self.itemSeparator = itemSeparator ?? (indent == nil ? ", " : ",")
        self.keySeparator = keySeparator
        self.sortKeys = sortKeys
    }

    /// Python's `json.dumps(x)`.
    public static let python = JSONWriteOptions()
    /// Compact, UTF-8, no spaces: for files and HTTP bodies.
    public static let compact = JSONWriteOptions(ensureASCII: false, itemSeparator: ",", keySeparator: ":")
}

extension JSONValue {
    /// The JSON text of this value.
    public func serialized(_ options: JSONWriteOptions = .compact) -> String {
        var out = ""
        write(into: &out, options: options, level: 0)
        return out
    }

    private func write(into out: inout String, options: JSONWriteOptions, level: Int) {
        switch self {
        case .null: out += "null"
        case .bool(let value): out += value ? "true" : "false"
        case .int(let value): out += String(value)
        case .double(let value): out += JSONValue.pythonRepr(value)
        case .string(let value): JSONValue.writeString(value, into: &out, ensureASCII: options.ensureASCII)
        case .array(let elements):
            if elements.isEmpty {
                out += "[]"
                return
            }
            out += "["
            for (i, element) in elements.enumerated() {
                if i > 0 { out += options.itemSeparator }
                newline(&out, options: options, level: level + 1)
                element.write(into: &out, options: options, level: level + 1)
            }
            newline(&out, options: options, level: level)
            out += "]"
        case .object(let object):
            if object.isEmpty {
                out += "{}"
                return
            }
            out += "{"
            var entries = object.entries
            if options.sortKeys { entries.sort { $0.key.unicodeScalars.lexicographicallyPrecedes($1.key.unicodeScalars) } }
            for (i, entry) in entries.enumerated() {
                if i > 0 { out += options.itemSeparator }
                newline(&out, options: options, level: level + 1)
                JSONValue.writeString(entry.key, into: &out, ensureASCII: options.ensureASCII)
                out += options.keySeparator
                entry.value.write(into: &out, options: options, level: level + 1)
            }
            newline(&out, options: options, level: level)
            out += "}"
        }
    }

    private func newline(_ out: inout String, options: JSONWriteOptions, level: Int) {
        guard let indent = options.indent else { return }
        out += "\n"
        out += String(repeating: " ", count: indent * level)
    }

    static func writeString(_ value: String, into out: inout String, ensureASCII: Bool) {
        out += "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 {
                    out += hexEscape(scalar.value)
                } else if ensureASCII && scalar.value > 0x7E {
                    if scalar.value >= 0x10000 {
                        let v = scalar.value - 0x10000
                        out += hexEscape(0xD800 + (v >> 10))
                        out += hexEscape(0xDC00 + (v & 0x3FF))
                    } else {
                        out += hexEscape(scalar.value)
                    }
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }

    private static func hexEscape(_ value: UInt32) -> String {
        let hex = String(value, radix: 16)
        return "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }

    /// Python's `repr(float)`: the shortest digits that round-trip, in fixed notation when the decimal
    /// exponent lies in [-4, 16), else scientific with at least two exponent digits.
    public static func pythonRepr(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value < 0 ? "-Infinity" : "Infinity" }
        if value == 0 { return value.sign == .minus ? "-0.0" : "0.0" }
        // Swift's description also yields the shortest round-trip digits; only the layout differs.
        let (negative, digits, pointPosition) = shortestDigits(value)
        var out = negative ? "-" : ""
        if pointPosition > -4 && pointPosition <= 16 {
            if pointPosition <= 0 {
                out += "0." + String(repeating: "0", count: -pointPosition) + digits
            } else if pointPosition >= digits.count {
                out += digits + String(repeating: "0", count: pointPosition - digits.count) + ".0"
            } else {
                let split = digits.index(digits.startIndex, offsetBy: pointPosition)
                out += digits[..<split] + "." + digits[split...]
            }
        } else {
            let exponent = pointPosition - 1
            out += String(digits.first!)
            if digits.count > 1 { out += "." + digits.dropFirst() }
            out += exponent < 0 ? "e-" : "e+"
            let magnitude = String(abs(exponent))
            out += magnitude.count < 2 ? "0" + magnitude : magnitude
        }
        return out
    }

    /// Decimal digits (no leading or trailing zeros) and the position of the decimal point relative to
    /// them: value = 0.d1d2... * 10^pointPosition.
    private static func shortestDigits(_ value: Double) -> (negative: Bool, digits: String, pointPosition: Int) {
        var text = Substring(String(value.magnitude))
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(text[text.index(after: e)...]) ?? 0
            text = text[..<e]
        }
        var integerPart = text
        var fractionPart: Substring = ""
        if let dot = text.firstIndex(of: ".") {
            integerPart = text[..<dot]
            fractionPart = text[text.index(after: dot)...]
        }
        var digits = String(integerPart) + fractionPart
        var pointPosition = integerPart.count + exponent
        while digits.first == "0" {
            digits.removeFirst()
            pointPosition -= 1
        }
        while digits.last == "0" { digits.removeLast() }
        return (value < 0, digits.isEmpty ? "0" : digits, pointPosition)
    }
}
