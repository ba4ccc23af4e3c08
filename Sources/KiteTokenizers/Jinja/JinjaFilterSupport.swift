/// The machinery jinja2's filters share: attribute getters (`attribute="a.b.0"`), Python's stable
/// `sorted`, `min`/`max` with keys, and the test-driven `select`/`reject` family.
extension JinjaFilters {
    typealias Getter = (JinjaValue) throws(RuntimeFailure) -> JinjaValue

    /// jinja2's `make_attrgetter`: dotted path parts, digits looked up as integers, through the
    /// sandbox's `getitem`; `default` replaces an undefined result.
    static func attributeGetter(_ interpreter: Interpreter, _ attribute: JinjaValue, default defaultValue: JinjaValue?, caseSensitive: Bool = true) throws(RuntimeFailure) -> Getter {
        let parts: [JinjaValue]
        switch attribute {
        case .none: parts = []
        case .string(let path):
            parts = try PythonString.split(path, separator: ".", maxSplit: -1).map { part in
                if !part.isEmpty, part.unicodeScalars.allSatisfy({ $0.properties.numericType == .decimal }), let i = Int(part) {
                    return .int(i)
                }
                return .string(part)
            }
        default: parts = [attribute]
        }
        return { (item: JinjaValue) throws(RuntimeFailure) -> JinjaValue in
            var value = item
            for part in parts {
                value = try interpreter.getItem(value, part)
                if let defaultValue, !PythonMethods.isNone(defaultValue), value.isUndefined { value = defaultValue }
            }
            return caseSensitive ? value : ignoreCase(value)
        }
    }

    /// jinja2's `make_multi_attrgetter` for `sort`: comma-separated paths give a list key.
    static func multiAttributeGetter(_ interpreter: Interpreter, _ attribute: JinjaValue?, caseSensitive: Bool) throws(RuntimeFailure) -> Getter {
        guard case .string(let text)? = attribute, text.contains(",") else {
            let single = try attributeGetter(interpreter, attribute ?? JinjaValue.none, default: nil, caseSensitive: caseSensitive)
            guard let attribute, !PythonMethods.isNone(attribute) else { return single }
            return { (item: JinjaValue) throws(RuntimeFailure) -> JinjaValue in .list(try JinjaList([try single(item)])) }
        }
        var getters: [Getter] = []
        for part in try PythonString.split(text, separator: ",", maxSplit: -1) {
            getters.append(try attributeGetter(interpreter, .string(part), default: nil, caseSensitive: caseSensitive))
        }
        return { (item: JinjaValue) throws(RuntimeFailure) -> JinjaValue in
            var keys: [JinjaValue] = []
            for getter in getters { keys.append(try getter(item)) }
            return .list(try JinjaList(keys))
        }
    }

    /// Python's `sorted(items, key=key, reverse=reverse)`: a stable merge sort with `<`.
    static func stableSort(_ items: [JinjaValue], reverse: Bool, key: Getter) throws(RuntimeFailure) -> [JinjaValue] {
        var keyed: [(key: JinjaValue, value: JinjaValue)] = []
        keyed.reserveCapacity(items.count)
        for item in items { keyed.append((try key(item), item)) }
        func before(_ a: JinjaValue, _ b: JinjaValue) throws(RuntimeFailure) -> Bool {
            reverse ? try b.pythonCompare(a, .less) : try a.pythonCompare(b, .less)
        }
        var buffer = keyed
        var width = 1
        while width < keyed.count {
            var start = 0
            while start < keyed.count {
                let middle = min(start + width, keyed.count)
                let end = min(start + 2 * width, keyed.count)
                var i = start, j = middle, k = start
                while i < middle && j < end {
                    // Take from the right run only when strictly before, which keeps equal keys in order.
                    if try before(keyed[j].key, keyed[i].key) {
                        buffer[k] = keyed[j]
                        j += 1
                    } else {
                        buffer[k] = keyed[i]
                        i += 1
                    }
                    k += 1
                }
                while i < middle { buffer[k] = keyed[i]; i += 1; k += 1 }
                while j < end { buffer[k] = keyed[j]; j += 1; k += 1 }
                start += 2 * width
            }
            swap(&keyed, &buffer)
            width *= 2
        }
        return keyed.map(\.value)
    }

    static func extreme(_ interpreter: Interpreter, _ value: JinjaValue, _ arguments: JinjaArguments, largest: Bool) throws(RuntimeFailure) -> JinjaValue {
        let b = try arguments.bind(["case_sensitive", "attribute"], function: largest ? "do_max" : "do_min")
        let items = try value.pythonIterate()
        try interpreter.spend(items.count)
        guard var best = items.first else {
            return .undefined(JinjaUndefined(.message("No aggregated item, sequence was empty.")))
        }
        let key = try attributeGetter(interpreter, b[1] ?? JinjaValue.none, default: nil, caseSensitive: b[0]?.isTruthy ?? false)
        var bestKey = try key(best)
        for item in items.dropFirst() {
            let itemKey = try key(item)
            if try itemKey.pythonCompare(bestKey, largest ? .greater : .less) {
                best = item
                bestKey = itemKey
            }
        }
        return best
    }

    /// `select`/`reject` (by a test on the item) and `selectattr`/`rejectattr` (on an attribute);
    /// without a test name the truthiness decides.
    static func selectOrReject(_ interpreter: Interpreter, _ value: JinjaValue, _ arguments: JinjaArguments, keep: Bool, attribute: Bool) throws(RuntimeFailure) -> JinjaValue {
        guard value.isTruthy else { return .iterator(JinjaIterator([], origin: "select_or_reject")) }
        var positional = arguments.positional
        var transform: Getter = { (item: JinjaValue) throws(RuntimeFailure) -> JinjaValue in item }
        if attribute {
            guard !positional.isEmpty else { throw RuntimeFailure("FilterArgumentError: Missing parameter for attribute name") }
            transform = try attributeGetter(interpreter, positional.removeFirst(), default: nil)
        }
        var testName: String? = nil
        if !positional.isEmpty {
            guard case .string(let name) = positional.removeFirst() else {
                throw RuntimeFailure("TemplateRuntimeError: the test name must be a string")
            }
            guard JinjaTests.table[name] != nil else {
                throw RuntimeFailure("TemplateRuntimeError: No test named \(pythonRepr(name)).")
            }
            testName = name
        }
        let testArguments = JinjaArguments(positional, keywords: arguments.keywords)
        var out: [JinjaValue] = []
        for item in try value.pythonIterate() {
            try interpreter.spend()
            let subject = try transform(item)
            let passed = try testName.map { (name: String) throws(RuntimeFailure) -> Bool in try interpreter.runTest(name, subject, testArguments) } ?? subject.isTruthy
            if passed == keep { out.append(item) }
        }
        return .iterator(JinjaIterator(out, origin: "select_or_reject"))
    }

    /// `map(attribute=..., default=...)` or `map('filter', *args, **kwargs)`.
    static func mapFunction(_ interpreter: Interpreter, _ arguments: JinjaArguments) throws(RuntimeFailure) -> Getter {
        if arguments.positional.isEmpty, let attribute = arguments.keywords.first(where: { $0.name == "attribute" })?.value {
            var defaultValue: JinjaValue? = nil
            for (name, value) in arguments.keywords where name != "attribute" {
                guard name == "default" else {
                    throw RuntimeFailure("FilterArgumentError: Unexpected keyword argument \(pythonRepr(name))")
                }
                defaultValue = value
            }
            return try attributeGetter(interpreter, attribute, default: defaultValue)
        }
        guard let first = arguments.positional.first else {
            throw RuntimeFailure("FilterArgumentError: map requires a filter argument")
        }
        guard case .string(let name) = first, let filter = table[name] else {
            throw RuntimeFailure("TemplateRuntimeError: No filter named \((try? first.pythonRepr()) ?? "?").")
        }
        let rest = JinjaArguments(Array(arguments.positional.dropFirst()), keywords: arguments.keywords)
        return { (item: JinjaValue) throws(RuntimeFailure) -> JinjaValue in try filter(interpreter, item, rest) }
    }
}

func powerOfTen(_ exponent: Int) -> Double {
    var result = 1.0
    for _ in 0..<min(abs(exponent), 400) { result *= 10 }
    return exponent < 0 ? 1 / result : result
}
