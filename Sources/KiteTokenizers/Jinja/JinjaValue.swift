import KiteJSON

/// A value while a template renders, modelled on the Python objects jinja2 works with: `int` and
/// `float` stay distinct, dicts keep insertion order, lists and tuples are different types, and an
/// undefined value remembers why it is undefined for the error message it raises when misused.
enum JinjaValue: Sendable {
    indirect case undefined(JinjaUndefined)
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case list(JinjaList)
    case tuple(JinjaList)
    indirect case dict(JinjaDict)
    case namespace(JinjaNamespace)
    /// A one-shot iterator (what jinja2's `map`, `select`, `reverse` and friends return).
    case iterator(JinjaIterator)
    case range(JinjaRange)
    case function(JinjaFunction)
    case loop(JinjaLoop)

    static let emptyString = JinjaValue.string("")

    static func undefinedName(_ name: String) -> JinjaValue { .undefined(JinjaUndefined(.name(name))) }

    /// Nesting depth of containers; bounded so that printing, comparing and freeing never recurse deeply.
    var depth: Int {
        switch self {
        case .list(let list), .tuple(let list): list.depth
        case .dict(let dict): dict.depth
        default: 0
        }
    }

    var isUndefined: Bool {
        if case .undefined = self { return true }
        return false
    }

    var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }
}

/// Containers deeper than this are refused, as are inputs nested deeper (Python would hit its
/// recursion limit around here too).
let maximumValueDepth = 512

/// Why a value is undefined; the text matches jinja2's `UndefinedError` messages.
struct JinjaUndefined: Sendable {
    enum Hint: Sendable {
        case name(String)
        case attribute(owner: String, name: String)
        case element(owner: String, key: String)
        case message(String)
    }

    var hint: Hint
    /// Set for sandbox refusals, whose use raises `SecurityError` rather than `UndefinedError`.
    var isSecurityViolation = false

    init(_ hint: Hint, isSecurityViolation: Bool = false) {
        self.hint = hint
        self.isSecurityViolation = isSecurityViolation
    }

    var message: String {
        switch hint {
        case .name(let name): return "\(pythonRepr(name)) is undefined"
        case .attribute(let owner, let name): return "\(pythonRepr(owner)) has no attribute \(pythonRepr(name))"
        case .element(let owner, let key): return "\(owner) has no element \(key)"
        case .message(let text): return text
        }
    }

    /// The error raised when the undefined value is used for anything but printing, testing or iterating.
    var failure: RuntimeFailure {
        RuntimeFailure(isSecurityViolation ? "SecurityError: \(message)" : "UndefinedError: \(message)")
    }
}

/// An immutable Python list or tuple with its nesting depth cached.
struct JinjaList: Sendable {
    let items: [JinjaValue]
    let depth: Int

    init(_ items: [JinjaValue]) throws(RuntimeFailure) {
        try checkedCount(items.count)
        var deepest = 0
        for item in items where item.depth > deepest { deepest = item.depth }
        guard deepest < maximumValueDepth else {
            throw RuntimeFailure("value nested deeper than \(maximumValueDepth) levels")
        }
        self.items = items
        self.depth = deepest + 1
    }
}

/// A hashable form of a dict key with Python's key equality: `1`, `1.0` and `True` are the same key,
/// and strings compare by code points.
enum DictKey: Hashable, Sendable {
    /// jinja2's `Undefined` hashes by type: every undefined value is the same key.
    case undefined
    case none
    case int(Int)
    case float(UInt64)
    case string(ExactString)
    case tuple([DictKey])
    /// Objects Python hashes by identity (generators, namespaces, macros).
    case object(ObjectIdentifier)

    init(_ value: JinjaValue) throws(RuntimeFailure) {
        switch value {
        case .undefined: self = .undefined
        case .none: self = .none
        case .bool(let b): self = .int(b ? 1 : 0)
        case .int(let i): self = .int(i)
        case .float(let d):
            if d.rounded() == d, abs(d) < 9.2e18 { self = .int(Int(d)) } else { self = .float(d.bitPattern) }
        case .string(let s): self = .string(ExactString(s))
        case .tuple(let t):
            var keys: [DictKey] = []
            for item in t.items { keys.append(try DictKey(item)) }
            self = .tuple(keys)
        case .iterator(let i): self = .object(ObjectIdentifier(i))
        case .namespace(let n): self = .object(ObjectIdentifier(n))
        case .function(let f): self = .object(ObjectIdentifier(f))
        case .loop(let l): self = .object(ObjectIdentifier(l))
        default:
            throw RuntimeFailure("TypeError: unhashable type: '\(value.pythonTypeName)'")
        }
    }
}

/// A string that compares and hashes by its exact code points (Swift's `String` equality would treat
/// canonically equivalent strings as equal; Python's does not).
struct ExactString: Hashable, Sendable {
    let value: String
    init(_ value: String) { self.value = value }
    static func == (a: ExactString, b: ExactString) -> Bool { exactlyEqual(a.value, b.value) }
    func hash(into hasher: inout Hasher) {
        for byte in value.utf8 { hasher.combine(byte) }
    }
}

/// Whether two strings hold the same code points (byte-equal UTF-8).
func exactlyEqual(_ a: String, _ b: String) -> Bool {
    guard a.utf8.count == b.utf8.count else { return false }
    let fast = a.utf8.withContiguousStorageIfAvailable { x in
        b.utf8.withContiguousStorageIfAvailable { y in x.elementsEqual(y) }
    }
    if let result = fast ?? nil { return result }
    return a.utf8.elementsEqual(b.utf8)
}

/// An insertion-ordered dict. Small dicts (most chat messages) are searched linearly; larger ones get
/// a hash index.
struct JinjaDict: Sendable {
    private(set) var entries: [(key: JinjaValue, value: JinjaValue)] = []
    private var index: [DictKey: Int]? = nil
    private var keys: [DictKey] = []
    private(set) var depth = 1

    init() {}

    init(_ pairs: [(JinjaValue, JinjaValue)]) throws(RuntimeFailure) {
        for (key, value) in pairs { try set(key, value) }
    }

    var count: Int { entries.count }

    mutating func set(_ key: JinjaValue, _ value: JinjaValue) throws(RuntimeFailure) {
        let hashKey = try DictKey(key)
        guard value.depth < maximumValueDepth else {
            throw RuntimeFailure("value nested deeper than \(maximumValueDepth) levels")
        }
        depth = max(depth, value.depth + 1)
        if let position = position(of: hashKey) {
            entries[position].value = value
            return
        }
        entries.append((key, value))
        keys.append(hashKey)
        if index != nil {
            index?[hashKey] = entries.count - 1
        } else if entries.count > 8 {
            var built: [DictKey: Int] = [:]
            for (i, k) in keys.enumerated() { built[k] = i }
            index = built
        }
    }

    private func position(of key: DictKey) -> Int? {
        if let index { return index[key] }
        return keys.firstIndex(of: key)
    }

    func get(_ key: JinjaValue) throws(RuntimeFailure) -> JinjaValue? {
        guard let position = position(of: try DictKey(key)) else { return nil }
        return entries[position].value
    }

    func get(_ key: String) -> JinjaValue? {
        if index == nil {
            for entry in entries {
                if case .string(let k) = entry.key, exactlyEqual(k, key) { return entry.value }
            }
            return nil
        }
        guard let position = position(of: .string(ExactString(key))) else { return nil }
        return entries[position].value
    }

    func contains(_ key: JinjaValue) throws(RuntimeFailure) -> Bool {
        position(of: try DictKey(key)) != nil
    }
}

/// `namespace(...)`: the one mutable object templates can write to (`{% set ns.x = ... %}`).
final class JinjaNamespace: @unchecked Sendable {
    var attributes = JinjaDict()
    init() {}
}

/// A one-shot iterator: iterating consumes it, as with the Python generators jinja2 filters return.
/// Items are produced on demand, so errors surface where the items are consumed, as in Python.
final class JinjaIterator: @unchecked Sendable {
    typealias Pull = () throws(RuntimeFailure) -> JinjaValue?
    private var pull: Pull?
    /// Python's type name (`generator`, `list_reverseiterator`) for error messages.
    let typeName: String
    let origin: String

    init(typeName: String = "generator", origin: String, pull: @escaping Pull) {
        self.typeName = typeName
        self.origin = origin
        self.pull = pull
    }

    convenience init(_ items: [JinjaValue], typeName: String = "generator", origin: String) {
        var index = 0
        self.init(typeName: typeName, origin: origin) { () throws(RuntimeFailure) -> JinjaValue? in
            guard index < items.count else { return nil }
            index += 1
            return items[index - 1]
        }
    }

    /// The next item, or nil once exhausted.
    func next() throws(RuntimeFailure) -> JinjaValue? {
        guard let pull else { return nil }
        if let item = try pull() { return item }
        self.pull = nil
        return nil
    }

    /// The remaining items; afterwards the iterator is exhausted.
    func drain() throws(RuntimeFailure) -> [JinjaValue] {
        var items: [JinjaValue] = []
        while let item = try next() {
            items.append(item)
            try checkedCount(items.count)
        }
        return items
    }
}

/// `range(start, stop, step)`: a lazy sequence of integers.
struct JinjaRange: Sendable {
    let start: Int
    let stop: Int
    let step: Int

    var count: Int {
        let span = step > 0 ? Double(stop) - Double(start) : Double(start) - Double(stop)
        return span <= 0 ? 0 : Int(((span + Double(abs(step)) - 1) / Double(abs(step))).rounded(.down))
    }

    func element(_ i: Int) -> Int { start &+ i &* step }

    var repr: String { step == 1 ? "range(\(start), \(stop))" : "range(\(start), \(stop), \(step))" }
}

/// Positional and keyword arguments of a call.
struct JinjaArguments: Sendable {
    var positional: [JinjaValue] = []
    var keywords: [(name: String, value: JinjaValue)] = []

    init(_ positional: [JinjaValue] = [], keywords: [(name: String, value: JinjaValue)] = []) {
        self.positional = positional
        self.keywords = keywords
    }

    /// Binds arguments to parameter names like a Python signature: positional first, then by keyword;
    /// missing optional ones are nil. `implicit` counts the arguments jinja2 passes itself (the filtered
    /// value, the environment) and `required` the leading parameters without defaults, so that errors
    /// read exactly like Python's (`do_batch() takes from 2 to 3 positional arguments but 4 were given`).
    func bind(_ parameters: [String], required: Int = 0, implicit: Int = 0, function: String) throws(RuntimeFailure) -> [JinjaValue?] {
        if positional.count > parameters.count {
            let total = implicit + parameters.count
            let given = implicit + positional.count
            let takes = required == parameters.count
                ? "\(total) positional argument\(total == 1 ? "" : "s")"
                : "from \(implicit + required) to \(total) positional arguments"
            throw RuntimeFailure("TypeError: \(function)() takes \(takes) but \(given) \(given == 1 ? "was" : "were") given")
        }
        var bound: [JinjaValue?] = positional.map { $0 }
        bound += Array(repeating: nil, count: parameters.count - positional.count)
        for (name, value) in keywords {
            guard let slot = parameters.firstIndex(of: name) else {
                throw RuntimeFailure("TypeError: \(function)() got an unexpected keyword argument \(pythonRepr(name))")
            }
            guard bound[slot] == nil else {
                throw RuntimeFailure("TypeError: \(function)() got multiple values for argument \(pythonRepr(name))")
            }
            bound[slot] = value
        }
        let missing = (0..<required).filter { bound[$0] == nil }.map { pythonRepr(parameters[$0]) }
        if !missing.isEmpty {
            let names = missing.count == 1 ? missing[0]
                : missing.dropLast().joined(separator: ", ") + (missing.count > 2 ? "," : "") + " and " + (missing.last ?? "")
            throw RuntimeFailure("TypeError: \(function)() missing \(missing.count) required positional argument\(missing.count == 1 ? "" : "s"): \(names)")
        }
        return bound
    }

    /// For Python builtins that take exactly one argument (`len`, `abs`, `callable`).
    func requireSingle(_ function: String, implicit: Int = 1) throws(RuntimeFailure) {
        guard keywords.isEmpty else { throw RuntimeFailure("TypeError: \(function)() takes no keyword arguments") }
        guard positional.isEmpty else {
            throw RuntimeFailure("TypeError: \(function)() takes exactly one argument (\(positional.count + implicit) given)")
        }
    }
}

/// Python prints object addresses in some reprs (`<generator object ... at 0x7f...>`). They are
/// meaningless across processes, so Kite prints this fixed stand-in of the usual length.
let placeholderAddress = "0x7f0000000000"

/// Something a template can call: a macro, a global such as `range`, or a bound method such as
/// `text.split`.
final class JinjaFunction: @unchecked Sendable {
    typealias Body = @Sendable (JinjaArguments, Interpreter) throws(RuntimeFailure) -> JinjaValue
    let name: String
    /// Python's type name: `Macro`, `function`, `builtin_function_or_method`.
    let typeName: String
    let reprText: String
    let body: Body

    init(name: String, typeName: String = "function", repr: String? = nil, body: @escaping Body) {
        self.name = name
        self.typeName = typeName
        self.reprText = repr ?? "<function \(name) at \(placeholderAddress)>"
        self.body = body
    }
}

/// The `loop` variable of a `for` block.
final class JinjaLoop: @unchecked Sendable {
    let items: [JinjaValue]
    var index0 = 0
    let depth0: Int
    var lastChanged: [JinjaValue]? = nil
    /// Renders the loop body again over another iterable, for `recursive` loops.
    let recurse: ((JinjaValue, Interpreter) throws(RuntimeFailure) -> JinjaValue)?

    init(items: [JinjaValue], depth0: Int, recurse: ((JinjaValue, Interpreter) throws(RuntimeFailure) -> JinjaValue)?) {
        self.items = items
        self.depth0 = depth0
        self.recurse = recurse
    }

    var length: Int { items.count }
}

// MARK: - JSON in and out

extension JinjaValue {
    /// The template value for a JSON input (messages, tools, extra context).
    init(json: JSONValue) throws(RuntimeFailure) {
        self = try JinjaValue.convert(json, depth: 0)
    }

    private static func convert(_ json: JSONValue, depth: Int) throws(RuntimeFailure) -> JinjaValue {
        guard depth < maximumValueDepth else {
            throw RuntimeFailure("input nested deeper than \(maximumValueDepth) levels")
        }
        switch json {
        case .null: return .none
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .double(let d): return .float(d)
        case .string(let s): return .string(s)
        case .array(let items):
            var converted: [JinjaValue] = []
            converted.reserveCapacity(items.count)
            for item in items { converted.append(try convert(item, depth: depth + 1)) }
            return .list(try JinjaList(converted))
        case .object(let object):
            var dict = JinjaDict()
            for (key, value) in object { try dict.set(.string(key), try convert(value, depth: depth + 1)) }
            return .dict(dict)
        }
    }

    /// The JSON form `json.dumps` would write: tuples become arrays and non-string keys are
    /// stringified as Python does; objects JSON cannot hold are a `TypeError`.
    func toJSON() throws(RuntimeFailure) -> JSONValue {
        switch self {
        case .none: return .null
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .float(let d): return .double(d)
        case .string(let s): return .string(s)
        case .list(let list), .tuple(let list):
            var out: [JSONValue] = []
            out.reserveCapacity(list.items.count)
            for item in list.items { out.append(try item.toJSON()) }
            return .array(out)
        case .dict(let dict):
            var object = JSONObject()
            for (key, value) in dict.entries {
                let name: String
                switch key {
                case .string(let s): name = s
                case .int(let i): name = String(i)
                case .float(let d): name = pythonFloatRepr(d)
                case .bool(let b): name = b ? "true" : "false"
                case .none: name = "null"
                default:
                    throw RuntimeFailure("TypeError: keys must be str, int, float, bool or None, not \(key.pythonTypeName)")
                }
                object[name] = try value.toJSON()
            }
            return .object(object)
        default:
            throw RuntimeFailure("TypeError: Object of type \(pythonTypeName) is not JSON serializable")
        }
    }
}
