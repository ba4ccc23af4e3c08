#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// jinja2's tests (`tests.py`) and the globals transformers' environment provides: jinja2's `range`,
/// `dict`, `namespace`, plus `raise_exception` and `strftime_now`.
enum JinjaTests {
    typealias Test = @Sendable (Interpreter, JinjaValue, JinjaArguments) throws(RuntimeFailure) -> Bool

    private static func argument(_ a: JinjaArguments, _ name: String, _ function: String) throws(RuntimeFailure) -> JinjaValue {
        guard let value = try a.bind([name], function: function)[0] else {
            throw RuntimeFailure("TypeError: \(function)() missing 1 required positional argument: \(pythonRepr(name))")
        }
        return value
    }

    private static func compare(_ op: CompareOperator) -> Test {
        { interpreter, v, a throws(RuntimeFailure) in try interpreter.compare(v, op, try argument(a, "other", op.rawValue)) }
    }

    private static func modulo(_ v: JinjaValue, _ divisor: JinjaValue, equals remainder: Int) throws(RuntimeFailure) -> Bool {
        try JinjaValue.binary(.modulo, v, divisor).pythonEquals(.int(remainder))
    }

    static let table: [String: Test] = [
        "odd": { _, v, _ throws(RuntimeFailure) in try modulo(v, .int(2), equals: 1) },
        "even": { _, v, _ throws(RuntimeFailure) in try modulo(v, .int(2), equals: 0) },
        "divisibleby": { _, v, a throws(RuntimeFailure) in try modulo(v, try argument(a, "num", "test_divisibleby"), equals: 0) },
        "defined": { _, v, _ in !v.isUndefined },
        "undefined": { _, v, _ in v.isUndefined },
        "none": { _, v, _ in if case .none = v { true } else { false } },
        "boolean": { _, v, _ in if case .bool = v { true } else { false } },
        "false": { _, v, _ in if case .bool(false) = v { true } else { false } },
        "true": { _, v, _ in if case .bool(true) = v { true } else { false } },
        "integer": { _, v, _ in if case .int = v { true } else { false } },
        "float": { _, v, _ in if case .float = v { true } else { false } },
        "number": { _, v, _ in v.numeric != nil },
        "string": { _, v, _ in if case .string = v { true } else { false } },
        "mapping": { _, v, _ in if case .dict = v { true } else { false } },
        "lower": { _, v, _ throws(RuntimeFailure) in PythonString.isCasedMatch(try v.pythonStr(), upper: false) },
        "upper": { _, v, _ throws(RuntimeFailure) in PythonString.isCasedMatch(try v.pythonStr(), upper: true) },
        "sequence": { _, v, _ in
            switch v {
            case .string, .list, .tuple, .dict, .undefined: true
            default: false
            }
        },
        "iterable": { _, v, _ in
            switch v {
            case .string, .list, .tuple, .dict, .undefined, .iterator, .loop: true
            default: false
            }
        },
        "callable": { _, v, _ in
            switch v {
            case .function, .loop, .undefined: true
            default: false
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
        "escaped": { _, _, _ in false },
        "in": { _, v, a throws(RuntimeFailure) in try argument(a, "seq", "test_in").pythonContains(v) },
        "filter": { _, v, _ in if case .string(let name) = v { JinjaFilters.table[name] != nil } else { false } },
        "test": { _, v, _ in if case .string(let name) = v { JinjaTests.table[name] != nil } else { false } },
        "==": compare(.equal), "eq": compare(.equal), "equalto": compare(.equal),
        "!=": compare(.notEqual), "ne": compare(.notEqual),
        ">": compare(.greater), "gt": compare(.greater), "greaterthan": compare(.greater),
        ">=": compare(.greaterOrEqual), "ge": compare(.greaterOrEqual),
        "<": compare(.less), "lt": compare(.less), "lessthan": compare(.less),
        "<=": compare(.lessOrEqual), "le": compare(.lessOrEqual),
    ]
}

enum JinjaGlobals {
    /// jinja2's sandbox refuses ranges longer than this (`MAX_RANGE`).
    static let maximumRange = 100_000

    static let table: [String: JinjaValue] = [
        "range": .function(JinjaFunction(name: "range", repr: "<class 'range'>") { (a: JinjaArguments, interpreter: Interpreter) throws(RuntimeFailure) -> JinjaValue in
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
            default: throw RuntimeFailure("TypeError: range expected at most 3 arguments, got \(bounds.count)")
            }
            guard step != 0 else { throw RuntimeFailure("ValueError: range() arg 3 must not be zero") }
            let span = step > 0 ? Double(stop) - Double(start) : Double(start) - Double(stop)
            let count = span <= 0 ? 0 : Int(((span + Double(abs(step)) - 1) / Double(abs(step))).rounded(.down))
            guard count <= maximumRange else {
                throw RuntimeFailure("OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (\(maximumRange)).")
            }
            try interpreter.spend(count)
            var items: [JinjaValue] = []
            items.reserveCapacity(count)
            var i = start
            for _ in 0..<count {
                items.append(.int(i))
                i += step
            }
            return .list(try JinjaList(items))
        }),
        "dict": .function(JinjaFunction(name: "dict", repr: "<TemplateDict>") { (a: JinjaArguments, _: Interpreter) throws(RuntimeFailure) -> JinjaValue in
            var dict = JinjaDict()
            guard a.positional.count <= 1 else { throw RuntimeFailure("TypeError: dict expected at most 1 argument, got \(a.positional.count)") }
            if let source = a.positional.first {
                switch source {
                case .dict(let d): dict = d
                default:
                    for pair in try source.pythonIterate() {
                        let items = try pair.pythonIterate()
                        guard items.count == 2 else {
                            throw RuntimeFailure("ValueError: dictionary update sequence element has length \(items.count); 2 is required")
                        }
                        try dict.set(items[0], items[1])
                    }
                }
            }
            for (name, value) in a.keywords { try dict.set(.string(name), value) }
            return .dict(dict)
        }),
        "namespace": .function(JinjaFunction(name: "namespace", repr: "<class 'TemplateNamespace'>") { (a: JinjaArguments, interpreter: Interpreter) throws(RuntimeFailure) -> JinjaValue in
            let namespace = JinjaNamespace()
            interpreter.track(namespace)
            guard a.positional.count <= 1 else { throw RuntimeFailure("TypeError: dict expected at most 1 argument, got \(a.positional.count)") }
            if let source = a.positional.first {
                guard case .dict(let d) = source else {
                    throw RuntimeFailure("TypeError: namespace() takes a mapping, not \(source.pythonTypeName)")
                }
                for (key, value) in d.entries {
                    if case .string(let name) = key { try interpreter.checkNamespaceName(name) }
                    try namespace.attributes.set(key, value)
                }
            }
            for (name, value) in a.keywords {
                try interpreter.checkNamespaceName(name)
                try namespace.attributes.set(.string(name), value)
            }
            return .namespace(namespace)
        }),
        "raise_exception": .function(JinjaFunction(name: "raise_exception") { (a: JinjaArguments, _: Interpreter) throws(RuntimeFailure) -> JinjaValue in
            let b = try a.bind(["message"], function: "raise_exception")
            guard let message = b[0] else {
                throw RuntimeFailure("TypeError: raise_exception() missing 1 required positional argument: 'message'")
            }
            throw RuntimeFailure(try message.pythonStr(), kind: .raised)
        }),
        "strftime_now": .function(JinjaFunction(name: "strftime_now") { (a: JinjaArguments, _: Interpreter) throws(RuntimeFailure) -> JinjaValue in
            let format = try PythonMethods.string(try a.bind(["format"], function: "strftime_now")[0], "strftime() argument 1")
            return .string(formatCurrentTime(format))
        }),
    ]

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
