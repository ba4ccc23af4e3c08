/// The syntax tree of a parsed template. Expressions carry their source offset (for error messages)
/// and their nesting depth, which the parser bounds so that evaluation never recurses deeply.
struct Expression: Sendable {
    indirect enum Kind: Sendable {
        case literal(JinjaValue)
        case name(String)
        case list([Expression])
        case tuple([Expression])
        case dict([(key: Expression, value: Expression)])
        case attribute(Expression, String)
        case item(Expression, Expression)
        case slice(Expression, start: Expression?, stop: Expression?, step: Expression?)
        case call(Expression, [CallArgument])
        /// A filter; the receiver is nil at the head of `{% filter %}` and `{% set x | f %}` chains.
        case filter(Expression?, name: String, [CallArgument])
        case test(Expression, name: String, [CallArgument])
        case unary(negate: Bool, Expression)
        case not(Expression)
        case binary(BinaryOperator, Expression, Expression)
        case concat([Expression])
        case and(Expression, Expression)
        case or(Expression, Expression)
        case compare(Expression, [(op: CompareOperator, operand: Expression)])
        /// `a if test else b`; without `else` the result is undefined.
        case conditional(test: Expression, then: Expression, otherwise: Expression?)
    }

    var kind: Kind
    var offset: SourceOffset
    var depth: Int

    init(_ kind: Kind, at offset: SourceOffset, children: [Expression?] = []) {
        self.kind = kind
        self.offset = offset
        var deepest = 0
        for child in children { if let child, child.depth > deepest { deepest = child.depth } }
        self.depth = deepest + 1
    }
}

enum CallArgument: Sendable {
    case positional(Expression)
    case keyword(String, Expression)
    case unpackPositional(Expression)
    case unpackKeywords(Expression)

    var expression: Expression {
        switch self {
        case .positional(let e), .keyword(_, let e), .unpackPositional(let e), .unpackKeywords(let e): e
        }
    }
}

enum CompareOperator: String, Sendable {
    case equal = "==", notEqual = "!=", less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="
    case contains = "in", notContains = "not in"
}

/// Where `set`, `for` and `with` store values.
indirect enum AssignTarget: Sendable {
    case name(String)
    case tuple([AssignTarget])
    /// `ns.attribute` (only on namespaces).
    case namespaceAttribute(String, String)
}

indirect enum Node: Sendable {
    case text(String)
    case output(Expression)
    case conditional(branches: [(test: Expression, body: [Node])], otherwise: [Node])
    case forLoop(ForLoop)
    case assign(AssignTarget, Expression, SourceOffset)
    /// `{% set x %}...{% endset %}`, optionally through filters.
    case assignBlock(AssignTarget, filter: Expression?, body: [Node], SourceOffset)
    case macro(MacroDefinition)
    /// `{% call macro(...) %}body{% endcall %}`: calls the macro with `caller` rendering the body.
    case callBlock(call: Expression, caller: MacroDefinition)
    case filterBlock(Expression, body: [Node])
    case with([(target: AssignTarget, value: Expression)], body: [Node])
    case loopControl(isBreak: Bool, SourceOffset)
    /// A body rendered in its own scope (`{% generation %}`).
    case scoped([Node])
}

final class ForLoop: Sendable {
    let target: AssignTarget
    let iterable: Expression
    let condition: Expression?
    let body: [Node]
    let otherwise: [Node]
    let recursive: Bool
    let offset: SourceOffset

    init(target: AssignTarget, iterable: Expression, condition: Expression?, body: [Node], otherwise: [Node], recursive: Bool, offset: SourceOffset) {
        self.target = target
        self.iterable = iterable
        self.condition = condition
        self.body = body
        self.otherwise = otherwise
        self.recursive = recursive
        self.offset = offset
    }
}

final class MacroDefinition: Sendable {
    let name: String
    let parameters: [(name: String, defaultValue: Expression?)]
    let body: [Node]
    /// Whether the body reads `varargs`, `kwargs` or `caller`; jinja2 accepts surplus arguments only then.
    let usesVarargs: Bool
    let usesKwargs: Bool
    let usesCaller: Bool
    let offset: SourceOffset

    init(name: String, parameters: [(name: String, defaultValue: Expression?)], body: [Node], offset: SourceOffset) {
        self.name = name
        self.parameters = parameters
        self.body = body
        self.offset = offset
        var names = Set<String>()
        NameCollector.collect(body, into: &names)
        for parameter in parameters { if let d = parameter.defaultValue { NameCollector.collect(d, into: &names) } }
        let declared = Set(parameters.map(\.name))
        usesVarargs = names.contains("varargs") && !declared.contains("varargs")
        usesKwargs = names.contains("kwargs") && !declared.contains("kwargs")
        usesCaller = names.contains("caller") && !declared.contains("caller")
    }
}
