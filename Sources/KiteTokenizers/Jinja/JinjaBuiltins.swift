#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// jinja2's tests (`tests.py`) and the globals transformers' environment provides: jinja2's `range`,
/// `dict`, `namespace`, plus `raise_exception` and `strftime_now`.
enum JinjaTests {
    typealias Test = @Sendable (Interpreter, JinjaValue, JinjaArguments) throws(RuntimeFailure) -> Bool

    /// The one argument of a test such as `divisibleby(num)`, bound as jinja2's Python function would.
    private static func argument(_ a: JinjaArguments, _ name: String, _ function: String, implicit: Int = 1) throws(RuntimeFailure) -> JinjaValue {
        try a.bind([name], required: 1, implicit: implicit, function: function)[0] ?? .none
    }

    /// A test of the value alone: extra arguments are an error, as for jinja2's `test_*(value)`.
    private static func unary(_ function: String, implicit: Int = 1, _ body: @escaping @Sendable (JinjaValue) throws(RuntimeFailure) -> Bool) -> Test {
        { _, v, a throws(RuntimeFailure) in
            _ = try a.bind([], implicit: implicit, function: function)
            return try body(v)
        }
    }

    private static func compare(_ op: CompareOperator, _ name: String) -> Test {
        { interpreter, v, a throws(RuntimeFailure) in
            guard a.keywords.isEmpty else { throw RuntimeFailure("TypeError: \(name)() takes no keyword arguments") }
            guard a.positional.count == 1 else {
                throw RuntimeFailure("TypeError: \(name) expected 2 arguments, got \(a.positional.count + 1)")
            }
            return try interpreter.compare(v, op, a.positional[0])
        }
    }

    private static func modulo(_ v: JinjaValue, _ divisor: JinjaValue, equals remainder: Int) throws(RuntimeFailure) -> Bool {
        try JinjaValue.binary(.modulo, v, divisor).pythonEquals(.int(remainder))
    }

    static let table: [String: Test] = [
        "odd": unary("test_odd") { v throws(RuntimeFailure) in try modulo(v, .int(2), equals: 1) },
        "even": unary("test_even") { v throws(RuntimeFailure) in try modulo(v, .int(2), equals: 0) },
        "divisibleby": { _, v, a throws(RuntimeFailure) in try modulo(v, try argument(a, "num", "test_divisibleby"), equals: 0) },
        "defined": unary("test_defined") { v in !v.isUndefined },
        "undefined": unary("test_undefined") { v in v.isUndefined },
        "none": unary("test_none") { v in if case .none = v { true } else { false } },
        "boolean": unary("test_boolean") { v in if case .bool = v { true } else { false } },
        "false": unary("test_false") { v in if case .bool(false) = v { true } else { false } },
        "true": unary("test_true") { v in if case .bool(true) = v { true } else { false } },
        "integer": unary("test_integer") { v in if case .int = v { true } else { false } },
        "float": unary("test_float") { v in if case .float = v { true } else { false } },
        "number": unary("test_number") { v in v.numeric != nil },
        "string": unary("test_string") { v in if case .string = v { true } else { false } },
        "mapping": unary("test_mapping") { v in if case .dict = v { true } else { false } },
        "lower": unary("test_lower") { v throws(RuntimeFailure) in PythonString.isCasedMatch(try v.pythonStr(), upper: false) },
        "upper": unary("test_upper") { v throws(RuntimeFailure) in PythonString.isCasedMatch(try v.pythonStr(), upper: true) },
        "sequence": unary("test_sequence") { v in
            switch v {
            case .string, .list, .tuple, .dict, .undefined, .range: true
            default: false
            }
        },
        "iterable": unary("test_iterable") { v in
            switch v {
            case .string, .list, .tuple, .dict, .undefined, .iterator, .loop, .range: true
            default: false
            }
        },
        "callable": { _, v, a throws(RuntimeFailure) in
            try a.requireSingle("callable")
            switch v {
            case .function, .loop, .undefined: return true
            default: return false
            }
        },
        "sameas": { _, v, a throws(RuntimeFailure) in
            let other = try argument(a, "other", "test_sameas")
            switch (v, other) {
            case (.none, .none): return true
            case (.bool(let x), .bool(let y)): return x == y
            case (.int(let x), .int(let y)): return x == y && (-5...256).contains(x)
            case (.namespace(let x), .namespace(let y)): return x === y
            case (.function(let x), .function(let y)): return x === y
            default: return false
            }
        },
        "escaped": unary("test_escaped") { _ in false },
        "in": { _, v, a throws(RuntimeFailure) in try argument(a, "seq", "test_in").pythonContains(v) },
        "filter": unary("test_filter", implicit: 2) { v throws(RuntimeFailure) in
            _ = try DictKey(v)  // `value in env.filters` needs a hashable value
            if case .string(let name) = v { return JinjaFilters.table[name] != nil }
            return false
        },
        "test": unary("test_test", implicit: 2) { v throws(RuntimeFailure) in
            _ = try DictKey(v)
            if case .string(let name) = v { return JinjaTests.table[name] != nil }
            return false
        },
        "==": compare(.equal, "eq"), "eq": compare(.equal, "eq"), "equalto": compare(.equal, "eq"),
        "!=": compare(.notEqual, "ne"), "ne": compare(.notEqual, "ne"),
        ">": compare(.greater, "gt"), "gt": compare(.greater, "gt"), "greaterthan": compare(.greater, "gt"),
        ">=": compare(.greaterOrEqual, "ge"), "ge": compare(.greaterOrEqual, "ge"),
        "<": compare(.less, "lt"), "lt": compare(.less, "lt"), "lessthan": compare(.less, "lt"),
        "<=": compare(.lessOrEqual, "le"), "le": compare(.lessOrEqual, "le"),
    ]
}

enum JinjaGlobals {
    /// jinja2's sandbox refuses ranges longer than this (`MAX_RANGE`).
    static let maximumRange = 100_000

    static let table: [String: JinjaValue] = [
        "range": .function(JinjaFunction(name: "range", repr: "<function safe_range at \(placeholderAddress)>") { (a: JinjaArguments, interpreter: Interpreter) throws(RuntimeFailure) -> JinjaValue in
            guard a.keywords.isEmpty else { throw RuntimeFailure("TypeError: range() takes no keyword arguments") }
            var bounds: [Int] = []
            for value in a.positional {
                guard case .int(let i)? = value.numeric else {
                    throw RuntimeFailure("TypeError: '\(value.pythonTypeName)' object cannot be interpreted as an integer")
                }
                bounds.append(i)
            }
            let (start, stop, step): (Int, Int, Int)
            switch bounds.count {
            case 1: (start, stop, step) = (0, bounds[0], 1)
            case 2: (start, stop, step) = (bounds[0], bounds[1], 1)
            case 3: (start, stop, step) = (bounds[0], bounds[1], bounds[2])
            case 0: throw RuntimeFailure("TypeError: range expected at least 1 argument, got 0")
            default: throw RuntimeFailure("TypeError: range expected at most 3 arguments, got \(bounds.count)")
            }
            guard step != 0 else { throw RuntimeFailure("ValueError: range() arg 3 must not be zero") }
            let range = JinjaRange(start: start, stop: stop, step: step)
            guard range.count <= maximumRange else {
                throw RuntimeFailure("OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (\(maximumRange)).")
            }
            try interpreter.spend(range.count >> 6)
            return .range(range)
        }),
        "dict": .function(JinjaFunction(name: "dict", typeName: "TemplateDict", repr: "<transformers.utils.chat_template_utils._cached_compile_jinja_template.<locals>.TemplateDict object at \(placeholderAddress)>") { (a: JinjaArguments, _: Interpreter) throws(RuntimeFailure) -> JinjaValue in
            .dict(try dictionary(a, function: "dict"))
        }),
        "namespace": .function(JinjaFunction(name: "namespace", typeName: "type", repr: "<class 'transformers.utils.chat_template_utils._cached_compile_jinja_template.<locals>.TemplateNamespace'>") { (a: JinjaArguments, interpreter: Interpreter) throws(RuntimeFailure) -> JinjaValue in
            let attributes = try dictionary(a, function: "dict")
            for (key, _) in attributes.entries {
                if case .string(let name) = key { try interpreter.checkNamespaceName(name) }
            }
            let namespace = JinjaNamespace()
            namespace.attributes = attributes
            interpreter.track(namespace)
            return .namespace(namespace)
        }),
        "raise_exception": .function(JinjaFunction(name: "raise_exception", repr: "<function _cached_compile_jinja_template.<locals>.raise_exception at \(placeholderAddress)>") { (a: JinjaArguments, _: Interpreter) throws(RuntimeFailure) -> JinjaValue in
            let message = try a.bind(["message"], required: 1, function: "_cached_compile_jinja_template.<locals>.raise_exception")[0]
            throw RuntimeFailure(try (message ?? .none).pythonStr(), kind: .raised)
        }),
        "strftime_now": .function(JinjaFunction(name: "strftime_now", repr: "<function _cached_compile_jinja_template.<locals>.strftime_now at \(placeholderAddress)>") { (a: JinjaArguments, _: Interpreter) throws(RuntimeFailure) -> JinjaValue in
            let format = try PythonMethods.string(try a.bind(["format"], required: 1, function: "_cached_compile_jinja_template.<locals>.strftime_now")[0], "strftime() argument 1")
            return .string(formatCurrentTime(format))
        }),
    ]

    /// Python's `dict(mapping_or_pairs, **keywords)`.
    static func dictionary(_ a: JinjaArguments, function: String) throws(RuntimeFailure) -> JinjaDict {
        guard a.positional.count <= 1 else {
            throw RuntimeFailure("TypeError: \(function) expected at most 1 argument, got \(a.positional.count)")
        }
        var dict = JinjaDict()
        if let source = a.positional.first {
            switch source {
            case .dict(let d): dict = d
            case .undefined(let u): throw u.failure
            default:
                for (i, pair) in try source.pythonIterate().enumerated() {
                    let items: [JinjaValue]
                    do {
                        items = try pair.pythonIterate()
                    } catch {
                        throw RuntimeFailure("TypeError: cannot convert dictionary update sequence element #\(i) to a sequence")
                    }
                    guard items.count == 2 else {
                        throw RuntimeFailure("ValueError: dictionary update sequence element #\(i) has length \(items.count); 2 is required")
                    }
                    try dict.set(items[0], items[1])
                }
            }
        }
        for (name, value) in a.keywords { try dict.set(.string(name), value) }
        return dict
    }

    /// `datetime.now().strftime(format)` in local time.
    static func formatCurrentTime(_ format: String) -> String {
        var now = time(nil)
        var parts = tm()
        _ = localtime_r(&now, &parts)
        var capacity = 256
        while capacity <= 1 << 16 {
            var buffer = [CChar](repeating: 0, count: capacity)
            let written = strftime(&buffer, capacity, format, &parts)
            if written > 0 || format.isEmpty {
                return String(decoding: buffer[..<written].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
            capacity *= 4
        }
        return ""
    }
}
