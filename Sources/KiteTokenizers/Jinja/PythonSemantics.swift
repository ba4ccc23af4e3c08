import KiteJSON

/// The Python object behaviour jinja2 inherits: type names, truthiness, `str()`/`repr()`, equality and
/// ordering, arithmetic, membership, length and iteration, with Python's error messages.

/// Python's `repr(float)` / `str(float)`.
func pythonFloatRepr(_ value: Double) -> String {
    if value.isNaN { return "nan" }
    if value.isInfinite { return value < 0 ? "-inf" : "inf" }
    return JSONValue.pythonRepr(value)
}

extension JinjaValue {
    var pythonTypeName: String {
        switch self {
        case .undefined: "Undefined"
        case .none: "NoneType"
        case .bool: "bool"
        case .int: "int"
        case .float: "float"
        case .string: "str"
        case .list: "list"
        case .tuple: "tuple"
        case .dict: "dict"
        case .namespace: "TemplateNamespace"
        case .iterator(let iterator): iterator.typeName
        case .range: "range"
        case .function(let function): function.typeName
        case .loop: "LoopContext"
        }
    }

    /// jinja2's `object_type_repr`, used in "... has no attribute ..." messages.
    var ownerDescription: String {
        switch self {
        case .none: "None"
        case .namespace: "transformers.utils.chat_template_utils.TemplateNamespace object"
        case .loop: "jinja2.runtime.LoopContext object"
        case .undefined: "jinja2.runtime.Undefined object"
        case .function(let f) where f.typeName == "TemplateDict": "transformers.utils.chat_template_utils.TemplateDict object"
        case .function(let f) where f.typeName == "Macro": "jinja2.runtime.Macro object"
        default: "\(pythonTypeName) object"
        }
    }

    var isTruthy: Bool {
        switch self {
        case .undefined, .none: false
        case .bool(let b): b
        case .int(let i): i != 0
        case .float(let d): d != 0
        case .string(let s): !s.isEmpty
        case .list(let l), .tuple(let l): !l.items.isEmpty
        case .dict(let d): d.count > 0
        case .range(let r): r.count > 0
        case .namespace, .iterator, .function, .loop: true
        }
    }

    /// Python's `str(value)`, which is what `{{ value }}` prints.
    func pythonStr() throws(RuntimeFailure) -> String {
        switch self {
        case .undefined: return ""
        case .string(let s): return s
        default: return try pythonRepr(depth: 0)
        }
    }

    /// Python's `repr(value)`.
    func pythonRepr(depth: Int = 0) throws(RuntimeFailure) -> String {
        guard depth <= maximumValueDepth else {
            throw RuntimeFailure("RecursionError: maximum recursion depth exceeded while getting the repr of an object")
        }
        switch self {
        case .undefined: return "Undefined"
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .float(let d): return pythonFloatRepr(d)
        case .string(let s): return KiteTokenizers.pythonRepr(s)
        case .list(let list):
            var out = "["
            for (i, item) in list.items.enumerated() {
                if i > 0 { out += ", " }
                out += try item.pythonRepr(depth: depth + 1)
            }
            return out + "]"
        case .tuple(let tuple):
            var out = "("
            for (i, item) in tuple.items.enumerated() {
                if i > 0 { out += ", " }
                out += try item.pythonRepr(depth: depth + 1)
            }
            return out + (tuple.items.count == 1 ? ",)" : ")")
        case .dict(let dict):
            return try Self.dictRepr(dict, depth: depth)
        case .namespace(let namespace):
            return "<Namespace \(try Self.dictRepr(namespace.attributes, depth: depth))>"
        case .iterator(let iterator):
            return iterator.typeName == "generator"
                ? "<generator object \(iterator.origin) at \(placeholderAddress)>"
                : "<\(iterator.typeName) object at \(placeholderAddress)>"
        case .range(let r):
            return r.repr
        case .function(let function):
            return function.reprText
        case .loop(let loop):
            return "<LoopContext \(loop.index0 + 1)/\(loop.length)>"
        }
    }

    private static func dictRepr(_ dict: JinjaDict, depth: Int) throws(RuntimeFailure) -> String {
        var out = "{"
        for (i, entry) in dict.entries.enumerated() {
            if i > 0 { out += ", " }
            out += try entry.key.pythonRepr(depth: depth + 1)
            out += ": "
            out += try entry.value.pythonRepr(depth: depth + 1)
        }
        return out + "}"
    }

    // MARK: - Equality and ordering

    /// Python's `==`: numbers compare by value across bool/int/float, strings by code points, lists and
    /// tuples element-wise (a list never equals a tuple), dicts ignoring order.
    func pythonEquals(_ other: JinjaValue) -> Bool {
        switch (self, other) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let a), .string(let b)): return exactlyEqual(a, b)
        case (.list(let a), .list(let b)), (.tuple(let a), .tuple(let b)):
            guard a.items.count == b.items.count else { return false }
            return zip(a.items, b.items).allSatisfy { $0.pythonEquals($1) }
        case (.dict(let a), .dict(let b)):
            guard a.count == b.count else { return false }
            for (key, value) in a.entries {
                guard let otherValue = try? b.get(key), value.pythonEquals(otherValue) else { return false }
            }
            return true
        case (.namespace(let a), .namespace(let b)): return a === b
        case (.iterator(let a), .iterator(let b)): return a === b
        case (.range(let a), .range(let b)):
            let (n, m) = (a.count, b.count)
            return n == m && (n == 0 || (a.start == b.start && (n == 1 || a.step == b.step)))
        case (.function(let a), .function(let b)): return a === b
        case (.loop(let a), .loop(let b)): return a === b
        default:
            guard let a = numeric, let b = other.numeric else { return false }
            return Self.compareNumbers(a, b) == 0
        }
    }

    enum Number {
        case int(Int)
        case float(Double)
        var double: Double {
            switch self {
            case .int(let i): Double(i)
            case .float(let d): d
            }
        }
    }

    /// Whether the value is a bool or int, or a float with an integral value.
    var isIntegral: Bool {
        switch self {
        case .bool, .int: true
        case .float(let d): d.rounded() == d
        default: false
        }
    }

    /// The value as a Python number (bools are ints), or nil.
    var numeric: Number? {
        switch self {
        case .bool(let b): .int(b ? 1 : 0)
        case .int(let i): .int(i)
        case .float(let d): .float(d)
        default: nil
        }
    }

    /// -1, 0, 1, or nil when unordered (NaN).
    static func compareNumbers(_ a: Number, _ b: Number) -> Int? {
        switch (a, b) {
        case (.int(let x), .int(let y)): return x < y ? -1 : (x == y ? 0 : 1)
        default:
            let x = a.double
            let y = b.double
            if x.isNaN || y.isNaN { return nil }
            return x < y ? -1 : (x == y ? 0 : 1)
        }
    }

    enum Ordering: String {
        case less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="
    }

    /// Python's `<`, `<=`, `>`, `>=`.
    func pythonCompare(_ other: JinjaValue, _ op: Ordering, depth: Int = 0) throws(RuntimeFailure) -> Bool {
        if case .undefined(let u) = self { throw u.failure }
        if case .undefined(let u) = other { throw u.failure }
        func decide(_ c: Int?) -> Bool {
            guard let c else { return false }
            switch op {
            case .less: return c < 0
            case .lessOrEqual: return c <= 0
            case .greater: return c > 0
            case .greaterOrEqual: return c >= 0
            }
        }
        switch (self, other) {
        case (.string(let a), .string(let b)):
            if exactlyEqual(a, b) { return decide(0) }
            return decide(a.utf8.lexicographicallyPrecedes(b.utf8) ? -1 : 1)
        case (.list(let a), .list(let b)), (.tuple(let a), .tuple(let b)):
            guard depth < maximumValueDepth else { throw RuntimeFailure("RecursionError: comparison nested too deeply") }
            for (x, y) in zip(a.items, b.items) where !x.pythonEquals(y) {
                return try x.pythonCompare(y, op, depth: depth + 1)
            }
            return decide(a.items.count < b.items.count ? -1 : (a.items.count == b.items.count ? 0 : 1))
        default:
            if let a = numeric, let b = other.numeric { return decide(Self.compareNumbers(a, b)) }
            throw RuntimeFailure("TypeError: '\(op.rawValue)' not supported between instances of '\(pythonTypeName)' and '\(other.pythonTypeName)'")
        }
    }

    // MARK: - Containers

    /// Python's `len(value)`; undefined has length 0 as in jinja2.
    func pythonLength() throws(RuntimeFailure) -> Int {
        switch self {
        case .undefined: return 0
        case .string(let s): return s.unicodeScalars.count
        case .list(let l), .tuple(let l): return l.items.count
        case .dict(let d): return d.count
        case .loop(let loop): return loop.length
        case .range(let r): return r.count
        default: throw RuntimeFailure("TypeError: object of type '\(pythonTypeName)' has no len()")
        }
    }

    /// The items `for x in value` visits: list items, dict keys, string characters; undefined is empty.
    func pythonIterate() throws(RuntimeFailure) -> [JinjaValue] {
        switch self {
        case .undefined: return []
        case .list(let l), .tuple(let l): return l.items
        case .dict(let d): return d.entries.map(\.key)
        case .string(let s):
            try checkedCount(s.utf8.count > maximumListItems ? s.unicodeScalars.count : 0)
            return s.unicodeScalars.map { .string(String($0)) }
        case .iterator(let iterator): return try iterator.drain()
        case .range(let r):
            try checkedCount(r.count)
            return (0..<r.count).map { .int(r.element($0)) }
        default: throw RuntimeFailure("TypeError: '\(pythonTypeName)' object is not iterable")
        }
    }

    /// Python's `needle in self`.
    func pythonContains(_ needle: JinjaValue) throws(RuntimeFailure) -> Bool {
        switch self {
        case .string(let s):
            guard case .string(let part) = needle else {
                throw RuntimeFailure("TypeError: 'in <string>' requires string as left operand, not \(needle.pythonTypeName)")
            }
            return PythonString.contains(s, part)
        case .list(let l), .tuple(let l): return l.items.contains { $0.pythonEquals(needle) }
        case .dict(let d): return try d.contains(needle)
        case .undefined: return false
        case .iterator(let iterator):
            while let item = try iterator.next() {
                if item.pythonEquals(needle) { return true }
            }
            return false
        case .range(let r):
            guard case .int(let n)? = needle.numeric, needle.isIntegral else {
                return try pythonIterate().contains { $0.pythonEquals(needle) }
            }
            let offset = n - r.start
            let index = offset / r.step
            return offset % r.step == 0 && index >= 0 && index < r.count
        default: throw RuntimeFailure("TypeError: argument of type '\(pythonTypeName)' is not iterable")
        }
    }
}
