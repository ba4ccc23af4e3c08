/// A recursive-descent parser with jinja2's grammar and operator precedence (`parser.py`): conditional
/// expressions, `or`, `and`, `not`, comparisons (chained, `in`, `not in`), `+ -`, `~`, `* / // %`, `**`
/// (left-associative, as in jinja2), unary `- +`, then postfix attribute/subscript/call, filters and
/// tests. Statements: `if`, `for` (with `else`, a filter condition and `recursive`), `set` (including
/// block sets and namespace attributes), `macro`, `call`, `filter`, `with`, `print`, and the tags of
/// transformers' extensions: `break`, `continue`, `generation`.
struct JinjaParser {
    var tokens: [JinjaToken]
    private let lines: LineTable
    var index = 0
    var nesting = 0
    var loopDepth = 0

    /// Bounds on template nesting, far above what real templates use, so that hostile templates fail
    /// with a syntax error instead of exhausting the stack.
    static let maximumNesting = 96
    static let maximumExpressionDepth = 128

    init(tokens: [JinjaToken], lines: LineTable) {
        self.tokens = tokens
        self.lines = lines
    }

    private func place(_ offset: SourceOffset) -> String {
        let (line, column) = lines.position(of: offset)
        return "\(line):\(column)"
    }

    mutating func parseTemplate() throws(RuntimeFailure) -> [Node] {
        let (body, _) = try parseStatements(until: [], opener: nil)
        return body
    }

    // MARK: - Tokens

    var current: JinjaToken { tokens[min(index, tokens.count - 1)] }
    var offset: SourceOffset { current.offset }

    func peek(_ distance: Int = 1) -> JinjaToken { tokens[min(index + distance, tokens.count - 1)] }

    mutating func advance() { if index < tokens.count - 1 { index += 1 } }

    func isName(_ name: String) -> Bool {
        if case .name(let n) = current.kind { return n == name }
        return false
    }

    func isOp(_ op: String) -> Bool {
        if case .op(let o) = current.kind { return o == op }
        return false
    }

    mutating func skipName(_ name: String) -> Bool {
        guard isName(name) else { return false }
        advance()
        return true
    }

    mutating func skipOp(_ op: String) -> Bool {
        guard isOp(op) else { return false }
        advance()
        return true
    }

    static func describe(_ token: JinjaToken) -> String {
        switch token.kind {
        case .text: "template text"
        case .variableBegin: "'{{'"
        case .variableEnd: "end of print statement '}}'"
        case .blockBegin: "'{%'"
        case .blockEnd: "end of statement block '%}'"
        case .name(let n): "'\(n)'"
        case .string(let s): "string \(pythonRepr(s))"
        case .integer(let i): "integer \(i)"
        case .float(let d): "number \(pythonFloatRepr(d))"
        case .op(let o): "'\(o)'"
        case .end: "end of template"
        }
    }

    func fail(_ message: String, at offset: SourceOffset? = nil) -> RuntimeFailure {
        RuntimeFailure(message, kind: .syntax, at: offset ?? self.offset)
    }

    func unexpected(expected: String) -> RuntimeFailure {
        fail("expected \(expected), got \(Self.describe(current))")
    }

    mutating func expectOp(_ op: String) throws(RuntimeFailure) {
        guard skipOp(op) else { throw unexpected(expected: "'\(op)'") }
    }

    mutating func expectName() throws(RuntimeFailure) -> String {
        guard case .name(let n) = current.kind else { throw unexpected(expected: "a name") }
        advance()
        return n
    }

    private mutating func expectBlockEnd() throws(RuntimeFailure) {
        guard current.kind == .blockEnd else { throw unexpected(expected: "end of statement block '%}'") }
        advance()
    }

    /// The end of a tag that opens a body; jinja2 accepts a Python-style `:` before the `%}`.
    private mutating func expectBodyStart() throws(RuntimeFailure) {
        _ = skipOp(":")
        try expectBlockEnd()
    }

    // MARK: - Statements

    /// Parses nodes until a block tag whose name is in `endTags`; returns them and that tag name, leaving
    /// the tokens after the name unconsumed.
    private mutating func parseStatements(until endTags: Set<String>, opener: (name: String, offset: SourceOffset)?) throws(RuntimeFailure) -> ([Node], String) {
        nesting += 1
        defer { nesting -= 1 }
        guard nesting <= Self.maximumNesting else {
            throw fail("blocks nested deeper than \(Self.maximumNesting) levels")
        }
        var body: [Node] = []
        while true {
            let token = current
            switch token.kind {
            case .text(let text):
                body.append(.text(text))
                advance()
            case .variableBegin:
                advance()
                let expression = try parseTuple()
                guard current.kind == .variableEnd else { throw unexpected(expected: "end of print statement '}}'") }
                advance()
                body.append(.output(expression))
            case .blockBegin:
                advance()
                if case .name(let name) = current.kind, endTags.contains(name) {
                    advance()
                    return (body, name)
                }
                body.append(contentsOf: try parseStatement(at: token.offset, endTags: endTags, opener: opener))
                try expectBlockEnd()
            case .end:
                guard let opener else { return (body, "") }
                let expected = endTags.sorted().map { "'\($0)'" }.joined(separator: " or ")
                throw fail("unexpected end of template: expected \(expected) to close the '\(opener.name)' block opened at \(place(opener.offset))")
            default:
                throw fail("unexpected \(Self.describe(token))")
            }
        }
    }

    /// Parses a body that must end with `{% end<name> %}` (the tag's `%}` is left for the caller).
    private mutating func parseBody(_ endTag: String, opener: String, at offset: SourceOffset) throws(RuntimeFailure) -> [Node] {
        try expectBodyStart()
        return try parseStatements(until: [endTag], opener: (opener, offset)).0
    }

    /// Parses the statement whose `{%` is at `start`.
    private mutating func parseStatement(at start: SourceOffset, endTags: Set<String>, opener: (name: String, offset: SourceOffset)?) throws(RuntimeFailure) -> [Node] {
        guard case .name(let tag) = current.kind else { throw fail("expected a tag name, got \(Self.describe(current))") }
        advance()
        switch tag {
        case "if": return [try parseIf(at: start)]
        case "for": return [try parseFor(at: start)]
        case "set": return [try parseSet(at: start)]
        case "macro":
            let name = try expectName()
            let parameters = try parseSignature()
            let saved = loopDepth
            loopDepth = 0
            defer { loopDepth = saved }
            let body = try parseBody("endmacro", opener: "macro", at: start)
            return [.macro(MacroDefinition(name: name, parameters: parameters, body: body, offset: start))]
        case "call":
            var parameters: [(name: String, defaultValue: Expression?)] = []
            if isOp("(") { parameters = try parseSignature() }
            let call = try parseExpression()
            guard case .call = call.kind else { throw fail("expected a macro call after 'call'", at: call.offset) }
            let saved = loopDepth
            loopDepth = 0
            defer { loopDepth = saved }
            let body = try parseBody("endcall", opener: "call", at: start)
            return [.callBlock(call: call, caller: MacroDefinition(name: "caller", parameters: parameters, body: body, offset: start))]
        case "filter":
            let filter = try parseFilterChain(nil, startInline: true)
            return [.filterBlock(filter, body: try parseBody("endfilter", opener: "filter", at: start))]
        case "with":
            var assignments: [(target: AssignTarget, value: Expression)] = []
            while current.kind != .blockEnd {
                if !assignments.isEmpty { try expectOp(",") }
                let target = try parseAssignTarget(extraEnd: [])
                try expectOp("=")
                assignments.append((target, try parseExpression()))
            }
            return [.with(assignments, body: try parseBody("endwith", opener: "with", at: start))]
        case "print":
            var outputs: [Node] = []
            while current.kind != .blockEnd {
                if !outputs.isEmpty { try expectOp(",") }
                outputs.append(.output(try parseExpression()))
            }
            return outputs
        case "break", "continue":
            guard loopDepth > 0 else { throw fail("'\(tag)' outside of a loop", at: start) }
            return [.loopControl(isBreak: tag == "break", start)]
        case "generation":
            return [.scoped(try parseBody("endgeneration", opener: "generation", at: start))]
        case "extends", "include", "import", "from", "block", "autoescape", "raw", "do":
            throw fail("the '\(tag)' tag is not supported in chat templates", at: start)
        default:
            if let opener {
                let expected = endTags.sorted().map { "'\($0)'" }.joined(separator: " or ")
                throw fail("unexpected tag '\(tag)': expected \(expected) to close the '\(opener.name)' block opened at \(place(opener.offset))", at: start)
            }
            throw fail("unknown tag '\(tag)'", at: start)
        }
    }

    private mutating func parseIf(at start: SourceOffset) throws(RuntimeFailure) -> Node {
        var branches: [(test: Expression, body: [Node])] = []
        var otherwise: [Node] = []
        while true {
            let test = try parseTuple(withConditional: false)
            try expectBodyStart()
            let (body, end) = try parseStatements(until: ["elif", "else", "endif"], opener: ("if", start))
            branches.append((test, body))
            if end == "elif" { continue }
            if end == "else" {
                try expectBodyStart()
                otherwise = try parseStatements(until: ["endif"], opener: ("if", start)).0
            }
            break
        }
        return .conditional(branches: branches, otherwise: otherwise)
    }

    private mutating func parseFor(at start: SourceOffset) throws(RuntimeFailure) -> Node {
        let target = try parseAssignTarget(extraEnd: ["in"])
        guard skipName("in") else { throw unexpected(expected: "'in'") }
        let iterable = try parseTuple(withConditional: false, extraEnd: ["recursive"])
        var condition: Expression? = nil
        if skipName("if") { condition = try parseExpression() }
        let recursive = skipName("recursive")
        try expectBodyStart()
        loopDepth += 1
        let (body, end) = try parseStatements(until: ["endfor", "else"], opener: ("for", start))
        loopDepth -= 1
        var otherwise: [Node] = []
        if end == "else" {
            try expectBodyStart()
            otherwise = try parseStatements(until: ["endfor"], opener: ("for", start)).0
        }
        return .forLoop(ForLoop(target: target, iterable: iterable, condition: condition, body: body, otherwise: otherwise, recursive: recursive, offset: start))
    }

    private mutating func parseSet(at start: SourceOffset) throws(RuntimeFailure) -> Node {
        // Namespace attributes (`ns.x`) may appear anywhere in a set target, also inside a tuple.
        let target = try parseAssignTarget(extraEnd: [], withNamespace: true)
        if skipOp("=") { return .assign(target, try parseTuple(), start) }
        let filter: Expression? = isOp("|") ? try parseFilterChain(nil, startInline: false) : nil
        return .assignBlock(target, filter: filter, body: try parseBody("endset", opener: "set", at: start), start)
    }

    private mutating func parseSignature() throws(RuntimeFailure) -> [(name: String, defaultValue: Expression?)] {
        try expectOp("(")
        var parameters: [(name: String, defaultValue: Expression?)] = []
        while !isOp(")") {
            if !parameters.isEmpty { try expectOp(",") }
            let nameOffset = offset
            let name = try expectName()
            if skipOp("=") {
                parameters.append((name, try parseExpression()))
            } else {
                if parameters.contains(where: { $0.defaultValue != nil }) {
                    throw fail("non-default argument follows default argument", at: nameOffset)
                }
                parameters.append((name, nil))
            }
        }
        try expectOp(")")
        return parameters
    }

    /// A name or (possibly parenthesised) tuple of names, as after `for` or `set`.
    private mutating func parseAssignTarget(extraEnd: Set<String>, withNamespace: Bool = false) throws(RuntimeFailure) -> AssignTarget {
        var targets: [AssignTarget] = []
        var isTuple = false
        while true {
            if !targets.isEmpty { try expectOp(",") }
            if isTupleEnd(extraEnd) { break }
            targets.append(try parseSimpleTarget(withNamespace: withNamespace))
            if isOp(",") { isTuple = true } else { break }
        }
        if !isTuple, let only = targets.first { return only }
        guard !targets.isEmpty else { throw unexpected(expected: "an assignment target") }
        return .tuple(targets)
    }

    private mutating func parseSimpleTarget(withNamespace: Bool) throws(RuntimeFailure) -> AssignTarget {
        if case .name(let name) = current.kind {
            if ["true", "false", "True", "False", "none", "None"].contains(name) {
                throw fail("cannot assign to the constant '\(name)'")
            }
            advance()
            if withNamespace && skipOp(".") { return .namespaceAttribute(name, try expectName()) }
            return .name(name)
        }
        if skipOp("(") {
            nesting += 1
            defer { nesting -= 1 }
            guard nesting <= Self.maximumNesting else { throw fail("parentheses nested too deeply") }
            let target = try parseAssignTarget(extraEnd: [], withNamespace: withNamespace)
            try expectOp(")")
            return target
        }
        throw unexpected(expected: "a name to assign to")
    }

    func isTupleEnd(_ extraEnd: Set<String>) -> Bool {
        switch current.kind {
        case .variableEnd, .blockEnd, .end: return true
        case .op(")"): return true
        case .name(let n): return extraEnd.contains(n)
        default: return false
        }
    }
}
