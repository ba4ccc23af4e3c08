/// Static checks over a parsed template.

/// Collects the variable names an AST reads (used to decide which implicit macro parameters exist).
enum NameCollector {
    static func collect(_ nodes: [Node], into names: inout Set<String>) {
        for node in nodes { collect(node, into: &names) }
    }

    static func collect(_ node: Node, into names: inout Set<String>) {
        switch node {
        case .text, .loopControl: break
        case .output(let e), .assign(_, let e, _): collect(e, into: &names)
        case .conditional(let branches, let otherwise):
            for branch in branches {
                collect(branch.test, into: &names)
                collect(branch.body, into: &names)
            }
            collect(otherwise, into: &names)
        case .forLoop(let loop):
            collect(loop.iterable, into: &names)
            if let c = loop.condition { collect(c, into: &names) }
            collect(loop.body, into: &names)
            collect(loop.otherwise, into: &names)
        case .assignBlock(_, let filter, let body, _):
            if let filter { collect(filter, into: &names) }
            collect(body, into: &names)
        case .macro(let macro):
            // Nested macros' own implicit names do not count, but their free variables do.
            collect(macro.body, into: &names)
        case .callBlock(let call, let caller):
            collect(call, into: &names)
            collect(caller.body, into: &names)
        case .filterBlock(let filter, let body):
            collect(filter, into: &names)
            collect(body, into: &names)
        case .with(let assignments, let body):
            for assignment in assignments { collect(assignment.value, into: &names) }
            collect(body, into: &names)
        case .scoped(let body): collect(body, into: &names)
        }
    }

    static func collect(_ e: Expression, into names: inout Set<String>) {
        switch e.kind {
        case .literal: break
        case .name(let n): names.insert(n)
        case .list(let items), .tuple(let items), .concat(let items):
            for item in items { collect(item, into: &names) }
        case .dict(let pairs):
            for pair in pairs {
                collect(pair.key, into: &names)
                collect(pair.value, into: &names)
            }
        case .attribute(let base, _), .unary(_, let base), .not(let base): collect(base, into: &names)
        case .item(let a, let b), .binary(_, let a, let b), .and(let a, let b), .or(let a, let b):
            collect(a, into: &names)
            collect(b, into: &names)
        case .slice(let base, let start, let stop, let step):
            collect(base, into: &names)
            for part in [start, stop, step] { if let part { collect(part, into: &names) } }
        case .call(let callee, let args):
            collect(callee, into: &names)
            for arg in args { collect(arg.expression, into: &names) }
        case .filter(let base, _, let args):
            if let base { collect(base, into: &names) }
            for arg in args { collect(arg.expression, into: &names) }
        case .test(let base, _, let args):
            collect(base, into: &names)
            for arg in args { collect(arg.expression, into: &names) }
        case .compare(let first, let rest):
            collect(first, into: &names)
            for operand in rest { collect(operand.operand, into: &names) }
        case .conditional(let test, let then, let otherwise):
            collect(test, into: &names)
            collect(then, into: &names)
            if let otherwise { collect(otherwise, into: &names) }
        }
    }
}

/// jinja2 rejects an unknown filter or test when it compiles the template, except inside `if`
/// conditions and bodies and inline `if` expressions, where the error waits until the expression runs.
enum FilterCheck {
    static func check(_ nodes: [Node], soft: Bool) throws(RuntimeFailure) {
        for node in nodes { try check(node, soft: soft) }
    }

    static func check(_ node: Node, soft: Bool) throws(RuntimeFailure) {
        switch node {
        case .text, .loopControl: break
        case .output(let e), .assign(_, let e, _): try check(e, soft: soft)
        case .conditional(let branches, let otherwise):
            for branch in branches {
                try check(branch.test, soft: true)
                try check(branch.body, soft: true)
            }
            try check(otherwise, soft: true)
        case .forLoop(let loop):
            try check(loop.iterable, soft: soft)
            if let c = loop.condition { try check(c, soft: false) }
            try check(loop.body, soft: false)
            try check(loop.otherwise, soft: false)
        case .assignBlock(_, let filter, let body, _):
            if let filter { try check(filter, soft: soft) }
            try check(body, soft: false)
        case .macro(let macro):
            for parameter in macro.parameters { if let d = parameter.defaultValue { try check(d, soft: false) } }
            try check(macro.body, soft: false)
        case .callBlock(let call, let caller):
            try check(call, soft: soft)
            try check(caller.body, soft: false)
        case .filterBlock(let filter, let body):
            try check(filter, soft: soft)
            try check(body, soft: false)
        case .with(let assignments, let body):
            for assignment in assignments { try check(assignment.value, soft: soft) }
            try check(body, soft: false)
        case .scoped(let body): try check(body, soft: false)
        }
    }

    static func check(_ e: Expression, soft: Bool) throws(RuntimeFailure) {
        switch e.kind {
        case .literal, .name: break
        case .list(let items), .tuple(let items), .concat(let items):
            for item in items { try check(item, soft: soft) }
        case .dict(let pairs):
            for pair in pairs {
                try check(pair.key, soft: soft)
                try check(pair.value, soft: soft)
            }
        case .attribute(let base, _), .unary(_, let base), .not(let base): try check(base, soft: soft)
        case .item(let a, let b), .binary(_, let a, let b), .and(let a, let b), .or(let a, let b):
            try check(a, soft: soft)
            try check(b, soft: soft)
        case .slice(let base, let start, let stop, let step):
            try check(base, soft: soft)
            for part in [start, stop, step] { if let part { try check(part, soft: soft) } }
        case .call(let callee, let args):
            try check(callee, soft: soft)
            for arg in args { try check(arg.expression, soft: soft) }
        case .filter(let base, let name, let args):
            if !soft && JinjaFilters.table[name] == nil {
                throw RuntimeFailure("no filter named \(pythonRepr(name))", kind: .syntax, at: e.offset)
            }
            if let base { try check(base, soft: soft) }
            for arg in args { try check(arg.expression, soft: soft) }
        case .test(let base, let name, let args):
            if !soft && JinjaTests.table[name] == nil {
                throw RuntimeFailure("no test named \(pythonRepr(name))", kind: .syntax, at: e.offset)
            }
            try check(base, soft: soft)
            for arg in args { try check(arg.expression, soft: soft) }
        case .compare(let first, let rest):
            try check(first, soft: soft)
            for operand in rest { try check(operand.operand, soft: soft) }
        case .conditional(let test, let then, let otherwise):
            try check(test, soft: true)
            try check(then, soft: true)
            if let otherwise { try check(otherwise, soft: true) }
        }
    }
}
