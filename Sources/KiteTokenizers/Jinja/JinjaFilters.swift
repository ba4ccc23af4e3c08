import KiteJSON

/// jinja2's built-in filters (`filters.py`) with transformers' `tojson` override
/// (`json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=...)`). Arguments bind like
/// the Python signatures. Filters that return generators in jinja2 (`map`, `select`, `reverse`, ...)
/// return one-shot iterators here too.
enum JinjaFilters {
    typealias Filter = @Sendable (Interpreter, JinjaValue, JinjaArguments) throws(RuntimeFailure) -> JinjaValue

    static let table: [String: Filter] = [
        "abs": { _, v, a throws(RuntimeFailure) in
            try a.requireSingle("abs")
            switch v.numeric {
            case .int(let i)?:
                guard i != Int.min else { throw RuntimeFailure("OverflowError: integer result does not fit in 64 bits") }
                return .int(abs(i))
            case .float(let d)?: return .float(abs(d))
            case nil:
                throw RuntimeFailure("TypeError: bad operand type for abs(): '\(v.pythonTypeName)'")
            }
        },
        "attr": { interpreter, v, a throws(RuntimeFailure) in
            let name = try PythonMethods.string(try a.bind(["name"], required: 1, implicit: 2, function: "do_attr")[0], "attribute name")
            switch v {
            case .namespace, .loop, .undefined: return try interpreter.getAttribute(v, name)
            default:
                if name.hasPrefix("__") { return try interpreter.getAttribute(v, name) }
                return PythonMethods.bind(v, name) ?? .undefined(JinjaUndefined(.attribute(owner: v.ownerDescription, name: name)))
            }
        },
        "batch": { interpreter, v, a throws(RuntimeFailure) in
            let b = try a.bind(["linecount", "fill_with"], required: 1, implicit: 1, function: "do_batch")
            return generator("do_batch") { () throws(RuntimeFailure) -> JinjaIterator.Pull in
                let size = try PythonMethods.integer(b[0], "linecount") ?? 0
                try checkedCount(size)
                let items = try v.pythonIterate()
                try interpreter.spend(items.count)
                var batches: [JinjaValue] = []
                var index = 0
                while index < items.count {
                    var chunk = Array(items[index..<min(index + max(size, 1), items.count)])
                    if chunk.count < size, let fill = b[1], !PythonMethods.isNone(fill) {
                        chunk += Array(repeating: fill, count: size - chunk.count)
                    }
                    batches.append(.list(try JinjaList(chunk)))
                    index += max(size, 1)
                }
                return try stream(.list(try JinjaList(batches)))
            }
        },
        "capitalize": { _, v, a throws(RuntimeFailure) in
            _ = try a.bind([], implicit: 1, function: "do_capitalize")
            return .string(PythonString.capitalize(try v.pythonStr()))
        },
        "center": { _, v, a throws(RuntimeFailure) in
            let width = try PythonMethods.integer(try a.bind(["width"], implicit: 1, function: "do_center")[0], default: 80, "width") ?? 80
            try checkedSize(width)
            return .string(PythonString.pad(try v.pythonStr(), width: width, fill: " ", alignment: 0))
        },
        "count": { _, v, a throws(RuntimeFailure) in
            try a.requireSingle("len")
            return .int(try v.pythonLength())
        },
        "length": { _, v, a throws(RuntimeFailure) in
            try a.requireSingle("len")
            return .int(try v.pythonLength())
        },
        "d": defaultFilter,
        "default": defaultFilter,
        "dictsort": { interpreter, v, a throws(RuntimeFailure) in
            let b = try a.bind(["case_sensitive", "by", "reverse"], implicit: 1, function: "do_dictsort")
            if case .undefined(let u) = v { throw u.failure }
            guard case .dict(let dict) = v else {
                throw RuntimeFailure("AttributeError: '\(v.pythonTypeName)' object has no attribute 'items'")
            }
            let caseSensitive = b[0]?.isTruthy ?? false
            let position: Int
            switch b[1] {
            case nil, .string("key")?: position = 0
            case .string("value")?: position = 1
            default: throw RuntimeFailure("FilterArgumentError: You can only sort by either \"key\" or \"value\"")
            }
            var pairs: [JinjaValue] = []
            for entry in dict.entries { pairs.append(.tuple(try JinjaList([entry.key, entry.value]))) }
            try interpreter.spend(pairs.count)
            let sorted = try stableSort(pairs, reverse: try PythonMethods.integer(b[2], default: 0, "reverse") != 0) { (pair: JinjaValue) throws(RuntimeFailure) -> JinjaValue in
                guard case .tuple(let t) = pair else { return pair }
                return caseSensitive ? t.items[position] : ignoreCase(t.items[position])
            }
            return .list(try JinjaList(sorted))
        },
        "e": escapeFilter,
        "escape": escapeFilter,
        "forceescape": { i, v, a throws(RuntimeFailure) in
            _ = try a.bind([], implicit: 1, function: "do_forceescape")
            return try escapeFilter(i, v, JinjaArguments())
        },
        "first": { _, v, a throws(RuntimeFailure) in
            _ = try a.bind([], implicit: 2, function: "sync_do_first")
            if case .iterator(let iterator) = v {
                return try iterator.next() ?? emptyUndefined("No first item, sequence was empty.")
            }
            return try v.pythonIterate().first ?? emptyUndefined("No first item, sequence was empty.")
        },
        "last": { _, v, a throws(RuntimeFailure) in
            _ = try a.bind([], implicit: 2, function: "do_last")
            switch v {
            case .iterator: throw RuntimeFailure("TypeError: '\(v.pythonTypeName)' object is not reversible")
            case .list, .tuple, .string, .dict, .undefined, .range:
                return try v.pythonIterate().last ?? emptyUndefined("No last item, sequence was empty.")
            default: throw RuntimeFailure("TypeError: '\(v.pythonTypeName)' object is not reversible")
            }
        },
        "float": { _, v, a throws(RuntimeFailure) in
            let b = try a.bind(["default"], implicit: 1, function: "do_float")
            if case .undefined(let u) = v { throw u.failure }
            return toFloat(v) ?? b[0] ?? .float(0)
        },
        "int": { _, v, a throws(RuntimeFailure) in
            let b = try a.bind(["default", "base"], implicit: 1, function: "do_int")
            if case .undefined(let u) = v { throw u.failure }
            // do_int swallows TypeError/ValueError (a bad base included) and falls back to the default.
            guard let base = try? PythonMethods.integer(b[1], default: 10, "base") else {
                if case .float(let d)? = toFloat(v), d.isFinite, abs(d) < 9.2e18 { return .int(Int(d)) }
                return b[0] ?? .int(0)
            }
            return toInt(v, base: base) ?? b[0] ?? .int(0)
        },
        "format": { _, v, a throws(RuntimeFailure) in
            if !a.positional.isEmpty && !a.keywords.isEmpty {
                throw RuntimeFailure("FilterArgumentError: can't handle positional and keyword arguments at the same time")
            }
            let values: JinjaValue
            if !a.keywords.isEmpty {
                var dict = JinjaDict()
                for (name, value) in a.keywords { try dict.set(.string(name), value) }
                values = .dict(dict)
            } else {
                values = .tuple(try JinjaList(a.positional))
            }
            return .string(try pythonPercentFormat(try v.pythonStr(), values))
        },
        "indent": { _, v, a throws(RuntimeFailure) in
            let b = try a.bind(["width", "first", "blank"], implicit: 1, function: "do_indent")
            let indentation: String
            switch b[0] {
            case .string(let s)?: indentation = s
            case nil: indentation = "    "
            case let width?:
                guard case .int(let n)? = width.numeric else {
                    throw RuntimeFailure("TypeError: can't multiply sequence by non-int of type '\(width.pythonTypeName)'")
                }
                try checkedSize(n)
                indentation = String(repeating: " ", count: max(0, n))
            }
            // jinja2 appends "\n" to the value itself, so only strings can be indented.
            let text: String
            switch v {
            case .string(let s): text = s
            case .undefined(let u): throw u.failure
            default: throw RuntimeFailure("TypeError: unsupported operand type(s) for +=: '\(v.pythonTypeName)' and 'str'")
            }
            let lines = PythonString.splitLines(text + "\n")
            let (growth, overflow) = lines.count.multipliedReportingOverflow(by: indentation.utf8.count)
            try checkedSize(overflow ? Int.max : text.utf8.count + growth)
            var result: String
            if b[2]?.isTruthy ?? false {
                result = lines.joined(separator: "\n" + indentation)
            } else {
                result = lines.first ?? ""
                let rest = lines.dropFirst()
                if !rest.isEmpty {
                    result += "\n" + rest.map { $0.isEmpty ? $0 : indentation + $0 }.joined(separator: "\n")
                }
            }
            if b[1]?.isTruthy ?? false { result = indentation + result }
            try checkedSize(result.utf8.count)
            return .string(result)
        },
        "items": { _, v, a throws(RuntimeFailure) in
            _ = try a.bind([], implicit: 1, function: "do_items")
            return generator("do_items") { () throws(RuntimeFailure) -> JinjaIterator.Pull in
                var pairs: [JinjaValue] = []
                switch v {
                case .undefined: break
                case .dict(let dict):
                    for entry in dict.entries { pairs.append(.tuple(try JinjaList([entry.key, entry.value]))) }
                default: throw RuntimeFailure("TypeError: Can only get item pairs from a mapping.")
                }
                return try stream(.list(try JinjaList(pairs)))
            }
        },
        "join": { interpreter, v, a throws(RuntimeFailure) in
            let b = try a.bind(["d", "attribute"], implicit: 2, function: "sync_do_join")
            let separator = try (b[0] ?? .emptyString).pythonStr()
            var items = try v.pythonIterate()
            try interpreter.spend(items.count)
            if let attribute = b[1], !PythonMethods.isNone(attribute) {
                let getter = try attributeGetter(interpreter, attribute, default: nil)
                var mapped: [JinjaValue] = []
                for item in items { mapped.append(try getter(item)) }
                items = mapped
            }
            var parts: [String] = []
            var total = 0
            for item in items {
                let text = try item.pythonStr()
                total += text.utf8.count + separator.utf8.count
                try checkedSize(total)
                parts.append(text)
            }
            return .string(parts.joined(separator: separator))
        },
        "list": { interpreter, v, a throws(RuntimeFailure) in
            _ = try a.bind([], implicit: 1, function: "sync_do_list")
            let items = try v.pythonIterate()
            try interpreter.spend(items.count)
            return .list(try JinjaList(items))
        },
        "lower": { _, v, a throws(RuntimeFailure) in
            _ = try a.bind([], implicit: 1, function: "do_lower")
            return .string(PythonString.lower(try v.pythonStr()))
        },
        "upper": { _, v, a throws(RuntimeFailure) in
            _ = try a.bind([], implicit: 1, function: "do_upper")
            return .string(PythonString.upper(try v.pythonStr()))
        },
        "map": { interpreter, v, a in
            generator("sync_do_map") { () throws(RuntimeFailure) -> JinjaIterator.Pull in
                guard v.isTruthy else { return { () throws(RuntimeFailure) -> JinjaValue? in nil } }
                let transform = try mapFunction(interpreter, a)
                let upstream = try stream(v)
                return { () throws(RuntimeFailure) -> JinjaValue? in
                    guard let item = try upstream() else { return nil }
                    try interpreter.spend()
                    return try transform(item)
                }
            }
        },
        "min": { interpreter, v, a throws(RuntimeFailure) in try extreme(interpreter, v, a, largest: false) },
        "max": { interpreter, v, a throws(RuntimeFailure) in try extreme(interpreter, v, a, largest: true) },
        "select": { interpreter, v, a in selectOrReject(interpreter, v, a, keep: true, attribute: false) },
        "reject": { interpreter, v, a in selectOrReject(interpreter, v, a, keep: false, attribute: false) },
        "selectattr": { interpreter, v, a in selectOrReject(interpreter, v, a, keep: true, attribute: true) },
        "rejectattr": { interpreter, v, a in selectOrReject(interpreter, v, a, keep: false, attribute: true) },
        "replace": { _, v, a throws(RuntimeFailure) in
            let b = try a.bind(["old", "new", "count"], required: 2, implicit: 2, function: "do_replace")
            guard let old = b[0], let new = b[1] else { return v }
            let count = try PythonMethods.integer(b[2], default: -1, "count") ?? -1
            let result = try PythonString.replace(try v.pythonStr(), try old.pythonStr(), try new.pythonStr(), count: count)
            try checkedSize(result.utf8.count)
            return .string(result)
        },
        "reverse": { interpreter, v, a throws(RuntimeFailure) in
            _ = try a.bind([], implicit: 1, function: "do_reverse")
            switch v {
            case .string(let s): return .string(PythonString.string(s.unicodeScalars.reversed()))
            case .list(let l): return .iterator(JinjaIterator(l.items.reversed(), typeName: "list_reverseiterator", origin: "reverse"))
            case .tuple(let l): return .iterator(JinjaIterator(l.items.reversed(), typeName: "reversed", origin: "reverse"))
            case .dict(let d): return .iterator(JinjaIterator(d.entries.map(\.key).reversed(), typeName: "dict_reversekeyiterator", origin: "reverse"))
            case .range: return .iterator(JinjaIterator(try v.pythonIterate().reversed(), typeName: "range_iterator", origin: "reverse"))
            default:
                do {
                    return .list(try JinjaList(try v.pythonIterate().reversed()))
                } catch {
                    throw RuntimeFailure("FilterArgumentError: argument must be iterable")
                }
            }
        },
        "round": { _, v, a throws(RuntimeFailure) in
            let b = try a.bind(["precision", "method"], implicit: 1, function: "do_round")
            let method: String
            switch b[1] {
            case nil: method = "common"
            case .string(let m)? where ["common", "ceil", "floor"].contains(m): method = m
            default: throw RuntimeFailure("FilterArgumentError: method must be common, ceil or floor")
            }
            if method != "common", case .undefined(let u)? = b[0] { throw u.failure }
            let precision = try PythonMethods.integer(b[0], default: 0, "precision") ?? 0
            guard let number = v.numeric else {
                throw RuntimeFailure("TypeError: type \(v.pythonTypeName) doesn't define __round__ method")
            }
            if case .int(let i) = number, method == "common" { return .int(i) }
            let scale = powerOfTen(precision)
            let x = number.double
            switch method {
            case "ceil": return .float((x * scale).rounded(.up) / scale)
            case "floor": return .float((x * scale).rounded(.down) / scale)
            default: return .float(precision == 0 ? x.rounded(.toNearestOrEven) : (x * scale).rounded(.toNearestOrEven) / scale)
            }
        },
        "safe": { _, v, a throws(RuntimeFailure) in
            _ = try a.bind([], implicit: 1, function: "do_mark_safe")
            return .string(try v.pythonStr())
        },
        "slice": { interpreter, v, a throws(RuntimeFailure) in
            let b = try a.bind(["slices", "fill_with"], required: 1, implicit: 1, function: "sync_do_slice")
            return generator("sync_do_slice") { () throws(RuntimeFailure) -> JinjaIterator.Pull in
                let slices = try PythonMethods.integer(b[0], "slices") ?? 0
                let items = try v.pythonIterate()
                guard slices != 0 else { throw RuntimeFailure("ZeroDivisionError: integer division or modulo by zero") }
                try checkedCount(slices)
                try interpreter.spend(items.count + max(slices, 0))
                let perSlice = Int((Double(items.count) / Double(slices)).rounded(.down))
                let withExtra = items.count - perSlice * slices
                var offset = 0
                var out: [JinjaValue] = []
                for number in 0..<max(slices, 0) {
                    let start = offset + number * perSlice
                    if number < withExtra { offset += 1 }
                    let end = offset + (number + 1) * perSlice
                    var chunk = PythonString.slice(items, start: start, stop: end, step: 1)
                    if let fill = b[1], !PythonMethods.isNone(fill), number >= withExtra { chunk.append(fill) }
                    out.append(.list(try JinjaList(chunk)))
                }
                return try stream(.list(try JinjaList(out)))
            }
        },
        "sort": { interpreter, v, a throws(RuntimeFailure) in
            let b = try a.bind(["reverse", "case_sensitive", "attribute"], implicit: 2, function: "do_sort")
            let items = try v.pythonIterate()
            try interpreter.spend(items.count)
            let key = try multiAttributeGetter(interpreter, b[2], caseSensitive: b[1]?.isTruthy ?? false)
            return .list(try JinjaList(try stableSort(items, reverse: try PythonMethods.integer(b[0], default: 0, "reverse") != 0, key: key)))
        },
        "string": { _, v, a throws(RuntimeFailure) in
            _ = try a.bind([], implicit: 1, function: "soft_str")
            return .string(try v.pythonStr())
        },
        "sum": { interpreter, v, a throws(RuntimeFailure) in
            let b = try a.bind(["attribute", "start"], implicit: 2, function: "sync_do_sum")
            var total = b[1] ?? .int(0)
            if case .string = total { throw RuntimeFailure("TypeError: sum() can't sum strings [use ''.join(seq) instead]") }
            let getter: ((JinjaValue) throws(RuntimeFailure) -> JinjaValue)? = try b[0].flatMap { (attribute: JinjaValue) throws(RuntimeFailure) -> ((JinjaValue) throws(RuntimeFailure) -> JinjaValue)? in
                PythonMethods.isNone(attribute) ? nil : try attributeGetter(interpreter, attribute, default: nil)
            }
            for item in try v.pythonIterate() {
                try interpreter.spend()
                total = try JinjaValue.binary(.add, total, try getter?(item) ?? item)
            }
            return total
        },
        "title": { _, v, a throws(RuntimeFailure) in
            _ = try a.bind([], implicit: 1, function: "do_title")
            return .string(jinjaTitle(try v.pythonStr()))
        },
        "trim": { _, v, a throws(RuntimeFailure) in
            var chars: String? = nil
            switch try a.bind(["chars"], implicit: 1, function: "do_trim")[0] {
            case nil, .none?: break
            case .string(let c)?: chars = c
            default: throw RuntimeFailure("TypeError: strip arg must be None or str")
            }
            return .string(PythonString.strip(try v.pythonStr(), characters: chars, leading: true, trailing: true))
        },
        "truncate": { _, v, a throws(RuntimeFailure) in
            let b = try a.bind(["length", "killwords", "end", "leeway"], implicit: 2, function: "do_truncate")
            let length = try PythonMethods.integer(b[0], default: 255, "length") ?? 255
            let end = try PythonMethods.optionalString(b[2], "end") ?? "..."
            let leeway = try PythonMethods.integer(b[3], default: 5, "leeway") ?? 5
            let endLength = end.unicodeScalars.count
            guard length >= endLength else {
                throw RuntimeFailure("AssertionError: expected length >= \(endLength), got \(try (b[0] ?? .int(length)).pythonStr())")
            }
            guard leeway >= 0 else { throw RuntimeFailure("AssertionError: expected leeway >= 0, got \(try (b[3] ?? .int(leeway)).pythonStr())") }
            // do_truncate returns the value itself when it is short enough (an undefined one included).
            let text: String
            switch v {
            case .string(let s): text = s
            case .undefined: return v
            default: throw RuntimeFailure("TypeError: object of type '\(v.pythonTypeName)' has no len()")
            }
            let scalars = Array(text.unicodeScalars)
            if scalars.count <= length + leeway { return .string(text) }
            let head = PythonString.string(scalars[..<(length - endLength)])
            if b[1]?.isTruthy ?? false { return .string(head + end) }
            let words = try PythonString.rsplit(head, separator: " ", maxSplit: 1)
            return .string((words.first ?? "") + end)
        },
        "unique": { interpreter, v, a throws(RuntimeFailure) in
            let b = try a.bind(["case_sensitive", "attribute"], implicit: 2, function: "sync_do_unique")
            return generator("sync_do_unique") { () throws(RuntimeFailure) -> JinjaIterator.Pull in
                let getter = try attributeGetter(interpreter, b[1] ?? JinjaValue.none, default: nil, caseSensitive: b[0]?.isTruthy ?? false)
                let upstream = try stream(v)
                var seen = Set<DictKey>()
                return { () throws(RuntimeFailure) -> JinjaValue? in
                    while let item = try upstream() {
                        try interpreter.spend()
                        if seen.insert(try DictKey(try getter(item))).inserted { return item }
                    }
                    return nil
                }
            }
        },
        "wordcount": { _, v, a throws(RuntimeFailure) in
            _ = try a.bind([], implicit: 1, function: "do_wordcount")
            var count = 0
            var inWord = false
            for scalar in try v.pythonStr().unicodeScalars {
                let isWord = scalar == "_" || scalar.properties.isAlphabetic || scalar.properties.numericType != nil
                if isWord && !inWord { count += 1 }
                inWord = isWord
            }
            return .int(count)
        },
        "tojson": { _, v, a throws(RuntimeFailure) in
            let b = try a.bind(["ensure_ascii", "indent", "separators", "sort_keys"], implicit: 1, function: "_cached_compile_jinja_template.<locals>.tojson")
            var indent: Int? = nil
            var indentText: String? = nil
            if let value = b[1], !PythonMethods.isNone(value) {
                switch value {
                case .string(let s):
                    // json.dumps repeats a string indent per level; written with one space per level here
                    // and widened below.
                    guard s.utf8.count <= 64 else { throw RuntimeFailure("ValueError: tojson indent is longer than Kite allows (64)") }
                    indent = 1
                    indentText = s
                case .int, .bool:
                    guard case .int(let i)? = value.numeric, i <= 64 else {
                        throw RuntimeFailure("ValueError: tojson indent is larger than Kite allows (64)")
                    }
                    indent = max(0, i)
                default:
                    throw RuntimeFailure("TypeError: can't multiply sequence by non-int of type '\(value.pythonTypeName)'")
                }
            }
            var itemSeparator: String? = nil
            var keySeparator = ": "
            if let value = b[2], !PythonMethods.isNone(value) {
                let parts: [JinjaValue]
                do {
                    parts = try value.pythonIterate()
                } catch {
                    throw RuntimeFailure("TypeError: cannot unpack non-iterable \(value.pythonTypeName) object")
                }
                guard parts.count == 2 else {
                    throw RuntimeFailure(parts.count < 2
                        ? "ValueError: not enough values to unpack (expected 2, got \(parts.count))"
                        : "ValueError: too many values to unpack (expected 2)")
                }
                guard case .string(let item) = parts[0], case .string(let key) = parts[1] else {
                    throw RuntimeFailure("TypeError: tojson separators must be strings")
                }
                itemSeparator = item
                keySeparator = key
            }
            let options = JSONWriteOptions(ensureASCII: b[0]?.isTruthy ?? false, indent: indent, itemSeparator: itemSeparator, keySeparator: keySeparator, sortKeys: b[3]?.isTruthy ?? false)
            var text = try v.toJSON().serialized(options)
            if let indentText {
                // JSON strings escape newlines, so every newline here starts an indented line.
                let lines = text.split(separator: Character("\n"), omittingEmptySubsequences: false)
                text = lines.map { (line: Substring) -> String in
                    let depth = line.prefix { $0 == " " }.count
                    return String(repeating: indentText, count: depth) + line.dropFirst(depth)
                }.joined(separator: "\n")
            }
            try checkedSize(text.utf8.count)
            return .string(text)
        },
    ]

    private static let defaultFilter: Filter = { _, v, a throws(RuntimeFailure) in
        let b = try a.bind(["default_value", "boolean"], implicit: 1, function: "do_default")
        if v.isUndefined || ((b[1]?.isTruthy ?? false) && !v.isTruthy) { return b[0] ?? .emptyString }
        return v
    }

    private static let escapeFilter: Filter = { _, v, a throws(RuntimeFailure) in
        _ = try a.bind([], implicit: 1, function: "escape")
        var out = ""
        for scalar in try v.pythonStr().unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&#34;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return .string(out)
    }

    private static func emptyUndefined(_ message: String) -> JinjaValue {
        .undefined(JinjaUndefined(.message(message)))
    }

    /// jinja2's `title` filter: upper-cases the first character of each word, where words start after
    /// `-`, whitespace, or an opening bracket, and lower-cases the rest.
    static func jinjaTitle(_ text: String) -> String {
        var out = ""
        var atWordStart = true
        for scalar in text.unicodeScalars {
            let isBoundary = scalar == "-" || isPythonWhitespace(scalar) || "({[<".unicodeScalars.contains(scalar)
            if isBoundary {
                out.unicodeScalars.append(scalar)
                atWordStart = true
            } else if atWordStart {
                out += PythonString.upper(String(scalar))
                atWordStart = false
            } else {
                out += PythonString.lower(String(scalar))
            }
        }
        return out
    }

    static func ignoreCase(_ value: JinjaValue) -> JinjaValue {
        if case .string(let s) = value { return .string(PythonString.lower(s)) }
        return value
    }

    static func toFloat(_ value: JinjaValue) -> JinjaValue? {
        switch value {
        case .bool, .int, .float: return value.numeric.map { .float($0.double) }
        case .string(let s):
            let trimmed = PythonString.strip(s, characters: nil, leading: true, trailing: true).replacingUnderscores()
            guard !trimmed.isEmpty, let d = Double(trimmed), !trimmed.lowercased().hasPrefix("0x"), !trimmed.lowercased().contains("p") else { return nil }
            return .float(d)
        default: return nil
        }
    }

    static func toInt(_ value: JinjaValue, base: Int) -> JinjaValue? {
        switch value {
        case .bool(let b): return .int(b ? 1 : 0)
        case .int: return value
        case .float(let d):
            guard d.isFinite, abs(d) < 9.2e18 else { return nil }
            return .int(Int(d))
        case .string(let s):
            var text = PythonString.strip(s, characters: nil, leading: true, trailing: true).replacingUnderscores()
            var negative = false
            if text.hasPrefix("-") || text.hasPrefix("+") {
                negative = text.hasPrefix("-")
                text.removeFirst()
            }
            var radix = base
            let lower = text.lowercased()
            for (prefix, r) in [("0x", 16), ("0o", 8), ("0b", 2)] where lower.hasPrefix(prefix) && (base == 0 || base == r) {
                text.removeFirst(2)
                radix = r
            }
            if radix == 0 { radix = 10 }
            if (2...36).contains(radix), !text.isEmpty, let magnitude = Int(text, radix: radix) {
                return .int(negative ? -magnitude : magnitude)
            }
            // jinja2 falls back to int(float(value)) so that "42.23"|int is 42.
            if case .float(let d)? = toFloat(value), d.isFinite, abs(d) < 9.2e18 { return .int(Int(d)) }
            return nil
        default: return nil
        }
    }
}

extension String {
    fileprivate func replacingUnderscores() -> String {
        // Python accepts single underscores between digits in numeric strings.
        guard contains("_") else { return self }
        return String(self.filter { $0 != "_" })
    }
}
