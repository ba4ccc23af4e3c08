/// Bounds that keep a render finite and its memory small whatever the template does.
public struct JinjaRenderLimits: Sendable {
    /// Loop iterations over the whole render (each `for` pass and each item a filter visits counts).
    public var maximumIterations: Int
    /// UTF-8 bytes of output (and of any captured block or macro output).
    public var maximumOutputBytes: Int
    /// Nested macro and recursive-loop calls.
    public var maximumCallDepth: Int

    public init(maximumIterations: Int = 1_000_000, maximumOutputBytes: Int = 16 << 20, maximumCallDepth: Int = 48) {
        self.maximumIterations = maximumIterations
        self.maximumOutputBytes = maximumOutputBytes
        self.maximumCallDepth = maximumCallDepth
    }
}

/// Variables visible at one level: the render context, a loop iteration, a macro call, a `with`
/// block. Assignments go to the innermost scope; `if` blocks do not open one, as in jinja2.
final class Scope: @unchecked Sendable {
    let parent: Scope?
    // Scopes hold a handful of names, so a linear search over short (inline) strings beats hashing;
    // an index is built only when a scope grows large.
    private var names: [String] = []
    private var values: [JinjaValue] = []
    private var index: [String: Int]? = nil

    init(parent: Scope?) {
        self.parent = parent
    }

    init(parent: Scope?, variables: [String: JinjaValue]) {
        self.parent = parent
        for (name, value) in variables { self[name] = value }
    }

    init(parent: Scope?, name: String, value: JinjaValue) {
        self.parent = parent
        names = [name]
        values = [value]
    }

    private func slot(_ name: String) -> Int? {
        if let index { return index[name] }
        return names.firstIndex(of: name)
    }

    subscript(name: String) -> JinjaValue? {
        get { slot(name).map { values[$0] } }
        set {
            if let i = slot(name) {
                if let newValue { values[i] = newValue }
                return
            }
            guard let newValue else { return }
            names.append(name)
            values.append(newValue)
            if index != nil {
                index?[name] = names.count - 1
            } else if names.count > 16 {
                index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
            }
        }
    }

    func lookup(_ name: String) -> JinjaValue? {
        var scope: Scope? = self
        while let current = scope {
            if let value = current[name] { return value }
            scope = current.parent
        }
        return nil
    }

    /// Drops every variable (breaking reference cycles through macros when a render ends).
    func clear() {
        names.removeAll()
        values.removeAll()
        index = nil
    }
}

/// Walks the syntax tree and writes the output. One interpreter serves one render.
final class Interpreter: @unchecked Sendable {
    enum Flow { case normal, breakLoop, continueLoop }

    let lines: LineTable
    let limits: JinjaRenderLimits
    let globals: [String: JinjaValue]
    var output = ""
    private var iterationsLeft: Int
    private(set) var callDepth = 0
    /// Objects that can end up in reference cycles (namespaces, scopes holding macros); cleared when
    /// the render ends so that nothing leaks.
    private var namespaces: [JinjaNamespace] = []
    private var macroScopes: [Scope] = []

    init(lines: LineTable, limits: JinjaRenderLimits, globals: [String: JinjaValue]) {
        self.lines = lines
        self.limits = limits
        self.globals = globals
        self.iterationsLeft = limits.maximumIterations
    }

    func render(_ nodes: [Node], context: [String: JinjaValue]) throws(RuntimeFailure) -> String {
        defer { releaseCycles() }
        let root = Scope(parent: nil, variables: context)
        _ = try execute(nodes, in: root)
        return output
    }

    private func releaseCycles() {
        for namespace in namespaces { namespace.attributes = JinjaDict() }
        for scope in macroScopes { scope.clear() }
        namespaces.removeAll()
        macroScopes.removeAll()
    }

    func track(_ namespace: JinjaNamespace) { namespaces.append(namespace) }

    /// Counts work against the iteration budget.
    func spend(_ iterations: Int = 1) throws(RuntimeFailure) {
        iterationsLeft -= iterations
        if iterationsLeft < 0 {
            throw RuntimeFailure("render stopped: more than \(limits.maximumIterations) loop iterations")
        }
    }

    func write(_ text: String) throws(RuntimeFailure) {
        output += text
        if output.utf8.count > limits.maximumOutputBytes {
            throw RuntimeFailure("render stopped: output larger than \(limits.maximumOutputBytes) bytes")
        }
    }

    /// Runs `body` with output going to a fresh buffer and returns what it wrote.
    func capture(_ body: () throws(RuntimeFailure) -> Void) throws(RuntimeFailure) -> String {
        let saved = output
        output = ""
        defer { output = saved }
        try body()
        return output
    }

    func withCallDepth<T>(_ body: () throws(RuntimeFailure) -> T) throws(RuntimeFailure) -> T {
        guard callDepth < limits.maximumCallDepth else {
            throw RuntimeFailure("RecursionError: macro or recursive loop calls nested deeper than \(limits.maximumCallDepth)")
        }
        callDepth += 1
        defer { callDepth -= 1 }
        return try body()
    }

    // MARK: - Statements

    func execute(_ nodes: [Node], in scope: Scope) throws(RuntimeFailure) -> Flow {
        for node in nodes {
            switch node {
            case .text(let text):
                try write(text)
            case .output(let expression):
                let value = try evaluate(expression, in: scope)
                do {
                    try write(try value.pythonStr())
                } catch {
                    throw error.located(expression.offset)
                }
            case .conditional(let branches, let otherwise):
                var taken = false
                for branch in branches {
                    guard try evaluate(branch.test, in: scope).isTruthy else { continue }
                    taken = true
                    let flow = try execute(branch.body, in: scope)
                    if flow != .normal { return flow }
                    break
                }
                if !taken {
                    let flow = try execute(otherwise, in: scope)
                    if flow != .normal { return flow }
                }
            case .forLoop(let loop):
                try runLoop(loop, in: scope, items: nil, depth0: 0)
            case .assign(let target, let expression, let offset):
                // jinja2 checks namespace targets before it evaluates the value.
                try checkNamespaceTargets(target, in: scope, at: offset)
                let value = try evaluate(expression, in: scope)
                try assign(target, value, in: scope, at: offset)
            case .assignBlock(let target, let filter, let body, let offset):
                let inner = Scope(parent: scope)
                var value = JinjaValue.string(try capture { () throws(RuntimeFailure) in _ = try execute(body, in: inner) })
                if let filter { value = try evaluate(filter, in: scope, filterInput: value) }
                try assign(target, value, in: scope, at: offset)
            case .macro(let definition):
                scope[definition.name] = .function(makeMacro(definition, in: scope))
                macroScopes.append(scope)
            case .callBlock(let call, let caller):
                let callerFunction = makeMacro(caller, in: scope)
                let value = try evaluate(call, in: scope, extraKeyword: ("caller", .function(callerFunction)))
                do {
                    try write(try value.pythonStr())
                } catch {
                    throw error.located(call.offset)
                }
            case .filterBlock(let filter, let body):
                let inner = Scope(parent: scope)
                let text = try capture { () throws(RuntimeFailure) in _ = try execute(body, in: inner) }
                let value = try evaluate(filter, in: scope, filterInput: .string(text))
                do {
                    try write(try value.pythonStr())
                } catch {
                    throw error.located(filter.offset)
                }
            case .with(let assignments, let body):
                let inner = Scope(parent: scope)
                var values: [JinjaValue] = []
                for assignment in assignments { values.append(try evaluate(assignment.value, in: scope)) }
                for (assignment, value) in zip(assignments, values) {
                    try assign(assignment.target, value, in: inner, at: assignment.value.offset)
                }
                let flow = try execute(body, in: inner)
                if flow != .normal { return flow }
            case .loopControl(let isBreak, _):
                return isBreak ? .breakLoop : .continueLoop
            case .scoped(let body):
                let flow = try execute(body, in: Scope(parent: scope))
                if flow != .normal { return flow }
            }
        }
        return .normal
    }

    func assign(_ target: AssignTarget, _ value: JinjaValue, in scope: Scope, at offset: SourceOffset) throws(RuntimeFailure) {
        // jinja2 checks every namespace reference of a target before assigning anything.
        if case .tuple = target { try checkNamespaceTargets(target, in: scope, at: offset) }
        try store(target, value, in: scope, at: offset)
    }

    func checkNamespaceTargets(_ target: AssignTarget, in scope: Scope, at offset: SourceOffset) throws(RuntimeFailure) {
        switch target {
        case .name: break
        case .tuple(let targets): for t in targets { try checkNamespaceTargets(t, in: scope, at: offset) }
        case .namespaceAttribute(let name, _):
            guard case .namespace? = scope.lookup(name) ?? globals[name] else {
                throw RuntimeFailure("TemplateRuntimeError: cannot assign attribute on non-namespace object", at: offset)
            }
        }
    }

    private func store(_ target: AssignTarget, _ value: JinjaValue, in scope: Scope, at offset: SourceOffset) throws(RuntimeFailure) {
        switch target {
        case .name(let name):
            scope[name] = value
        case .tuple(let targets):
            let items: [JinjaValue]
            do {
                items = try value.pythonIterate()
            } catch {
                throw RuntimeFailure("TypeError: cannot unpack non-iterable \(value.pythonTypeName) object", at: offset)
            }
            guard items.count == targets.count else {
                let message = items.count < targets.count
                    ? "ValueError: not enough values to unpack (expected \(targets.count), got \(items.count))"
                    : "ValueError: too many values to unpack (expected \(targets.count))"
                throw RuntimeFailure(message, at: offset)
            }
            for (t, item) in zip(targets, items) { try store(t, item, in: scope, at: offset) }
        case .namespaceAttribute(let name, let attribute):
            guard case .namespace(let namespace)? = scope.lookup(name) ?? globals[name] else {
                throw RuntimeFailure("TemplateRuntimeError: cannot assign attribute on non-namespace object", at: offset)
            }
            try checkNamespaceName(attribute, at: offset)
            try namespace.attributes.set(.string(attribute), value)
        }
    }

    /// transformers' `TemplateNamespace` refuses underscore-prefixed attributes.
    func checkNamespaceName(_ name: String, at offset: SourceOffset = .unknown) throws(RuntimeFailure) {
        if name.hasPrefix("_") {
            throw RuntimeFailure("SecurityError: Chat templates cannot store underscore-prefixed attributes on a namespace, but got \(pythonRepr(name)). Please rename the attribute.", at: offset)
        }
    }

    private func runLoop(_ loop: ForLoop, in scope: Scope, items override: [JinjaValue]?, depth0: Int) throws(RuntimeFailure) {
        var items: [JinjaValue]
        if let override {
            items = override
        } else {
            let iterable = try evaluate(loop.iterable, in: scope)
            do {
                items = try iterable.pythonIterate()
            } catch {
                throw error.located(loop.iterable.offset)
            }
        }
        if let condition = loop.condition {
            var kept: [JinjaValue] = []
            for item in items {
                try spend()
                let probe = Scope(parent: scope)
                try assign(loop.target, item, in: probe, at: loop.offset)
                if try evaluate(condition, in: probe).isTruthy { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty {
            _ = try execute(loop.otherwise, in: Scope(parent: scope))
            return
        }
        var recurse: ((JinjaValue, Interpreter) throws(RuntimeFailure) -> JinjaValue)? = nil
        if loop.recursive {
            recurse = { [unowned self] (value: JinjaValue, _: Interpreter) throws(RuntimeFailure) -> JinjaValue in
                let nested = try value.pythonIterate()
                return try self.withCallDepth { () throws(RuntimeFailure) -> JinjaValue in
                    .string(try self.capture { () throws(RuntimeFailure) in
                        try self.runLoop(loop, in: scope, items: nested, depth0: depth0 + 1)
                    })
                }
            }
        }
        let state = JinjaLoop(items: items, depth0: depth0, recurse: recurse)
        for (i, item) in items.enumerated() {
            try spend()
            state.index0 = i
            let iteration = Scope(parent: scope, name: "loop", value: .loop(state))
            try assign(loop.target, item, in: iteration, at: loop.offset)
            if try execute(loop.body, in: iteration) == .breakLoop { break }
        }
    }

    // MARK: - Macros

    func makeMacro(_ definition: MacroDefinition, in scope: Scope) -> JinjaFunction {
        JinjaFunction(name: definition.name, typeName: "Macro", repr: "<Macro \(pythonRepr(definition.name))>") {
            (arguments: JinjaArguments, interpreter: Interpreter) throws(RuntimeFailure) -> JinjaValue in
            try interpreter.withCallDepth { () throws(RuntimeFailure) -> JinjaValue in
                try interpreter.invoke(definition, scope: scope, arguments: arguments)
            }
        }
    }

    private func invoke(_ macro: MacroDefinition, scope: Scope, arguments: JinjaArguments) throws(RuntimeFailure) -> JinjaValue {
        let frame = Scope(parent: scope)
        var keywords = arguments.keywords
        let parameterCount = macro.parameters.count
        for (i, parameter) in macro.parameters.enumerated() {
            if i < arguments.positional.count {
                frame[parameter.name] = arguments.positional[i]
            } else if let k = keywords.firstIndex(where: { $0.name == parameter.name }) {
                frame[parameter.name] = keywords.remove(at: k).value
            } else if let defaultValue = parameter.defaultValue {
                frame[parameter.name] = try evaluate(defaultValue, in: frame)
            } else {
                frame[parameter.name] = .undefined(JinjaUndefined(.message("parameter \(pythonRepr(parameter.name)) was not provided")))
            }
        }
        if macro.usesCaller && frame["caller"] == nil {
            if let k = keywords.firstIndex(where: { $0.name == "caller" }) {
                frame["caller"] = keywords.remove(at: k).value
            } else {
                frame["caller"] = .undefined(JinjaUndefined(.message("No caller defined")))
            }
        }
        if macro.usesKwargs {
            var dict = JinjaDict()
            for (name, value) in keywords { try dict.set(.string(name), value) }
            frame["kwargs"] = .dict(dict)
        } else if let first = keywords.first {
            if first.name == "caller" {
                throw RuntimeFailure("TypeError: macro \(pythonRepr(macro.name)) was invoked with two values for the special caller argument. This is most likely a bug.")
            }
            throw RuntimeFailure("TypeError: macro \(pythonRepr(macro.name)) takes no keyword argument \(pythonRepr(first.name))")
        }
        if macro.usesVarargs {
            frame["varargs"] = .tuple(try JinjaList(Array(arguments.positional.dropFirst(parameterCount))))
        } else if arguments.positional.count > parameterCount {
            throw RuntimeFailure("TypeError: macro \(pythonRepr(macro.name)) takes not more than \(parameterCount) argument(s)")
        }
        return .string(try capture { () throws(RuntimeFailure) in _ = try execute(macro.body, in: frame) })
    }
}

extension RuntimeFailure {
    /// Attaches a position to a failure that has none yet; the innermost known position wins.
    func located(_ offset: SourceOffset) -> RuntimeFailure {
        guard self.offset == .unknown else { return self }
        var copy = self
        copy.offset = offset
        return copy
    }
}
