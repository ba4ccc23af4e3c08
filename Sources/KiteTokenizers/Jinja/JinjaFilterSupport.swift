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

    /// Python's `sorted(items, key=key, reverse=reverse)`: stable, and for fewer than 64 items it makes
    /// the same comparisons in the same order as CPython's list sort (run detection, then binary
    /// insertion), so that sorting values Python cannot compare fails with the same message.
    static func stableSort(_ items: [JinjaValue], reverse: Bool, key: Getter) throws(RuntimeFailure) -> [JinjaValue] {
        var keyed: [(key: JinjaValue, value: JinjaValue)] = []
        keyed.reserveCapacity(items.count)
        for item in items { keyed.append((try key(item), item)) }
        // CPython sorts a reversed list and reverses the result, which keeps equal items in order.
        if reverse { keyed.reverse() }
        func less(_ a: JinjaValue, _ b: JinjaValue) throws(RuntimeFailure) -> Bool { try a.pythonCompare(b, .less) }
        if keyed.count < 64 {
            try binaryInsertionSort(&keyed, less: less)
        } else {
            try mergeSort(&keyed, less: less)
        }
        if reverse { keyed.reverse() }
        return keyed.map(\.value)
    }

    private static func binaryInsertionSort(_ a: inout [(key: JinjaValue, value: JinjaValue)], less: (JinjaValue, JinjaValue) throws(RuntimeFailure) -> Bool) throws(RuntimeFailure) {
        let n = a.count
        guard n > 1 else { return }
        // count_run: a strictly descending prefix is reversed, a non-descending one kept.
        var run = 2
        if try less(a[1].key, a[0].key) {
            while run < n, try less(a[run].key, a[run - 1].key) { run += 1 }
            a[0..<run].reverse()
        } else {
            while run < n, !(try less(a[run].key, a[run - 1].key)) { run += 1 }
        }
        for start in run..<n {
            let pivot = a[start]
            var low = 0
            var high = start
            while low < high {
                let middle = low + (high - low) / 2
                if try less(pivot.key, a[middle].key) { high = middle } else { low = middle + 1 }
            }
            var i = start
            while i > low {
                a[i] = a[i - 1]
                i -= 1
            }
            a[low] = pivot
        }
    }

    private static func mergeSort(_ keyed: inout [(key: JinjaValue, value: JinjaValue)], less: (JinjaValue, JinjaValue) throws(RuntimeFailure) -> Bool) throws(RuntimeFailure) {
        var buffer = keyed
        var width = 1
        while width < keyed.count {
            var start = 0
            while start < keyed.count {
                let middle = min(start + width, keyed.count)
                let end = min(start + 2 * width, keyed.count)
                var i = start, j = middle, k = start
                while i < middle && j < end {
                    // Take from the right run only when strictly less, which keeps equal keys in order.
                    if try less(keyed[j].key, keyed[i].key) {
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
    }

    static func extreme(_ interpreter: Interpreter, _ value: JinjaValue, _ arguments: JinjaArguments, largest: Bool) throws(RuntimeFailure) -> JinjaValue {
        let b = try arguments.bind(["case_sensitive", "attribute"], implicit: 2, function: largest ? "do_max" : "do_min")
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

    /// jinja2's error for a filter or test name that names nothing, with its hint for an unquoted name.
    static func unknownCallable(_ kind: String, _ name: JinjaValue) -> RuntimeFailure {
        // The name is looked up in a dict first: an unhashable one fails there.
        do {
            _ = try DictKey(name)
        } catch {
            return error
        }
        var message = "TemplateRuntimeError: No \(kind) named \((try? name.pythonRepr()) ?? "?")."
        if case .undefined(let u) = name {
            message += " (\(u.message); did you forget to quote the callable name?)"
        }
        return RuntimeFailure(message)
    }

    /// A generator as jinja2's generator filters make one: nothing runs, not even argument checks,
    /// until the first item is pulled.
    static func generator(_ origin: String, _ setup: @escaping () throws(RuntimeFailure) -> JinjaIterator.Pull) -> JinjaValue {
        var pull: JinjaIterator.Pull? = nil
        return .iterator(JinjaIterator(origin: origin) { () throws(RuntimeFailure) -> JinjaValue? in
            if let pull { return try pull() }
            let started = try setup()
            pull = started
            return try started()
        })
    }

    /// `select`/`reject` (by a test on the item) and `selectattr`/`rejectattr` (on an attribute);
    /// without a test name the truthiness decides.
    static func selectOrReject(_ interpreter: Interpreter, _ value: JinjaValue, _ arguments: JinjaArguments, keep: Bool, attribute: Bool) -> JinjaValue {
        generator("select_or_reject") { () throws(RuntimeFailure) -> JinjaIterator.Pull in
            guard value.isTruthy else { return { () throws(RuntimeFailure) -> JinjaValue? in nil } }
            var positional = arguments.positional
            var transform: Getter = { (item: JinjaValue) throws(RuntimeFailure) -> JinjaValue in item }
            if attribute {
                guard !positional.isEmpty else { throw RuntimeFailure("FilterArgumentError: Missing parameter for attribute name") }
                transform = try attributeGetter(interpreter, positional.removeFirst(), default: nil)
            }
            // The test is looked up per item, as jinja2 does, so an empty input never fails on it.
            let testName: JinjaValue? = positional.isEmpty ? nil : positional.removeFirst()
            let testArguments = JinjaArguments(positional, keywords: arguments.keywords)
            let upstream = try stream(value)
            return { () throws(RuntimeFailure) -> JinjaValue? in
                while let item = try upstream() {
                    try interpreter.spend()
                    let subject = try transform(item)
                    let passed: Bool
                    if let testName {
                        guard case .string(let name) = testName, JinjaTests.table[name] != nil else {
                            throw unknownCallable("test", testName)
                        }
                        passed = try interpreter.runTest(name, subject, testArguments)
                    } else {
                        passed = subject.isTruthy
                    }
                    if passed == keep { return item }
                }
                return nil
            }
        }
    }

    /// Pulls the items of an iterable one at a time (a generator lazily, others from a snapshot).
    static func stream(_ value: JinjaValue) throws(RuntimeFailure) -> JinjaIterator.Pull {
        if case .iterator(let iterator) = value {
            return { () throws(RuntimeFailure) -> JinjaValue? in try iterator.next() }
        }
        let items = try value.pythonIterate()
        var index = 0
        return { () throws(RuntimeFailure) -> JinjaValue? in
            guard index < items.count else { return nil }
            index += 1
            return items[index - 1]
        }
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
        let rest = JinjaArguments(Array(arguments.positional.dropFirst()), keywords: arguments.keywords)
        // The filter is looked up per item, as jinja2 does: an empty input never fails on a bad name.
        return { (item: JinjaValue) throws(RuntimeFailure) -> JinjaValue in
            guard case .string(let name) = first, let filter = table[name] else {
                throw unknownCallable("filter", first)
            }
            return try filter(interpreter, item, rest)
        }
    }
}

func powerOfTen(_ exponent: Int) -> Double {
    var result = 1.0
    for _ in 0..<min(abs(exponent), 400) { result *= 10 }
    return exponent < 0 ? 1 / result : result
}
