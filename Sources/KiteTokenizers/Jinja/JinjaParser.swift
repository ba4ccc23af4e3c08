/// A recursive-descent parser with jinja2's grammar and operator precedence (`parser.py`): conditional
/// expressions, `or`, `and`, `not`, comparisons (chained, `in`, `not in`), `+ -`, `~`, `* / // %`, `**`
/// (left-associative, as in jinja2), unary `- +`, then postfix attribute/subscript/call, filters and
/// tests. Statements: `if`, `for` (with `else`, a filter condition and `recursive`), `set` (including
/// block sets and namespace attributes), `macro`, `call`, `filter`, `with`, `print`, and the tags of
/// transformers' extensions: `break`, `continue`, `generation`.
struct JinjaParser {
    private var tokens: [JinjaToken]
    private let lines: LineTable
    private var index = 0
    private var nesting = 0
    private var loopDepth = 0

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

    private var current: JinjaToken { tokens[min(index, tokens.count - 1)] }
    private var offset: SourceOffset { current.offset }

    private func peek(_ distance: Int = 1) -> JinjaToken { tokens[min(index + distance, tokens.count - 1)] }

    private mutating func advance() { if index < tokens.count - 1 { index += 1 } }

    private func isName(_ name: String) -> Bool {
        if case .name(let n) = current.kind { return n == name }
        return false
    }

    private func isOp(_ op: String) -> Bool {
        if case .op(let o) = current.kind { return o == op }
        return false
    }

    private mutating func skipName(_ name: String) -> Bool {
        guard isName(name) else { return false }
        advance()
        return true
    }

    private mutating func skipOp(_ op: String) -> Bool {
        guard isOp(op) else { return false }
        advance()
        return true
    }

    private static func describe(_ token: JinjaToken) -> String {
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

    private func fail(_ message: String, at offset: SourceOffset? = nil) -> RuntimeFailure {
        RuntimeFailure(message, kind: .syntax, at: offset ?? self.offset)
    }

    private func unexpected(expected: String) -> RuntimeFailure {
        fail("expected \(expected), got \(Self.describe(current))")
    }

    private mutating func expectOp(_ op: String) throws(RuntimeFailure) {
        guard skipOp(op) else { throw unexpected(expected: "'\(op)'") }
    }

    private mutating func expectName() throws(RuntimeFailure) -> String {
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

    private func isTupleEnd(_ extraEnd: Set<String>) -> Bool {
        switch current.kind {
        case .variableEnd, .blockEnd, .end: return true
        case .op(")"): return true
        case .name(let n): return extraEnd.contains(n)
        default: return false
        }
    }

    // MARK: - Expressions

    private func checked(_ expression: Expression) throws(RuntimeFailure) -> Expression {
        guard expression.depth <= Self.maximumExpressionDepth else {
            throw fail("expression nested deeper than \(Self.maximumExpressionDepth) levels", at: expression.offset)
        }
        return expression
    }

    private mutating func parseTuple(withConditional: Bool = true, extraEnd: Set<String> = [], explicitParentheses: Bool = false) throws(RuntimeFailure) -> Expression {
        let start = offset
        var items: [Expression] = []
        var isTuple = false
        while true {
            if !items.isEmpty { try expectOp(",") }
            if isTupleEnd(extraEnd) { break }
            items.append(withConditional ? try parseExpression() : try parseOr())
            if isOp(",") { isTuple = true } else { break }
        }
        if !isTuple {
            if let only = items.first { return only }
            if !explicitParentheses { throw unexpected(expected: "an expression") }
        }
        return try checked(Expression(.tuple(items), at: start, children: items))
    }

    mutating func parseExpression() throws(RuntimeFailure) -> Expression {
        nesting += 1
        defer { nesting -= 1 }
        guard nesting <= Self.maximumNesting else { throw fail("expression nested deeper than \(Self.maximumNesting) levels") }
        var result = try parseOr()
        while skipName("if") {
            let test = try parseOr()
            let otherwise: Expression? = skipName("else") ? try parseExpression() : nil
            result = try checked(Expression(.conditional(test: test, then: result, otherwise: otherwise), at: result.offset, children: [test, result, otherwise]))
        }
        return result
    }

    private mutating func parseOr() throws(RuntimeFailure) -> Expression {
        var left = try parseAnd()
        while isName("or") {
            let at = offset
            advance()
            let right = try parseAnd()
            left = try checked(Expression(.or(left, right), at: at, children: [left, right]))
        }
        return left
    }

    private mutating func parseAnd() throws(RuntimeFailure) -> Expression {
        var left = try parseNot()
        while isName("and") {
            let at = offset
            advance()
            let right = try parseNot()
            left = try checked(Expression(.and(left, right), at: at, children: [left, right]))
        }
        return left
    }

    private mutating func parseNot() throws(RuntimeFailure) -> Expression {
        if isName("not") {
            let at = offset
            advance()
            nesting += 1
            defer { nesting -= 1 }
            guard nesting <= Self.maximumNesting else { throw fail("too many nested 'not'") }
            let operand = try parseNot()
            return try checked(Expression(.not(operand), at: at, children: [operand]))
        }
        return try parseCompare()
    }

    private mutating func parseCompare() throws(RuntimeFailure) -> Expression {
        let first = try parseMath1()
        var operands: [(op: CompareOperator, operand: Expression)] = []
        while true {
            var op: CompareOperator? = nil
            if case .op(let o) = current.kind, let compare = CompareOperator(rawValue: o), compare != .contains {
                op = compare
                advance()
            } else if isName("in") {
                op = .contains
                advance()
            } else if isName("not"), case .name("in") = peek().kind {
                op = .notContains
                advance()
                advance()
            }
            guard let op else { break }
            operands.append((op, try parseMath1()))
        }
        if operands.isEmpty { return first }
        return try checked(Expression(.compare(first, operands), at: first.offset, children: [first] + operands.map(\.operand)))
    }

    private mutating func parseMath1() throws(RuntimeFailure) -> Expression {
        var left = try parseConcat()
        while isOp("+") || isOp("-") {
            let op: BinaryOperator = isOp("+") ? .add : .subtract
            let at = offset
            advance()
            let right = try parseConcat()
            left = try checked(Expression(.binary(op, left, right), at: at, children: [left, right]))
        }
        return left
    }

    private mutating func parseConcat() throws(RuntimeFailure) -> Expression {
        var parts = [try parseMath2()]
        while skipOp("~") { parts.append(try parseMath2()) }
        if parts.count == 1 { return parts[0] }
        return try checked(Expression(.concat(parts), at: parts[0].offset, children: parts))
    }

    private mutating func parseMath2() throws(RuntimeFailure) -> Expression {
        var left = try parsePow()
        while true {
            let op: BinaryOperator
            if isOp("*") { op = .multiply } else if isOp("/") { op = .divide } else if isOp("//") { op = .floorDivide } else if isOp("%") { op = .modulo } else { break }
            let at = offset
            advance()
            let right = try parsePow()
            left = try checked(Expression(.binary(op, left, right), at: at, children: [left, right]))
        }
        return left
    }

    private mutating func parsePow() throws(RuntimeFailure) -> Expression {
        var left = try parseUnary(withFilter: true)
        while isOp("**") {
            let at = offset
            advance()
            let right = try parseUnary(withFilter: true)
            left = try checked(Expression(.binary(.power, left, right), at: at, children: [left, right]))
        }
        return left
    }

    private mutating func parseUnary(withFilter: Bool) throws(RuntimeFailure) -> Expression {
        let at = offset
        var node: Expression
        if isOp("-") || isOp("+") {
            let negate = isOp("-")
            advance()
            nesting += 1
            defer { nesting -= 1 }
            guard nesting <= Self.maximumNesting else { throw fail("too many nested unary operators") }
            let operand = try parseUnary(withFilter: false)
            node = try checked(Expression(.unary(negate: negate, operand), at: at, children: [operand]))
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        if withFilter { node = try parseFilterExpression(node) }
        return node
    }

    private mutating func parsePrimary() throws(RuntimeFailure) -> Expression {
        let at = offset
        switch current.kind {
        case .name(let name):
            advance()
            switch name {
            case "true", "True": return Expression(.literal(.bool(true)), at: at)
            case "false", "False": return Expression(.literal(.bool(false)), at: at)
            case "none", "None": return Expression(.literal(.none), at: at)
            default: return Expression(.name(name), at: at)
            }
        case .string(var text):
            advance()
            while case .string(let more) = current.kind {
                text += more
                advance()
            }
            return Expression(.literal(.string(text)), at: at)
        case .integer(let value):
            advance()
            return Expression(.literal(.int(value)), at: at)
        case .float(let value):
            advance()
            return Expression(.literal(.float(value)), at: at)
        case .op("("):
            advance()
            // parseTuple -> parseExpression counts this level.
            let inner = try parseTuple(explicitParentheses: true)
            try expectOp(")")
            return inner
        case .op("["):
            advance()
            var items: [Expression] = []
            while !isOp("]") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("]") { break }
                items.append(try parseExpression())
            }
            try expectOp("]")
            return try checked(Expression(.list(items), at: at, children: items))
        case .op("{"):
            advance()
            var pairs: [(key: Expression, value: Expression)] = []
            while !isOp("}") {
                if !pairs.isEmpty { try expectOp(",") }
                if isOp("}") { break }
                let key = try parseExpression()
                try expectOp(":")
                pairs.append((key, try parseExpression()))
            }
            try expectOp("}")
            return try checked(Expression(.dict(pairs), at: at, children: pairs.flatMap { [$0.key, $0.value] }))
        default:
            throw fail("unexpected \(Self.describe(current)), expected an expression")
        }
    }

    private mutating func parsePostfix(_ base: Expression) throws(RuntimeFailure) -> Expression {
        var node = base
        while true {
            let at = offset
            if skipOp(".") {
                switch current.kind {
                case .name(let name):
                    advance()
                    node = try checked(Expression(.attribute(node, name), at: at, children: [node]))
                case .integer(let i):
                    advance()
                    let key = Expression(.literal(.int(i)), at: at)
                    node = try checked(Expression(.item(node, key), at: at, children: [node]))
                default:
                    throw unexpected(expected: "an attribute name or number after '.'")
                }
            } else if skipOp("[") {
                var subscripts: [Expression] = []
                while !isOp("]") {
                    if !subscripts.isEmpty { try expectOp(",") }
                    subscripts.append(try parseSubscript(of: node))
                }
                try expectOp("]")
                if subscripts.count == 1, let first = subscripts.first, case .slice = first.kind {
                    node = first
                } else {
                    // `x[a, b]` (and `x[]`, as jinja2 allows) subscript with a tuple.
                    let key = subscripts.count == 1 ? subscripts[0] : try checked(Expression(.tuple(subscripts), at: at, children: subscripts))
                    node = try checked(Expression(.item(node, key), at: at, children: [node, key]))
                }
            } else if isOp("(") {
                node = try parseCall(node)
            } else {
                return node
            }
        }
    }

    /// One subscript: an expression or a slice `start:stop:step` with optional parts.
    private mutating func parseSubscript(of base: Expression) throws(RuntimeFailure) -> Expression {
        let at = offset
        var start: Expression? = nil
        if !isOp(":") {
            let expression = try parseExpression()
            guard isOp(":") else { return expression }
            start = expression
        }
        advance()
        var stop: Expression? = nil
        var step: Expression? = nil
        if !isOp(":") && !isOp("]") && !isOp(",") { stop = try parseExpression() }
        if skipOp(":") {
            if !isOp("]") && !isOp(",") { step = try parseExpression() }
        }
        return try checked(Expression(.slice(base, start: start, stop: stop, step: step), at: at, children: [base, start, stop, step]))
    }

    private mutating func parseCall(_ callee: Expression) throws(RuntimeFailure) -> Expression {
        let at = offset
        let arguments = try parseArguments()
        return try checked(Expression(.call(callee, arguments), at: at, children: [callee] + arguments.map(\.expression)))
    }

    private mutating func parseArguments() throws(RuntimeFailure) -> [CallArgument] {
        let open = offset
        try expectOp("(")
        var arguments: [CallArgument] = []
        var sawKeyword = false, sawUnpackPositional = false, sawUnpackKeywords = false
        func invalid() -> RuntimeFailure { RuntimeFailure("invalid syntax for function call expression", kind: .syntax, at: open) }
        while !isOp(")") {
            if !arguments.isEmpty {
                try expectOp(",")
                if isOp(")") { break }
            }
            if skipOp("*") {
                guard !sawUnpackPositional && !sawUnpackKeywords else { throw invalid() }
                sawUnpackPositional = true
                arguments.append(.unpackPositional(try parseExpression()))
            } else if skipOp("**") {
                guard !sawUnpackKeywords else { throw invalid() }
                sawUnpackKeywords = true
                arguments.append(.unpackKeywords(try parseExpression()))
            } else if case .name(let name) = current.kind, case .op("=") = peek().kind {
                guard !sawUnpackKeywords else { throw invalid() }
                advance()
                advance()
                sawKeyword = true
                arguments.append(.keyword(name, try parseExpression()))
            } else {
                guard !sawUnpackPositional && !sawUnpackKeywords && !sawKeyword else { throw invalid() }
                arguments.append(.positional(try parseExpression()))
            }
        }
        try expectOp(")")
        return arguments
    }

    private mutating func parseFilterExpression(_ base: Expression) throws(RuntimeFailure) -> Expression {
        var node = base
        while true {
            if isOp("|") {
                node = try parseFilterChain(node, startInline: false)
            } else if isName("is") {
                node = try parseTest(node)
            } else if isOp("(") {
                node = try parseCall(node)
            } else {
                return node
            }
        }
    }

    private mutating func parseDottedName() throws(RuntimeFailure) -> String {
        var name = try expectName()
        while skipOp(".") { name += "." + (try expectName()) }
        return name
    }

    private mutating func parseFilterChain(_ base: Expression?, startInline: Bool) throws(RuntimeFailure) -> Expression {
        var node = base
        var inline = startInline
        while inline || isOp("|") {
            if !inline { advance() }
            inline = false
            let at = offset
            let name = try parseDottedName()
            let arguments = isOp("(") ? try parseArguments() : []
            node = try checked(Expression(.filter(node, name: name, arguments), at: at, children: [node] + arguments.map(\.expression)))
        }
        guard let node else { throw unexpected(expected: "a filter name") }
        return node
    }

    private mutating func parseTest(_ base: Expression) throws(RuntimeFailure) -> Expression {
        let at = offset
        advance()
        let negated = skipName("not")
        let name = try parseDottedName()
        var arguments: [CallArgument] = []
        if isOp("(") {
            arguments = try parseArguments()
        } else {
            var startsArgument = false
            switch current.kind {
            case .name(let n): startsArgument = !["else", "or", "and"].contains(n)
            case .string, .integer, .float, .op("("), .op("["), .op("{"): startsArgument = true
            default: break
            }
            if startsArgument {
                if isName("is") { throw fail("cannot chain multiple tests with 'is'") }
                arguments = [.positional(try parsePostfix(try parsePrimary()))]
            }
        }
        var node = try checked(Expression(.test(base, name: name, arguments), at: at, children: [base] + arguments.map(\.expression)))
        if negated { node = try checked(Expression(.not(node), at: at, children: [node])) }
        return node
    }
}
