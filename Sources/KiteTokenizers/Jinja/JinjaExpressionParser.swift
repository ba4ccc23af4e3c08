/// Expression parsing for `JinjaParser`, in jinja2's precedence order (`parse_condexpr` down to
/// `parse_primary`, then postfix, filter and test chains).
extension JinjaParser {
    /// Refuses expressions nested deeper than the evaluator may recurse.
    func checked(_ expression: Expression) throws(RuntimeFailure) -> Expression {
        guard expression.depth <= Self.maximumExpressionDepth else {
            throw fail("expression nested deeper than \(Self.maximumExpressionDepth) levels", at: expression.offset)
        }
        return expression
    }

    mutating func parseTuple(withConditional: Bool = true, extraEnd: Set<String> = [], explicitParentheses: Bool = false) throws(RuntimeFailure) -> Expression {
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

    mutating func parseOr() throws(RuntimeFailure) -> Expression {
        var left = try parseAnd()
        while isName("or") {
            let at = offset
            advance()
            let right = try parseAnd()
            left = try checked(Expression(.or(left, right), at: at, children: [left, right]))
        }
        return left
    }

    mutating func parseAnd() throws(RuntimeFailure) -> Expression {
        var left = try parseNot()
        while isName("and") {
            let at = offset
            advance()
            let right = try parseNot()
            left = try checked(Expression(.and(left, right), at: at, children: [left, right]))
        }
        return left
    }

    mutating func parseNot() throws(RuntimeFailure) -> Expression {
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

    mutating func parseCompare() throws(RuntimeFailure) -> Expression {
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

    mutating func parseMath1() throws(RuntimeFailure) -> Expression {
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

    mutating func parseConcat() throws(RuntimeFailure) -> Expression {
        var parts = [try parseMath2()]
        while skipOp("~") { parts.append(try parseMath2()) }
        if parts.count == 1 { return parts[0] }
        return try checked(Expression(.concat(parts), at: parts[0].offset, children: parts))
    }

    mutating func parseMath2() throws(RuntimeFailure) -> Expression {
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

    mutating func parsePow() throws(RuntimeFailure) -> Expression {
        var left = try parseUnary(withFilter: true)
        while isOp("**") {
            let at = offset
            advance()
            let right = try parseUnary(withFilter: true)
            left = try checked(Expression(.binary(.power, left, right), at: at, children: [left, right]))
        }
        return left
    }

    mutating func parseUnary(withFilter: Bool) throws(RuntimeFailure) -> Expression {
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

    mutating func parsePrimary() throws(RuntimeFailure) -> Expression {
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

    mutating func parsePostfix(_ base: Expression) throws(RuntimeFailure) -> Expression {
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
    mutating func parseSubscript(of base: Expression) throws(RuntimeFailure) -> Expression {
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

    mutating func parseCall(_ callee: Expression) throws(RuntimeFailure) -> Expression {
        let at = offset
        let arguments = try parseArguments()
        return try checked(Expression(.call(callee, arguments), at: at, children: [callee] + arguments.map(\.expression)))
    }

    mutating func parseArguments() throws(RuntimeFailure) -> [CallArgument] {
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

    mutating func parseFilterExpression(_ base: Expression) throws(RuntimeFailure) -> Expression {
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

    mutating func parseDottedName() throws(RuntimeFailure) -> String {
        var name = try expectName()
        while skipOp(".") { name += "." + (try expectName()) }
        return name
    }

    mutating func parseFilterChain(_ base: Expression?, startInline: Bool) throws(RuntimeFailure) -> Expression {
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

    mutating func parseTest(_ base: Expression) throws(RuntimeFailure) -> Expression {
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
