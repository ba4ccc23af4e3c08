/// Expression evaluation: names, literals, operators, attribute and item access with jinja2's sandbox
/// rules, calls, filters and tests.
extension Interpreter {
    /// Evaluates `expression`. `filterInput` feeds the head of a `{% filter %}`/`{% set x | f %}` chain;
    /// `extraKeyword` adds `caller` to the call of a `{% call %}` block.
    func evaluate(_ expression: Expression, in scope: Scope, filterInput: JinjaValue? = nil, extraKeyword: (String, JinjaValue)? = nil) throws(RuntimeFailure) -> JinjaValue {
        do {
            return try evaluateKind(expression, in: scope, filterInput: filterInput, extraKeyword: extraKeyword)
        } catch {
            throw error.located(expression.offset)
        }
    }

    private func evaluateKind(_ expression: Expression, in scope: Scope, filterInput: JinjaValue?, extraKeyword: (String, JinjaValue)?) throws(RuntimeFailure) -> JinjaValue {
        switch expression.kind {
        case .call, .filter, .binary, .concat:
            // Building large values is work too: charge it to the render's budget.
            let value = try evaluateComputation(expression, in: scope, filterInput: filterInput, extraKeyword: extraKeyword)
            switch value {
            case .string(let s) where s.utf8.count >= 4096: try spend(s.utf8.count >> 12)
            case .list(let l) where l.items.count >= 64, .tuple(let l) where l.items.count >= 64: try spend(l.items.count >> 6)
            default: break
            }
            return value
        default:
            return try evaluateComputation(expression, in: scope, filterInput: filterInput, extraKeyword: extraKeyword)
        }
    }

    /// Dispatches on the expression kind. Every case with work of its own lives in a separate function
    /// so that this recursive function keeps a small stack frame (deep templates recurse through it).
    private func evaluateComputation(_ expression: Expression, in scope: Scope, filterInput: JinjaValue?, extraKeyword: (String, JinjaValue)?) throws(RuntimeFailure) -> JinjaValue {
        switch expression.kind {
        case .literal(let value): return value
        case .name(let name): return scope.lookup(name) ?? globals[name] ?? .undefinedName(name)
        case .list, .tuple: return try evaluateSequence(expression, in: scope)
        case .dict: return try evaluateDict(expression, in: scope)
        case .attribute, .item, .slice: return try evaluateAccess(expression, in: scope)
        case .call: return try evaluateCall(expression, in: scope, extraKeyword: extraKeyword)
        case .filter: return try evaluateFilter(expression, in: scope, filterInput: filterInput)
        case .test: return try evaluateTest(expression, in: scope)
        case .unary, .not, .binary, .concat: return try evaluateOperator(expression, in: scope)
        case .and, .or, .compare, .conditional: return try evaluateLogic(expression, in: scope)
        }
    }

    @inline(never)
    private func evaluateSequence(_ expression: Expression, in scope: Scope) throws(RuntimeFailure) -> JinjaValue {
        let items: [Expression]
        let tuple: Bool
        switch expression.kind {
        case .list(let i): (items, tuple) = (i, false)
        case .tuple(let i): (items, tuple) = (i, true)
        default: return .none
        }
        var values: [JinjaValue] = []
        values.reserveCapacity(items.count)
        for item in items { values.append(try evaluate(item, in: scope)) }
        let list = try JinjaList(values)
        return tuple ? .tuple(list) : .list(list)
    }

    @inline(never)
    private func evaluateDict(_ expression: Expression, in scope: Scope) throws(RuntimeFailure) -> JinjaValue {
        guard case .dict(let pairs) = expression.kind else { return .none }
        var dict = JinjaDict()
        for pair in pairs {
            let key = try evaluate(pair.key, in: scope)
            try dict.set(key, try evaluate(pair.value, in: scope))
        }
        return .dict(dict)
    }

    @inline(never)
    private func evaluateAccess(_ expression: Expression, in scope: Scope) throws(RuntimeFailure) -> JinjaValue {
        switch expression.kind {
        case .attribute(let base, let name):
            return try getAttribute(try evaluate(base, in: scope), name)
        case .item(let base, let key):
            let container = try evaluate(base, in: scope)
            return try getItem(container, try evaluate(key, in: scope))
        case .slice(let base, let start, let stop, let step):
            let container = try evaluate(base, in: scope)
            var values: [JinjaValue?] = []
            for bound in [start, stop, step] {
                if let bound { values.append(try evaluate(bound, in: scope)) } else { values.append(nil) }
            }
            return try slice(container, start: values[0], stop: values[1], step: values[2])
        default:
            return .none
        }
    }

    @inline(never)
    private func evaluateCall(_ expression: Expression, in scope: Scope, extraKeyword: (String, JinjaValue)?) throws(RuntimeFailure) -> JinjaValue {
        guard case .call(let callee, let argumentExpressions) = expression.kind else { return .none }
        // `text.split(...)` and friends: call the method directly instead of binding it first.
        if extraKeyword == nil, case .attribute(let base, let name) = callee.kind {
            let receiver = try evaluate(base, in: scope)
            if !name.hasPrefix("_"), let method = PythonMethods.method(receiver, name) {
                let arguments = try evaluateArguments(argumentExpressions, in: scope)
                do {
                    try PythonMethods.checkArity(receiver, name, arguments)
                    return try method(receiver, arguments)
                } catch {
                    throw error.located(callee.offset)
                }
            }
            let function = try getAttribute(receiver, name)
            return try call(function, try evaluateArguments(argumentExpressions, in: scope))
        }
        let function = try evaluate(callee, in: scope)
        var arguments = try evaluateArguments(argumentExpressions, in: scope)
        if let extraKeyword { arguments.keywords.append((extraKeyword.0, extraKeyword.1)) }
        return try call(function, arguments)
    }

    @inline(never)
    private func evaluateFilter(_ expression: Expression, in scope: Scope, filterInput: JinjaValue?) throws(RuntimeFailure) -> JinjaValue {
        guard case .filter(let base, let name, let argumentExpressions) = expression.kind else { return .none }
        let input: JinjaValue
        if let base {
            input = try evaluate(base, in: scope, filterInput: filterInput)
        } else {
            input = filterInput ?? .undefinedName("filter input")
        }
        let arguments = try evaluateArguments(argumentExpressions, in: scope, callee: "jinja2.filters.do_\(name)()")
        guard let filter = JinjaFilters.table[name] else {
            throw RuntimeFailure("TemplateRuntimeError: No filter named \(pythonRepr(name)) found.")
        }
        return try filter(self, input, arguments)
    }

    @inline(never)
    private func evaluateTest(_ expression: Expression, in scope: Scope) throws(RuntimeFailure) -> JinjaValue {
        guard case .test(let base, let name, let argumentExpressions) = expression.kind else { return .none }
        let value = try evaluate(base, in: scope)
        let arguments = try evaluateArguments(argumentExpressions, in: scope)
        return .bool(try runTest(name, value, arguments))
    }

    @inline(never)
    private func evaluateOperator(_ expression: Expression, in scope: Scope) throws(RuntimeFailure) -> JinjaValue {
        switch expression.kind {
        case .unary(let negate, let operand):
            return try JinjaValue.unary(negate: negate, try evaluate(operand, in: scope))
        case .not(let operand):
            return .bool(!(try evaluate(operand, in: scope).isTruthy))
        case .binary(let op, let left, let right):
            let a = try evaluate(left, in: scope)
            let b = try evaluate(right, in: scope)
            return try JinjaValue.binary(op, a, b)
        case .concat(let parts):
            var text = ""
            for part in parts {
                text += try evaluate(part, in: scope).pythonStr()
                try checkedSize(text.utf8.count)
            }
            return .string(text)
        default:
            return .none
        }
    }

    @inline(never)
    private func evaluateLogic(_ expression: Expression, in scope: Scope) throws(RuntimeFailure) -> JinjaValue {
        switch expression.kind {
        case .and(let left, let right):
            let a = try evaluate(left, in: scope)
            return a.isTruthy ? try evaluate(right, in: scope) : a
        case .or(let left, let right):
            let a = try evaluate(left, in: scope)
            return a.isTruthy ? a : try evaluate(right, in: scope)
        case .compare(let first, let operands):
            var left = try evaluate(first, in: scope)
            for (op, operandExpression) in operands {
                let right = try evaluate(operandExpression, in: scope)
                guard try compare(left, op, right) else { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .conditional(let test, let then, let otherwise):
            if try evaluate(test, in: scope).isTruthy { return try evaluate(then, in: scope) }
            if let otherwise { return try evaluate(otherwise, in: scope) }
            let line = lines.position(of: expression.offset).line
            return .undefined(JinjaUndefined(.message("the inline if-expression on line \(line) evaluated to false and no else section was defined.")))
        default:
            return .none
        }
    }

    func compare(_ a: JinjaValue, _ op: CompareOperator, _ b: JinjaValue) throws(RuntimeFailure) -> Bool {
        switch op {
        case .equal: return a.pythonEquals(b)
        case .notEqual: return !a.pythonEquals(b)
        case .less: return try a.pythonCompare(b, .less)
        case .lessOrEqual: return try a.pythonCompare(b, .lessOrEqual)
        case .greater: return try a.pythonCompare(b, .greater)
        case .greaterOrEqual: return try a.pythonCompare(b, .greaterOrEqual)
        case .contains: return try b.pythonContains(a)
        case .notContains: return !(try b.pythonContains(a))
        }
    }

    /// Evaluates call arguments; `callee` names the Python function in errors about `*`/`**` arguments
    /// (jinja2 routes template calls through `SandboxedEnvironment.call`).
    func evaluateArguments(_ expressions: [CallArgument], in scope: Scope, callee: String = "jinja2.sandbox.SandboxedEnvironment.call()") throws(RuntimeFailure) -> JinjaArguments {
        var arguments = JinjaArguments()
        for argument in expressions {
            switch argument {
            case .positional(let e):
                arguments.positional.append(try evaluate(e, in: scope))
            case .keyword(let name, let e):
                arguments.keywords.append((name, try evaluate(e, in: scope)))
            case .unpackPositional(let e):
                let sequence = try evaluate(e, in: scope)
                do {
                    arguments.positional.append(contentsOf: try sequence.pythonIterate())
                } catch {
                    throw RuntimeFailure("TypeError: \(callee) argument after * must be an iterable, not \(sequence.pythonTypeName)", at: e.offset)
                }
            case .unpackKeywords(let e):
                let mapping = try evaluate(e, in: scope)
                guard case .dict(let dict) = mapping else {
                    throw RuntimeFailure("TypeError: \(callee) argument after ** must be a mapping, not \(mapping.pythonTypeName)", at: e.offset)
                }
                for (key, value) in dict.entries {
                    guard case .string(let name) = key else { throw RuntimeFailure("TypeError: keywords must be strings", at: e.offset) }
                    arguments.keywords.append((name, value))
                }
            }
        }
        return arguments
    }

    func call(_ callee: JinjaValue, _ arguments: JinjaArguments) throws(RuntimeFailure) -> JinjaValue {
        switch callee {
        case .function(let function):
            return try function.body(arguments, self)
        case .loop(let loop):
            guard let recurse = loop.recurse else {
                throw RuntimeFailure("TypeError: The loop must have the 'recursive' marker to be called recursively.")
            }
            guard arguments.positional.count == 1, arguments.keywords.isEmpty else {
                throw RuntimeFailure("TypeError: loop() takes exactly one argument")
            }
            return try recurse(arguments.positional[0], self)
        case .undefined(let u):
            throw u.failure
        default:
            throw RuntimeFailure("TypeError: '\(callee.pythonTypeName)' object is not callable")
        }
    }

    func runTest(_ name: String, _ value: JinjaValue, _ arguments: JinjaArguments) throws(RuntimeFailure) -> Bool {
        guard let test = JinjaTests.table[name] else {
            throw RuntimeFailure("TemplateRuntimeError: No test named \(pythonRepr(name)) found.")
        }
        return try test(self, value, arguments)
    }

    // MARK: - Attribute and item access (jinja2's SandboxedEnvironment.getattr / getitem)

    func getAttribute(_ value: JinjaValue, _ name: String) throws(RuntimeFailure) -> JinjaValue {
        switch value {
        case .undefined(let u):
            // Special attributes exist even on undefined values; the sandbox refuses them quietly.
            if isDunder(name) { return unsafeAttribute(value, name) }
            throw u.failure
        case .namespace(let namespace):
            return namespace.attributes.get(name) ?? missingAttribute(value, name)
        case .loop(let loop):
            return try loopAttribute(loop, name) ?? missingAttribute(value, name)
        case .dict(let dict):
            // Message fields are read constantly; only the dict method names need the method path.
            switch name {
            case "items", "keys", "values", "get", "copy", "clear", "pop", "popitem", "setdefault", "update":
                return PythonMethods.bind(value, name) ?? missingAttribute(value, name)
            default:
                if isDunder(name) { break }
                return dict.get(name) ?? missingAttribute(value, name)
            }
            return unsafeAttribute(value, name)
        default:
            if isDunder(name) { return unsafeAttribute(value, name) }
            if let method = PythonMethods.bind(value, name) { return method }
            if case .dict(let dict) = value, let item = dict.get(name) { return item }
            return missingAttribute(value, name)
        }
    }

    /// Special attributes every Python object (or function) has; the sandbox refuses them. Other
    /// `__x__` names do not exist and behave like any missing attribute.
    private static let specialAttributes: Set<String> = [
        "__class__", "__doc__", "__init__", "__new__", "__repr__", "__str__", "__hash__", "__eq__", "__ne__",
        "__lt__", "__le__", "__gt__", "__ge__", "__getattribute__", "__setattr__", "__delattr__", "__dir__",
        "__format__", "__reduce__", "__reduce_ex__", "__sizeof__", "__subclasshook__", "__init_subclass__",
        "__module__", "__dict__", "__globals__", "__builtins__", "__len__", "__iter__", "__getitem__",
        "__contains__", "__add__", "__mul__", "__mod__", "__call__", "__bool__", "__name__", "__qualname__",
        "__code__", "__closure__", "__defaults__", "__self__", "__func__", "__subclasses__", "__mro__",
        "__bases__", "__base__", "__getstate__", "__slots__", "__weakref__",
    ]

    private func isDunder(_ name: String) -> Bool { Self.specialAttributes.contains(name) }

    private func unsafeAttribute(_ owner: JinjaValue, _ name: String) -> JinjaValue {
        .undefined(JinjaUndefined(.message("access to attribute \(pythonRepr(name)) of \(pythonRepr(owner.pythonTypeName)) object is unsafe."), isSecurityViolation: true))
    }

    private func missingAttribute(_ owner: JinjaValue, _ name: String) -> JinjaValue {
        .undefined(JinjaUndefined(.attribute(owner: owner.ownerDescription, name: name)))
    }

    func getItem(_ value: JinjaValue, _ key: JinjaValue) throws(RuntimeFailure) -> JinjaValue {
        switch (value, key) {
        case (.undefined(let u), _):
            throw u.failure
        case (.dict(let dict), _):
            if let item = try? dict.get(key) { return item }
        case (.list(let list), _), (.tuple(let list), _):
            if let i = key.numeric.flatMap({ n -> Int? in if case .int(let i) = n { return i } else { return nil } }) {
                let index = i < 0 ? i + list.items.count : i
                if index >= 0 && index < list.items.count { return list.items[index] }
            }
        case (.range(let r), _):
            if case .int(let i)? = key.numeric {
                let index = i < 0 ? i + r.count : i
                if index >= 0 && index < r.count { return .int(r.element(index)) }
            }
        case (.string(let text), _):
            if case .int(let i)? = key.numeric {
                let scalars = text.unicodeScalars
                let count = scalars.count
                let index = i < 0 ? i + count : i
                if index >= 0 && index < count {
                    return .string(String(scalars[scalars.index(scalars.startIndex, offsetBy: index)]))
                }
            }
        default:
            break
        }
        if case .string(let name) = key {
            switch value {
            case .dict, .list, .tuple, .string, .namespace, .loop, .none, .bool, .int, .float:
                return try getAttribute(value, name)
            default: break
            }
        }
        return .undefined(JinjaUndefined(.element(owner: value.ownerDescription, key: (try? key.pythonRepr()) ?? "?")))
    }

    /// `value[start:stop:step]`. jinja2 compiles slices to plain Python subscripts (not through the
    /// sandbox's `getitem`), so errors propagate instead of becoming undefined.
    func slice(_ value: JinjaValue, start: JinjaValue?, stop: JinjaValue?, step: JinjaValue?) throws(RuntimeFailure) -> JinjaValue {
        let items: [JinjaValue]
        switch value {
        case .undefined(let u): throw u.failure
        case .list(let l), .tuple(let l): items = l.items
        case .range: items = try value.pythonIterate()
        case .string: items = []
        case .dict: throw RuntimeFailure("TypeError: unhashable type: 'slice'")
        case .function(let f) where f.typeName == "type":
            throw RuntimeFailure("TypeError: type '\(f.name == "namespace" ? "TemplateNamespace" : f.name)' is not subscriptable")
        default: throw RuntimeFailure("TypeError: '\(value.pythonTypeName)' object is not subscriptable")
        }
        // Python checks the step first, then the bounds.
        var bounds: [Int?] = [nil, nil, nil]
        for (i, bound) in [step, start, stop].enumerated() {
            switch bound {
            case nil, .none?: break
            case .int(let n)?: bounds[(i + 2) % 3] = n
            case .bool(let b)?: bounds[(i + 2) % 3] = b ? 1 : 0
            default: throw RuntimeFailure("TypeError: slice indices must be integers or None or have an __index__ method")
            }
            if i == 0 && bounds[2] == 0 { throw RuntimeFailure("ValueError: slice step cannot be zero") }
        }
        let stepValue = bounds[2] ?? 1
        switch value {
        case .string(let text):
            return .string(PythonString.string(PythonString.slice(Array(text.unicodeScalars), start: bounds[0], stop: bounds[1], step: stepValue)))
        case .tuple:
            return .tuple(try JinjaList(PythonString.slice(items, start: bounds[0], stop: bounds[1], step: stepValue)))
        default:
            return .list(try JinjaList(PythonString.slice(items, start: bounds[0], stop: bounds[1], step: stepValue)))
        }
    }

    private func loopAttribute(_ loop: JinjaLoop, _ name: String) throws(RuntimeFailure) -> JinjaValue? {
        switch name {
        case "index0": return .int(loop.index0)
        case "index": return .int(loop.index0 + 1)
        case "revindex": return .int(loop.length - loop.index0)
        case "revindex0": return .int(loop.length - loop.index0 - 1)
        case "first": return .bool(loop.index0 == 0)
        case "last": return .bool(loop.index0 == loop.length - 1)
        case "length": return .int(loop.length)
        case "depth": return .int(loop.depth0 + 1)
        case "depth0": return .int(loop.depth0)
        case "previtem":
            return loop.index0 > 0 ? loop.items[loop.index0 - 1] : .undefined(JinjaUndefined(.message("there is no previous item")))
        case "nextitem":
            return loop.index0 + 1 < loop.length ? loop.items[loop.index0 + 1] : .undefined(JinjaUndefined(.message("there is no next item")))
        case "cycle":
            return .function(JinjaFunction(name: "cycle", typeName: "method") { (arguments: JinjaArguments, _: Interpreter) throws(RuntimeFailure) -> JinjaValue in
                guard !arguments.positional.isEmpty else { throw RuntimeFailure("TypeError: no items for cycling given") }
                return arguments.positional[loop.index0 % arguments.positional.count]
            })
        case "changed":
            return .function(JinjaFunction(name: "changed", typeName: "method") { (arguments: JinjaArguments, _: Interpreter) throws(RuntimeFailure) -> JinjaValue in
                let values = arguments.positional
                if let last = loop.lastChanged, last.count == values.count, zip(last, values).allSatisfy({ $0.pythonEquals($1) }) {
                    return .bool(false)
                }
                loop.lastChanged = values
                return .bool(true)
            })
        default:
            return nil
        }
    }
}
