/// The few Python `str` and `float` behaviours slime's reward code relies on, spelled out so the graders
/// match it character for character. Strings are handled as Swift `Character`s, which agree with Python's
/// code points except inside combining sequences.
enum PythonString {
    /// `s.split(sep)` (sep non-empty): every piece, empty ones included.
    static func split(_ s: String, _ separator: String) -> [String] {
        s.split(separator: separator, omittingEmptySubsequences: false).map(String.init)
    }

    /// `s.replace(old, new)`.
    static func replace(_ s: String, _ old: String, _ new: String) -> String {
        s.contains(old) ? s.replacing(old, with: new) : s
    }

    /// `s.strip()`.
    static func strip(_ s: String) -> String {
        guard let first = s.firstIndex(where: { !$0.isWhitespace }) else { return "" }
        guard let last = s.lastIndex(where: { !$0.isWhitespace }) else { return "" }
        return String(s[first...last])
    }

    /// Python's `str.isdigit()`: non-empty and every character a decimal or digit numeral.
    static func isDigits<S: StringProtocol>(_ s: S) -> Bool {
        !s.isEmpty && s.unicodeScalars.allSatisfy { scalar in
            guard let type = scalar.properties.numericType else { return false }
            return type == .decimal || type == .digit
        }
    }

    /// Python's `\d` in a str pattern (Unicode decimal digits).
    static func isDecimalDigit(_ c: Character) -> Bool {
        c.unicodeScalars.count == 1 && c.unicodeScalars.first?.properties.numericType == .decimal
    }

    static func isASCIIDigit(_ c: Character) -> Bool { c.isASCII && c.isNumber }

    /// Python's `float(s)` for decimal text: surrounding whitespace, a sign, digits with single
    /// underscores between them, a fraction and an exponent, or inf/infinity/nan; nil where Python raises.
    static func float(_ text: String) -> Double? {
        let s = strip(text)
        var chars = Array(s)
        var sign = ""
        if let first = chars.first, first == "+" || first == "-" {
            sign = first == "-" ? "-" : ""
            chars.removeFirst()
        }
        let word = String(chars).lowercased()
        if word == "inf" || word == "infinity" { return sign == "-" ? -.infinity : .infinity }
        if word == "nan" { return .nan }
        var cleaned = ""
        var i = 0
        var digitsBefore = 0, digitsAfter = 0
        func digits(_ count: inout Int) {
            // digits with single underscores strictly between digits
            while i < chars.count {
                if isASCIIDigit(chars[i]) {
                    cleaned.append(chars[i]); count += 1; i += 1
                } else if chars[i] == "_" && count > 0 && i + 1 < chars.count && isASCIIDigit(chars[i + 1]) && isASCIIDigit(chars[i - 1]) {
                    i += 1
                } else {
                    break
                }
            }
        }
        digits(&digitsBefore)
        if i < chars.count && chars[i] == "." {
            cleaned.append("."); i += 1
            digits(&digitsAfter)
        }
        guard digitsBefore + digitsAfter > 0 else { return nil }
        if i < chars.count && (chars[i] == "e" || chars[i] == "E") {
            cleaned.append("e"); i += 1
            if i < chars.count && (chars[i] == "+" || chars[i] == "-") { cleaned.append(chars[i]); i += 1 }
            var exponentDigits = 0
            digits(&exponentDigits)
            guard exponentDigits > 0 else { return nil }
        }
        guard i == chars.count else { return nil }
        if cleaned.hasPrefix(".") { cleaned = "0" + cleaned }
        if cleaned.hasSuffix(".") { cleaned += "0" }
        cleaned = cleaned.replacing(".e", with: ".0e")
        return Double(sign + cleaned)
    }

    /// `str(int(x))` for a finite integral double, exactly (beyond 2^63 too).
    static func integerString(_ x: Double) -> String {
        if abs(x) < 9.0e18 { return String(Int(x)) }
        // x = significand · 2^exponent with an integer significand: multiply out in decimal.
        let negative = x < 0
        var significand = UInt64(abs(x).significandBitPattern) | (1 << 52)
        var exponent = Int(abs(x).exponent) - 52
        while exponent < 0 { significand >>= 1; exponent += 1 }
        var digits: [UInt8] = []  // little-endian decimal digits
        var s = significand
        while s > 0 { digits.append(UInt8(s % 10)); s /= 10 }
        for _ in 0..<exponent {
            var carry: UInt8 = 0
            for k in digits.indices {
                let v = digits[k] * 2 + carry
                digits[k] = v % 10
                carry = v / 10
            }
            if carry > 0 { digits.append(carry) }
        }
        return (negative ? "-" : "") + String(digits.reversed().map { Character(String($0)) })
    }
}
