/// Python `str` semantics for the operations templates use. Python strings are sequences of code points
/// compared exactly (no Unicode normalisation), so everything here works on Unicode scalars or on UTF-8
/// bytes; never on Swift `Character`s, which would merge combining marks and compare canonically.

/// `str.isspace()` and regex `\s` for str patterns.
func isPythonWhitespace(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.value {
    case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
        return true
    default:
        return false
    }
}

/// `str.isprintable()` for one character: everything but the "Other" and "Separator" categories, space
/// excepted.
func isPythonPrintable(_ scalar: Unicode.Scalar) -> Bool {
    if scalar == " " { return true }
    switch scalar.properties.generalCategory {
    case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator, .spaceSeparator:
        return false
    default:
        return true
    }
}

/// Python's `repr(str)`: single quotes unless the text has a single quote and no double quote.
func pythonRepr(_ text: String) -> String {
    let hasSingle = text.unicodeScalars.contains("'")
    let hasDouble = text.unicodeScalars.contains("\"")
    let quote: Unicode.Scalar = hasSingle && !hasDouble ? "\"" : "'"
    var out = String.UnicodeScalarView()
    out.append(quote)
    func hex(_ value: UInt32, _ prefix: String, _ width: Int) {
        let digits = String(value, radix: 16)
        out.append(contentsOf: (prefix + String(repeating: "0", count: max(0, width - digits.count)) + digits).unicodeScalars)
    }
    for scalar in text.unicodeScalars {
        switch scalar {
        case quote, "\\":
            out.append("\\")
            out.append(scalar)
        case "\t": out.append(contentsOf: "\\t".unicodeScalars)
        case "\n": out.append(contentsOf: "\\n".unicodeScalars)
        case "\r": out.append(contentsOf: "\\r".unicodeScalars)
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F {
                hex(scalar.value, "\\x", 2)
            } else if scalar.value < 0x7F || isPythonPrintable(scalar) {
                out.append(scalar)
            } else if scalar.value <= 0xFF {
                hex(scalar.value, "\\x", 2)
            } else if scalar.value <= 0xFFFF {
                hex(scalar.value, "\\u", 4)
            } else {
                hex(scalar.value, "\\U", 8)
            }
        }
    }
    out.append(quote)
    return String(out)
}

enum PythonString {
    static func string(_ scalars: some Sequence<Unicode.Scalar>) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }

    static func string(utf8 bytes: some Collection<UInt8>) -> String {
        String(decoding: bytes, as: UTF8.self)
    }

    static func length(_ text: String) -> Int { text.unicodeScalars.count }

    // MARK: - Byte-level search (exact code point sequences match exactly as UTF-8 bytes)

    /// Offsets of the first occurrence of `needle` in `haystack[from..<to]`, or nil. Linear time
    /// (Knuth-Morris-Pratt) for long needles, so hostile inputs cannot make a search quadratic.
    static func firstIndex(of needle: [UInt8], in haystack: [UInt8], from: Int = 0, to: Int? = nil) -> Int? {
        let end = to ?? haystack.count
        guard !needle.isEmpty else { return from <= end ? from : nil }
        guard end - from >= needle.count else { return nil }
        if needle.count <= 8 {
            var i = from
            let first = needle[0]
            while i + needle.count <= end {
                if haystack[i] == first {
                    var k = 1
                    while k < needle.count && haystack[i + k] == needle[k] { k += 1 }
                    if k == needle.count { return i }
                }
                i += 1
            }
            return nil
        }
        var failure = [Int](repeating: 0, count: needle.count)
        var k = 0
        for i in 1..<needle.count {
            while k > 0 && needle[i] != needle[k] { k = failure[k - 1] }
            if needle[i] == needle[k] { k += 1 }
            failure[i] = k
        }
        k = 0
        for i in from..<end {
            while k > 0 && haystack[i] != needle[k] { k = failure[k - 1] }
            if haystack[i] == needle[k] { k += 1 }
            if k == needle.count { return i - needle.count + 1 }
        }
        return nil
    }

    /// All non-overlapping occurrences, left to right.
    static func occurrences(of needle: [UInt8], in haystack: [UInt8], limit: Int = Int.max) -> [Int] {
        var found: [Int] = []
        var from = 0
        while found.count < limit, let index = firstIndex(of: needle, in: haystack, from: from) {
            found.append(index)
            from = index + max(needle.count, 1)
            if needle.isEmpty && from > haystack.count { break }
        }
        return found
    }

    static func contains(_ text: String, _ part: String) -> Bool {
        if part.isEmpty { return true }
        return firstIndex(of: Array(part.utf8), in: Array(text.utf8)) != nil
    }

    static func hasPrefix(_ text: String, _ prefix: String) -> Bool {
        text.utf8.starts(with: prefix.utf8)
    }

    static func hasSuffix(_ text: String, _ suffix: String) -> Bool {
        text.utf8.reversed().starts(with: suffix.utf8.reversed())
    }

    // MARK: - Slicing by code point

    /// Python's `slice.indices(length)`: clamps start/stop for a step, resolving negatives.
    static func sliceIndices(start: Int?, stop: Int?, step: Int, length: Int) -> (start: Int, stop: Int, step: Int) {
        func clamp(_ value: Int?, default defaultValue: Int, low: Int, high: Int) -> Int {
            guard var v = value else { return defaultValue }
            if v < 0 { v += length }
            return min(max(v, low), high)
        }
        if step > 0 {
            return (clamp(start, default: 0, low: 0, high: length), clamp(stop, default: length, low: 0, high: length), step)
        }
        return (clamp(start, default: length - 1, low: -1, high: length - 1), clamp(stop, default: -1, low: -1, high: length - 1), step)
    }

    static func slice<T>(_ items: [T], start: Int?, stop: Int?, step: Int) -> [T] {
        let (begin, end, step) = sliceIndices(start: start, stop: stop, step: step, length: items.count)
        var out: [T] = []
        var i = begin
        while step > 0 ? i < end : i > end {
            out.append(items[i])
            i += step
        }
        return out
    }

    /// Byte offset of each code point boundary: `offsets[i]` is where scalar `i` starts; the last entry is
    /// the byte count.
    static func scalarByteOffsets(_ bytes: [UInt8]) -> [Int] {
        var offsets: [Int] = []
        offsets.reserveCapacity(bytes.count + 1)
        for (i, byte) in bytes.enumerated() where byte & 0xC0 != 0x80 { offsets.append(i) }
        offsets.append(bytes.count)
        return offsets
    }

    // MARK: - Methods

    static func strip(_ text: String, characters: String?, leading: Bool, trailing: Bool) -> String {
        let scalars = text.unicodeScalars
        let set = characters.map { Array($0.unicodeScalars) }
        func strippable(_ s: Unicode.Scalar) -> Bool { set?.contains(s) ?? isPythonWhitespace(s) }
        var start = scalars.startIndex
        var end = scalars.endIndex
        if leading { while start < end && strippable(scalars[start]) { start = scalars.index(after: start) } }
        if trailing {
            while end > start {
                let before = scalars.index(before: end)
                guard strippable(scalars[before]) else { break }
                end = before
            }
        }
        if start == scalars.startIndex && end == scalars.endIndex { return text }
        return String(scalars[start..<end])
    }

    /// `str.split(sep, maxsplit)`; with no separator, splits on whitespace runs and drops empty parts.
    static func split(_ text: String, separator: String?, maxSplit: Int) throws(RuntimeFailure) -> [String] {
        guard let separator else {
            var parts: [String] = []
            let scalars = Array(text.unicodeScalars)
            var i = 0
            while i < scalars.count {
                while i < scalars.count && isPythonWhitespace(scalars[i]) { i += 1 }
                guard i < scalars.count else { break }
                if maxSplit >= 0 && parts.count == maxSplit {
                    var end = scalars.count
                    while end > i && isPythonWhitespace(scalars[end - 1]) { end -= 1 }
                    parts.append(string(scalars[i..<end]))
                    return parts
                }
                let start = i
                while i < scalars.count && !isPythonWhitespace(scalars[i]) { i += 1 }
                parts.append(string(scalars[start..<i]))
            }
            return parts
        }
        guard !separator.isEmpty else { throw RuntimeFailure("ValueError: empty separator") }
        let bytes = Array(text.utf8)
        let needle = Array(separator.utf8)
        var parts: [String] = []
        var start = 0
        for index in occurrences(of: needle, in: bytes, limit: maxSplit < 0 ? Int.max : maxSplit) {
            parts.append(string(utf8: bytes[start..<index]))
            start = index + needle.count
        }
        parts.append(string(utf8: bytes[start...]))
        return parts
    }

    /// `str.rsplit(sep, maxsplit)`.
    static func rsplit(_ text: String, separator: String?, maxSplit: Int) throws(RuntimeFailure) -> [String] {
        if maxSplit < 0 { return try split(text, separator: separator, maxSplit: -1) }
        let reversedText = string(text.unicodeScalars.reversed())
        let reversedSeparator = separator.map { string($0.unicodeScalars.reversed()) }
        return try split(reversedText, separator: reversedSeparator, maxSplit: maxSplit)
            .reversed().map { string($0.unicodeScalars.reversed()) }
    }

    /// `str.splitlines(keepends)`.
    static func splitLines(_ text: String, keepEnds: Bool = false) -> [String] {
        let scalars = Array(text.unicodeScalars)
        var lines: [String] = []
        var start = 0
        var i = 0
        while i < scalars.count {
            let s = scalars[i]
            let isBreak: Bool
            switch s.value {
            case 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029: isBreak = true
            default: isBreak = false
            }
            if isBreak {
                var end = i + 1
                if s == "\r" && end < scalars.count && scalars[end] == "\n" { end += 1 }
                lines.append(string(scalars[start..<(keepEnds ? end : i)]))
                start = end
                i = end
            } else {
                i += 1
            }
        }
        if start < scalars.count { lines.append(string(scalars[start...])) }
        return lines
    }

    /// `str.replace(old, new, count)`; an empty `old` inserts `new` around every code point.
    static func replace(_ text: String, _ old: String, _ new: String, count: Int) throws(RuntimeFailure) -> String {
        if old.isEmpty {
            let insertions = min(text.unicodeScalars.count + 1, count < 0 ? Int.max : count)
            let (growth, overflow) = insertions.multipliedReportingOverflow(by: new.utf8.count)
            try checkedSize(overflow ? Int.max : text.utf8.count + growth)
            var out = ""
            var inserted = 0
            for scalar in text.unicodeScalars {
                if count < 0 || inserted < count {
                    out += new
                    inserted += 1
                }
                out.unicodeScalars.append(scalar)
            }
            if count < 0 || inserted < count { out += new }
            return out
        }
        let bytes = Array(text.utf8)
        let needle = Array(old.utf8)
        let found = occurrences(of: needle, in: bytes, limit: count < 0 ? Int.max : count)
        if found.isEmpty { return text }
        let (growth, overflow) = found.count.multipliedReportingOverflow(by: max(0, new.utf8.count - needle.count))
        try checkedSize(overflow ? Int.max : bytes.count + growth)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var start = 0
        for index in found {
            out.append(contentsOf: bytes[start..<index])
            out.append(contentsOf: new.utf8)
            start = index + needle.count
        }
        out.append(contentsOf: bytes[start...])
        return string(utf8: out)
    }

    /// Resolves Python's optional `start`/`end` code point arguments to a byte range.
    private static func byteRange(_ bytes: [UInt8], start: Int?, end: Int?) -> (offsets: [Int], from: Int, to: Int, scalarFrom: Int)? {
        let offsets = scalarByteOffsets(bytes)
        let length = offsets.count - 1
        var s = start ?? 0
        var e = end ?? length
        if s < 0 { s = max(0, s + length) }
        if e < 0 { e = max(0, e + length) }
        e = min(e, length)
        guard s <= length, s <= e else { return nil }
        return (offsets, offsets[s], offsets[e], s)
    }

    /// `str.find` / `str.rfind`: the code point index of the first (last) occurrence, or -1.
    static func find(_ text: String, _ part: String, start: Int?, end: Int?, reverse: Bool) -> Int {
        let bytes = Array(text.utf8)
        guard let range = byteRange(bytes, start: start, end: end) else { return -1 }
        let needle = Array(part.utf8)
        var hit: Int?
        if reverse {
            var from = range.from
            while let index = firstIndex(of: needle, in: bytes, from: from, to: range.to) {
                hit = index
                from = index + 1
                if from > range.to { break }
            }
        } else {
            hit = firstIndex(of: needle, in: bytes, from: range.from, to: range.to)
        }
        guard let hit else { return -1 }
        // Convert the byte offset back to a code point index.
        var low = 0
        var high = range.offsets.count - 1
        while low < high {
            let mid = (low + high) / 2
            if range.offsets[mid] < hit { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// `str.count(sub, start, end)`.
    static func count(_ text: String, _ part: String, start: Int?, end: Int?) -> Int {
        let bytes = Array(text.utf8)
        guard let range = byteRange(bytes, start: start, end: end) else { return 0 }
        if part.isEmpty {
            return (range.offsets.firstIndex(of: range.to) ?? range.scalarFrom) - range.scalarFrom + 1
        }
        let slice = Array(bytes[range.from..<range.to])
        return occurrences(of: Array(part.utf8), in: slice).count
    }

    /// `str.startswith` / `str.endswith` with optional start/end.
    static func matchesAffix(_ text: String, _ affix: String, start: Int?, end: Int?, suffix: Bool) -> Bool {
        if start == nil && end == nil { return suffix ? hasSuffix(text, affix) : hasPrefix(text, affix) }
        let bytes = Array(text.utf8)
        guard let range = byteRange(bytes, start: start, end: end) else { return false }
        let window = bytes[range.from..<range.to]
        return suffix ? window.reversed().starts(with: affix.utf8.reversed()) : window.starts(with: affix.utf8)
    }

    static func upper(_ text: String) -> String { text.uppercased() }
    static func lower(_ text: String) -> String { text.lowercased() }

    private static func titlecase(_ scalar: Unicode.Scalar) -> String { scalar.properties.titlecaseMapping }

    /// `str.title()`: a cased character after an uncased one is title-cased, the others lower-cased.
    static func title(_ text: String) -> String {
        var out = ""
        var previousCased = false
        for scalar in text.unicodeScalars {
            out += previousCased ? scalar.properties.lowercaseMapping : titlecase(scalar)
            previousCased = scalar.properties.isCased
        }
        return out
    }

    /// `str.capitalize()` (Python 3.8+): the first character title-cased, the rest lower-cased.
    static func capitalize(_ text: String) -> String {
        var out = ""
        for (i, scalar) in text.unicodeScalars.enumerated() {
            out += i == 0 ? titlecase(scalar) : scalar.properties.lowercaseMapping
        }
        return out
    }

    static func swapcase(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            if scalar.properties.isUppercase {
                out += scalar.properties.lowercaseMapping
            } else if scalar.properties.isLowercase {
                out += scalar.properties.uppercaseMapping
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// `str.center`, `ljust`, `rjust`: padding with `fill`, Python's split of the odd padding for center.
    static func pad(_ text: String, width: Int, fill: Unicode.Scalar, alignment: Int) -> String {
        let length = text.unicodeScalars.count
        guard width > length else { return text }
        let total = width - length
        let left: Int
        switch alignment {
        case -1: left = 0
        case 1: left = total
        default: left = total / 2 + (total & width & 1)
        }
        let right = total - left
        return string(repeatElement(fill, count: left)) + text + string(repeatElement(fill, count: right))
    }

    static func isCasedMatch(_ text: String, upper: Bool) -> Bool {
        var sawCased = false
        for scalar in text.unicodeScalars {
            if upper ? scalar.properties.isLowercase : scalar.properties.isUppercase { return false }
            if scalar.properties.generalCategory == .titlecaseLetter { return false }
            if upper ? scalar.properties.isUppercase : scalar.properties.isLowercase { sawCased = true }
        }
        return sawCased
    }
}
