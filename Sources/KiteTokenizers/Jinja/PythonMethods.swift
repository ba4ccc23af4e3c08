/// The methods of Python's `str`, `dict`, `list` and `tuple` that templates call (`content.split(...)`,
/// `message.get('x')`, `tools.items()`). Methods that would modify a value are refused as jinja2's
/// `ImmutableSandboxedEnvironment` refuses them.
enum PythonMethods {
    typealias Method = @Sendable (JinjaValue, JinjaArguments) throws(RuntimeFailure) -> JinjaValue

    private static let unsafeDictMethods: Set<String> = ["clear", "pop", "popitem", "setdefault", "update"]
    private static let unsafeListMethods: Set<String> = ["append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"]

    /// The implementation of method `name` for `value`'s type, if the type has it and it is safe.
    static func method(_ value: JinjaValue, _ name: String) -> Method? {
        switch value {
        case .string: stringMethods[name]
        case .dict: dictMethods[name]
        case .list: listMethods[name]
        case .tuple: tupleMethods[name]
        default: nil
        }
    }

    /// The bound method `name` of `value`, a refusal for a mutating method, or nil when the type has no
    /// such method.
    static func bind(_ value: JinjaValue, _ name: String) -> JinjaValue? {
        let unsafe: Bool
        switch value {
        case .dict: unsafe = unsafeDictMethods.contains(name)
        case .list: unsafe = unsafeListMethods.contains(name)
        case .string, .tuple: unsafe = false
        default: return nil
        }
        if unsafe {
            return .undefined(JinjaUndefined(.message("access to attribute \(pythonRepr(name)) of \(pythonRepr(value.pythonTypeName)) object is unsafe."), isSecurityViolation: true))
        }
        guard let method = method(value, name) else { return nil }
        return .function(JinjaFunction(name: name, typeName: "builtin_function_or_method", repr: "<built-in method \(name) of \(value.pythonTypeName) object at \(placeholderAddress)>") {
            (arguments: JinjaArguments, _: Interpreter) throws(RuntimeFailure) -> JinjaValue in
            try checkArity(value, name, arguments)
            return try method(value, arguments)
        })
    }

    // MARK: - Argument helpers

    /// A `str` argument; `what` prefixes Python's message (`replace() argument 1 must be str, not int`).
    static func string(_ value: JinjaValue?, _ what: String = "") throws(RuntimeFailure) -> String {
        guard case .string(let s)? = value else {
            let prefix = what.isEmpty ? "" : what + " "
            throw RuntimeFailure("TypeError: \(prefix)must be str, not \(value?.pythonTypeName ?? "NoneType")")
        }
        return s
    }

    /// A `str` or `None` argument, as `sep` of `split` and `chars` of `strip`.
    static func optionalString(_ value: JinjaValue?, _ what: String = "") throws(RuntimeFailure) -> String? {
        guard let value, !isNone(value) else { return nil }
        guard case .string(let s) = value else {
            throw RuntimeFailure("TypeError: \(what.isEmpty ? "" : what + " ")must be str or None, not \(value.pythonTypeName)")
        }
        return s
    }

    static func isNone(_ value: JinjaValue) -> Bool {
        if case .none = value { return true }
        return false
    }

    /// The `start`/`end` arguments of `find`, `count`, `startswith`: converted like slice indices.
    static func sliceIndex(_ value: JinjaValue?) throws(RuntimeFailure) -> Int? {
        guard let value, !isNone(value) else { return nil }
        if case .int(let i)? = value.numeric { return i }
        throw RuntimeFailure("TypeError: slice indices must be integers or None or have an __index__ method")
    }

    static func integer(_ value: JinjaValue?, default defaultValue: Int? = nil, _ what: String) throws(RuntimeFailure) -> Int? {
        guard let value, !isNone(value) else { return defaultValue }
        if case .int(let i)? = value.numeric { return i }
        throw RuntimeFailure("TypeError: '\(value.pythonTypeName)' object cannot be interpreted as an integer")
    }

    private static func text(_ value: JinjaValue) -> String {
        if case .string(let s) = value { return s }
        return ""
    }

    private static func strings(_ items: [String]) throws(RuntimeFailure) -> JinjaValue {
        .list(try JinjaList(items.map { .string($0) }))
    }

    // MARK: - str

    static let stringMethods: [String: Method] = [
        "startswith": { v, a throws(RuntimeFailure) in try affix(text(v), a, suffix: false) },
        "endswith": { v, a throws(RuntimeFailure) in try affix(text(v), a, suffix: true) },
        "strip": { v, a throws(RuntimeFailure) in try strip(text(v), a, leading: true, trailing: true, name: "strip") },
        "lstrip": { v, a throws(RuntimeFailure) in try strip(text(v), a, leading: true, trailing: false, name: "lstrip") },
        "rstrip": { v, a throws(RuntimeFailure) in try strip(text(v), a, leading: false, trailing: true, name: "rstrip") },
        "split": { v, a throws(RuntimeFailure) in
            let b = try a.bind(["sep", "maxsplit"], function: "split")
            return try strings(PythonString.split(text(v), separator: optionalString(b[0]), maxSplit: integer(b[1], default: -1, "maxsplit") ?? -1))
        },
        "rsplit": { v, a throws(RuntimeFailure) in
            let b = try a.bind(["sep", "maxsplit"], function: "rsplit")
            return try strings(PythonString.rsplit(text(v), separator: optionalString(b[0]), maxSplit: integer(b[1], default: -1, "maxsplit") ?? -1))
        },
        "splitlines": { v, a throws(RuntimeFailure) in
            let b = try a.bind(["keepends"], function: "splitlines")
            return try strings(PythonString.splitLines(text(v), keepEnds: (try integer(b[0], default: 0, "keepends") ?? 0) != 0))
        },
        "upper": { v, _ in .string(PythonString.upper(text(v))) },
        "lower": { v, _ in .string(PythonString.lower(text(v))) },
        "casefold": { v, _ in .string(PythonString.lower(text(v))) },
        "title": { v, _ in .string(PythonString.title(text(v))) },
        "capitalize": { v, _ in .string(PythonString.capitalize(text(v))) },
        "swapcase": { v, _ in .string(PythonString.swapcase(text(v))) },
        "replace": { v, a throws(RuntimeFailure) in
            let b = try a.bind(["old", "new", "count"], function: "replace")
            let result = try PythonString.replace(text(v), try string(b[0], "replace() argument 1"), try string(b[1], "replace() argument 2"), count: try integer(b[2], default: -1, "count") ?? -1)
            try checkedSize(result.utf8.count)
            return .string(result)
        },
        "find": { v, a throws(RuntimeFailure) in try find(text(v), a, reverse: false, raising: false) },
        "rfind": { v, a throws(RuntimeFailure) in try find(text(v), a, reverse: true, raising: false) },
        "index": { v, a throws(RuntimeFailure) in try find(text(v), a, reverse: false, raising: true) },
        "rindex": { v, a throws(RuntimeFailure) in try find(text(v), a, reverse: true, raising: true) },
        "count": { v, a throws(RuntimeFailure) in
            let b = try a.bind(["sub", "start", "end"], function: "count")
            return .int(PythonString.count(text(v), try string(b[0]), start: try sliceIndex(b[1]), end: try sliceIndex(b[2])))
        },
        "join": { v, a throws(RuntimeFailure) in
            let b = try a.bind(["iterable"], function: "join")
            guard let iterable = b[0] else { throw RuntimeFailure("TypeError: join() takes exactly one argument (0 given)") }
            let items: [JinjaValue]
            do {
                items = try iterable.pythonIterate()
            } catch {
                throw RuntimeFailure("TypeError: can only join an iterable")
            }
            var parts: [String] = []
            for (i, item) in items.enumerated() {
                guard case .string(let s) = item else {
                    throw RuntimeFailure("TypeError: sequence item \(i): expected str instance, \(item.pythonTypeName) found")
                }
                parts.append(s)
            }
            let result = parts.joined(separator: text(v))
            try checkedSize(result.utf8.count)
            return .string(result)
        },
        "isalpha": { v, _ in .bool(allScalars(text(v)) { $0.properties.isAlphabetic && $0.properties.generalCategory != .spacingMark }) },
        "isdigit": { v, _ in .bool(allScalars(text(v)) { $0.properties.numericType == .decimal || $0.properties.numericType == .digit }) },
        "isdecimal": { v, _ in .bool(allScalars(text(v)) { $0.properties.numericType == .decimal }) },
        "isnumeric": { v, _ in .bool(allScalars(text(v)) { $0.properties.numericType != nil }) },
        "isalnum": { v, _ in .bool(allScalars(text(v)) { $0.properties.isAlphabetic || $0.properties.numericType != nil }) },
        "isspace": { v, _ in .bool(allScalars(text(v), isPythonWhitespace)) },
        "islower": { v, _ in .bool(PythonString.isCasedMatch(text(v), upper: false)) },
        "isupper": { v, _ in .bool(PythonString.isCasedMatch(text(v), upper: true)) },
        "center": { v, a throws(RuntimeFailure) in try pad(text(v), a, alignment: 0, function: "center") },
        "ljust": { v, a throws(RuntimeFailure) in try pad(text(v), a, alignment: -1, function: "ljust") },
        "rjust": { v, a throws(RuntimeFailure) in try pad(text(v), a, alignment: 1, function: "rjust") },
        "zfill": { v, a throws(RuntimeFailure) in
            let b = try a.bind(["width"], function: "zfill")
            let width = try integer(b[0], "width") ?? 0
            try checkedSize(width)
            var s = text(v)
            let length = s.unicodeScalars.count
            guard width > length else { return .string(s) }
            var sign = ""
            if s.hasPrefix("-") || s.hasPrefix("+") { sign = String(s.removeFirst()) }
            return .string(sign + String(repeating: "0", count: width - length) + s)
        },
        "partition": { v, a throws(RuntimeFailure) in try partition(text(v), a, reverse: false) },
        "rpartition": { v, a throws(RuntimeFailure) in try partition(text(v), a, reverse: true) },
        "removeprefix": { v, a throws(RuntimeFailure) in
            let prefix = try string(try a.bind(["prefix"], function: "removeprefix")[0], "removeprefix() argument")
            let s = text(v)
            return .string(PythonString.hasPrefix(s, prefix) ? PythonString.string(utf8: s.utf8.dropFirst(prefix.utf8.count)) : s)
        },
        "removesuffix": { v, a throws(RuntimeFailure) in
            let suffix = try string(try a.bind(["suffix"], function: "removesuffix")[0], "removesuffix() argument")
            let s = text(v)
            return .string(PythonString.hasSuffix(s, suffix) && !suffix.isEmpty ? PythonString.string(utf8: s.utf8.dropLast(suffix.utf8.count)) : s)
        },
    ]

    private static func allScalars(_ s: String, _ predicate: (Unicode.Scalar) -> Bool) -> Bool {
        !s.isEmpty && s.unicodeScalars.allSatisfy(predicate)
    }

    private static func affix(_ s: String, _ a: JinjaArguments, suffix: Bool) throws(RuntimeFailure) -> JinjaValue {
        let name = suffix ? "endswith" : "startswith"
        let b = try a.bind(["prefix", "start", "end"], function: name)
        let start = try sliceIndex(b[1])
        let end = try sliceIndex(b[2])
        var candidates: [String] = []
        switch b[0] {
        case .string(let p)?: candidates = [p]
        case .tuple(let t)?:
            for item in t.items {
                guard case .string(let p) = item else {
                    throw RuntimeFailure("TypeError: tuple for \(name) must only contain str, not \(item.pythonTypeName)")
                }
                candidates.append(p)
            }
        default:
            throw RuntimeFailure("TypeError: \(name) first arg must be str or a tuple of str, not \(b[0]?.pythonTypeName ?? "nothing")")
        }
        return .bool(candidates.contains { PythonString.matchesAffix(s, $0, start: start, end: end, suffix: suffix) })
    }

    private static func strip(_ s: String, _ a: JinjaArguments, leading: Bool, trailing: Bool, name: String) throws(RuntimeFailure) -> JinjaValue {
        let b = try a.bind(["chars"], function: name)
        var characters: String? = nil
        switch b[0] {
        case nil, .none?: break
        case .string(let c)?: characters = c
        default: throw RuntimeFailure("TypeError: \(name) arg must be None or str")
        }
        return .string(PythonString.strip(s, characters: characters, leading: leading, trailing: trailing))
    }

    private static func find(_ s: String, _ a: JinjaArguments, reverse: Bool, raising: Bool) throws(RuntimeFailure) -> JinjaValue {
        let b = try a.bind(["sub", "start", "end"], function: reverse ? "rfind" : "find")
        let index = PythonString.find(s, try string(b[0]), start: try sliceIndex(b[1]), end: try sliceIndex(b[2]), reverse: reverse)
        if raising && index < 0 { throw RuntimeFailure("ValueError: substring not found") }
        return .int(index)
    }

    private static func pad(_ s: String, _ a: JinjaArguments, alignment: Int, function: String) throws(RuntimeFailure) -> JinjaValue {
        let b = try a.bind(["width", "fillchar"], function: function)
        let width = try integer(b[0], "width") ?? 0
        try checkedSize(width)
        var fill = " "
        if let given = b[1] {
            guard case .string(let f) = given else {
                throw RuntimeFailure("TypeError: The fill character must be a unicode character, not \(given.pythonTypeName)")
            }
            fill = f
        }
        guard fill.unicodeScalars.count == 1, let scalar = fill.unicodeScalars.first else {
            throw RuntimeFailure("TypeError: The fill character must be exactly one character long")
        }
        return .string(PythonString.pad(s, width: width, fill: scalar, alignment: alignment))
    }

    private static func partition(_ s: String, _ a: JinjaArguments, reverse: Bool) throws(RuntimeFailure) -> JinjaValue {
        let separator = try string(try a.bind(["sep"], function: "partition")[0])
        guard !separator.isEmpty else { throw RuntimeFailure("ValueError: empty separator") }
        let index = PythonString.find(s, separator, start: nil, end: nil, reverse: reverse)
        let scalars = Array(s.unicodeScalars)
        if index < 0 {
            let parts: [JinjaValue] = reverse ? [.string(""), .string(""), .string(s)] : [.string(s), .string(""), .string("")]
            return .tuple(try JinjaList(parts))
        }
        let after = index + separator.unicodeScalars.count
        return .tuple(try JinjaList([.string(PythonString.string(scalars[..<index])), .string(separator), .string(PythonString.string(scalars[after...]))]))
    }

    // MARK: - dict

    static let dictMethods: [String: Method] = [
        "items": { v, _ throws(RuntimeFailure) in
            guard case .dict(let d) = v else { return .none }
            var pairs: [JinjaValue] = []
            for entry in d.entries { pairs.append(.tuple(try JinjaList([entry.key, entry.value]))) }
            return .list(try JinjaList(pairs))
        },
        "keys": { v, _ throws(RuntimeFailure) in
            guard case .dict(let d) = v else { return .none }
            return .list(try JinjaList(d.entries.map(\.key)))
        },
        "values": { v, _ throws(RuntimeFailure) in
            guard case .dict(let d) = v else { return .none }
            return .list(try JinjaList(d.entries.map(\.value)))
        },
        "get": { v, a throws(RuntimeFailure) in
            guard case .dict(let d) = v else { return .none }
            guard a.keywords.isEmpty, (1...2).contains(a.positional.count) else {
                throw RuntimeFailure("TypeError: get expected 1 or 2 positional arguments")
            }
            return try d.get(a.positional[0]) ?? (a.positional.count > 1 ? a.positional[1] : JinjaValue.none)
        },
        "copy": { v, _ in v },
    ]

    // MARK: - list and tuple

    static let listMethods: [String: Method] = [
        "count": { v, a throws(RuntimeFailure) in try sequenceCount(v, a) },
        "index": { v, a throws(RuntimeFailure) in try sequenceIndex(v, a) },
        "copy": { v, _ in v },
    ]

    static let tupleMethods: [String: Method] = [
        "count": { v, a throws(RuntimeFailure) in try sequenceCount(v, a) },
        "index": { v, a throws(RuntimeFailure) in try sequenceIndex(v, a) },
    ]

    private static func items(_ v: JinjaValue) -> [JinjaValue] {
        switch v {
        case .list(let l), .tuple(let l): l.items
        default: []
        }
    }

    private static func sequenceCount(_ v: JinjaValue, _ a: JinjaArguments) throws(RuntimeFailure) -> JinjaValue {
        guard a.positional.count == 1, a.keywords.isEmpty else { throw RuntimeFailure("TypeError: count() takes exactly one argument") }
        return .int(items(v).filter { $0.pythonEquals(a.positional[0]) }.count)
    }

    private static func sequenceIndex(_ v: JinjaValue, _ a: JinjaArguments) throws(RuntimeFailure) -> JinjaValue {
        guard a.positional.count >= 1, a.keywords.isEmpty else { throw RuntimeFailure("TypeError: index expected at least 1 argument") }
        guard let index = items(v).firstIndex(where: { $0.pythonEquals(a.positional[0]) }) else {
            throw RuntimeFailure("ValueError: \((try? a.positional[0].pythonRepr()) ?? "value") is not in \(v.pythonTypeName)")
        }
        return .int(index)
    }
}
