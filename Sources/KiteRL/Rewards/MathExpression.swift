#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The subset of `sympy.simplify(parse_expr(gt − given)) == 0` that slime's `are_equal_under_sympy`
/// needs for math answers, on the text `_normalize` leaves (lower-case, no spaces, `^` for powers).
///
/// Parsed as sympy's `parse_expr` with `standard_transformations + implicit_multiplication_application`
/// parses it: integers, decimals (`.5`, `5.`, `1e3`), `+ - * / ** ^`, parentheses, implicit
/// multiplication (`2x`, `2(3)`, `(1)(2)`, `x(x+1)`, `2sqrt(3)`, `sqrt(2)2`), `sqrt(...)`, `pi`, and
/// names that are not sympy's split into one-letter symbols with their digits (`xy` = x·y, `x2` = 2·x).
/// Decided as follows:
/// - without π, irrational roots or symbols: sympy's number model, exact rationals until a decimal
///   (a sympy Float, 53-bit for up to 15 significant digits) meets them, then IEEE double arithmetic, and
///   the difference must be exactly 0 (so `0.1+0.2` ≠ `0.3` and `0.5` = `1/2`, as in sympy); decimals with
///   more digits (higher-precision sympy Floats) are taken at their exact decimal value;
/// - with symbols: the difference is evaluated at three rational points and must vanish at each (exactly,
///   or within 1e-12 once decimals are involved): the polynomial/rational-function identities `simplify` proves;
/// - with π or irrational roots: evaluated in Double, equal when |difference| ≤ 1e-12 · (1 + |terms|).
/// Anything else (functions other than sqrt, sympy names such as `ln`, `oo`, `re`; factorial `!`; tuples;
/// complex results; leading-zero integers) is "not equal", as are division by zero and overflow to
/// non-finite values.
enum MathExpression {
    /// Whether `(lhs)-(rhs)` simplifies to zero.
    static func equal(_ lhs: String, _ rhs: String) -> Bool {
        guard let tokens = tokenize("(\(lhs))-(\(rhs))") else { return false }
        var parser = ExpressionParser(tokens: tokens)
        guard let tree = parser.parseAll() else { return false }
        let symbols = Array(Set(tree.symbols)).sorted()
        let points: [[Rational]] = [
            [Rational(17, 7), Rational(23, 11), Rational(-31, 13)],
            [Rational(-5, 3), Rational(41, 19), Rational(7, 2)],
            [Rational(29, 5), Rational(-3, 17), Rational(11, 23)],
        ]
        for point in points.prefix(symbols.isEmpty ? 1 : 3) {
            var values: [String: Rational] = [:]
            for (k, symbol) in symbols.enumerated() { values[symbol] = point[k % point.count] }
            switch tree.exact(values) {
            case .value(let r):
                if !r.isZero { return false }
            case .float(let d):
                if symbols.isEmpty {
                    if d != 0 { return false }
                } else {
                    var doubles: [String: Double] = [:]
                    for (symbol, value) in values { doubles[symbol] = value.double }
                    let scale = tree.approximate(doubles).scale
                    if !d.isFinite || abs(d) > 1e-12 * (1 + scale) { return false }
                }
            case .undefined:
                return false
            case .inexact:
                var doubles: [String: Double] = [:]
                for (symbol, value) in values { doubles[symbol] = value.double }
                let (difference, scale) = tree.approximate(doubles)
                guard difference.isFinite, scale.isFinite else { return false }
                if abs(difference) > 1e-12 * (1 + scale) { return false }
            }
        }
        return true
    }

    /// sympy names (lower-case, at most two distinct letters, so they pass slime's letter guard) that
    /// parse as functions or constants Kite does not evaluate.
    static let unsupportedNames: Set<String> = [
        "csc", "eye", "ff", "fft", "frac", "fu", "gff", "hn1", "hn2", "im", "jn", "li", "ln", "nan", "ntt", "oo", "re",
        "rf", "yn", "zoo", "e1", "e2",
    ]

    enum Token: Equatable {
        case number(Rational?, isFloat: Bool, double: Double)
        case symbol(String)
        case pi
        case sqrt
        case op(String)  // + - * / ** ( )
    }

    static func tokenize(_ text: String) -> [Token]? {
        let chars = Array(text)
        var raw: [Token] = []
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c == " " { i += 1; continue }
            if PythonString.isASCIIDigit(c) || (c == "." && i + 1 < chars.count && PythonString.isASCIIDigit(chars[i + 1])) {
                var j = i
                while j < chars.count && PythonString.isASCIIDigit(chars[j]) { j += 1 }
                var isFloat = false
                if j < chars.count && chars[j] == "." {
                    isFloat = true
                    j += 1
                    while j < chars.count && PythonString.isASCIIDigit(chars[j]) { j += 1 }
                }
                if j < chars.count && (chars[j] == "e" || chars[j] == "E") {
                    var k = j + 1
                    if k < chars.count && (chars[k] == "+" || chars[k] == "-") { k += 1 }
                    if k < chars.count && PythonString.isASCIIDigit(chars[k]) {
                        while k < chars.count && PythonString.isASCIIDigit(chars[k]) { k += 1 }
                        isFloat = true
                        j = k
                    }
                }
                let literal = String(chars[i..<j])
                if !isFloat && literal.count > 1 && literal.hasPrefix("0") { return nil }  // Python reads 012 oddly
                if j < chars.count && (chars[j] == "j" || chars[j] == "J" || chars[j] == "_") { return nil }
                guard let double = PythonString.float(literal) else { return nil }
                let significant = literal.prefix { $0 != "e" && $0 != "E" }.filter(\.isNumber).drop { $0 == "0" }.count
                raw.append(.number(Rational(decimal: literal), isFloat: isFloat && significant <= 15, double: double))
                i = j
                continue
            }
            if c.isLetter || c == "_" {
                var j = i
                while j < chars.count && (chars[j].isLetter || chars[j] == "_" || PythonString.isASCIIDigit(chars[j])) { j += 1 }
                let name = String(chars[i..<j])
                i = j
                switch name {
                case "pi": raw.append(.pi)
                case "sqrt": raw.append(.sqrt)
                default:
                    if unsupportedNames.contains(name) { return nil }
                    if name.contains("_") || name.count == 1 {
                        raw.append(.symbol(name))
                    } else {
                        // sympy's split_symbols: one symbol per letter, digits as numbers.
                        var k = name.startIndex
                        while k < name.endIndex {
                            let ch = name[k]
                            if PythonString.isASCIIDigit(ch) {
                                var end = k
                                while end < name.endIndex && PythonString.isASCIIDigit(name[end]) { end = name.index(after: end) }
                                let digits = String(name[k..<end])
                                raw.append(.number(Rational(decimal: digits), isFloat: false, double: Double(digits) ?? .nan))
                                k = end
                            } else {
                                raw.append(.symbol(String(ch)))
                                k = name.index(after: k)
                            }
                        }
                    }
                }
                continue
            }
            if c == "*" && i + 1 < chars.count && chars[i + 1] == "*" {
                raw.append(.op("**"))
                i += 2
                continue
            }
            if c == "/" && i + 1 < chars.count && chars[i + 1] == "/" { return nil }
            switch c {
            case "+", "-", "*", "/", "(", ")": raw.append(.op(String(c)))
            case "^": raw.append(.op("**"))
            default: return nil
            }
            i += 1
        }
        // Implicit multiplication between an operand's end and the next operand's start.
        var out: [Token] = []
        for token in raw {
            if let previous = out.last, endsOperand(previous), startsOperand(token) { out.append(.op("*")) }
            out.append(token)
        }
        return out
    }

    static func endsOperand(_ t: Token) -> Bool {
        switch t {
        case .number, .symbol, .pi: return true
        case .op(let o): return o == ")"
        case .sqrt: return false
        }
    }

    static func startsOperand(_ t: Token) -> Bool {
        switch t {
        case .number, .symbol, .pi, .sqrt: return true
        case .op(let o): return o == "("
        }
    }
}

/// An exact rational with overflow detection (nil results mean "too large to keep exact").
struct Rational: Equatable, Hashable {
    var numerator: Int
    var denominator: Int  // > 0, coprime with numerator

    /// n/d in lowest terms; callers pass d ≠ 0 and neither equal to Int.min (see `make`).
    init(_ n: Int, _ d: Int) {
        let g = Rational.gcd(abs(n), abs(d))
        let sign = d < 0 ? -1 : 1
        numerator = sign * n / max(g, 1)
        denominator = sign * d / max(g, 1)
    }

    /// n/d, or nil where Int arithmetic would trap (Int.min) or d is 0.
    static func make(_ n: Int, _ d: Int) -> Rational? {
        guard d != 0, n != Int.min, d != Int.min else { return nil }
        return Rational(n, d)
    }

    /// The exact value of a decimal literal (digits, optional fraction, optional exponent); nil if too large.
    init?(decimal text: String) {
        var mantissa = text.lowercased()
        var exponent = 0
        if let e = mantissa.firstIndex(of: "e") {
            guard let value = Int(mantissa[mantissa.index(after: e)...]), abs(value) < 1000 else { return nil }
            exponent = value
            mantissa = String(mantissa[..<e])
        }
        var digits = mantissa
        if let dot = mantissa.firstIndex(of: ".") {
            let fraction = mantissa[mantissa.index(after: dot)...]
            exponent -= fraction.count
            digits = String(mantissa[..<dot]) + fraction
        }
        guard abs(exponent) <= 18 else { return nil }
        var value = 0
        for ch in digits {
            guard let d = ch.wholeNumberValue else { return nil }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(d)
            if o1 || o2 { return nil }
            value = s
        }
        var power = 1
        for _ in 0..<abs(exponent) { power *= 10 }
        if exponent >= 0 {
            let (v, o) = value.multipliedReportingOverflow(by: power)
            if o { return nil }
            guard let r = Rational.make(v, 1) else { return nil }
            self = r
        } else {
            guard let r = Rational.make(value, power) else { return nil }
            self = r
        }
    }

    static func gcd(_ a: Int, _ b: Int) -> Int {
        var (a, b) = (a, b)
        while b != 0 { (a, b) = (b, a % b) }
        return a
    }

    var isZero: Bool { numerator == 0 }
    var isInteger: Bool { denominator == 1 }
    var double: Double { Double(numerator) / Double(denominator) }

    static func combine(_ a: Int, _ b: Int, _ c: Int, _ d: Int, subtract: Bool) -> Rational? {
        // a/b ± c/d
        let (ad, o1) = a.multipliedReportingOverflow(by: d)
        let (cb, o2) = c.multipliedReportingOverflow(by: b)
        let (bd, o3) = b.multipliedReportingOverflow(by: d)
        let (n, o4) = subtract ? ad.subtractingReportingOverflow(cb) : ad.addingReportingOverflow(cb)
        if o1 || o2 || o3 || o4 { return nil }
        return make(n, bd)
    }

    static func + (a: Rational, b: Rational) -> Rational? { combine(a.numerator, a.denominator, b.numerator, b.denominator, subtract: false) }
    static func - (a: Rational, b: Rational) -> Rational? { combine(a.numerator, a.denominator, b.numerator, b.denominator, subtract: true) }
    static func * (a: Rational, b: Rational) -> Rational? {
        let (n, o1) = a.numerator.multipliedReportingOverflow(by: b.numerator)
        let (d, o2) = a.denominator.multipliedReportingOverflow(by: b.denominator)
        return o1 || o2 ? nil : make(n, d)
    }
    /// nil on overflow; callers check for a zero divisor first.
    static func / (a: Rational, b: Rational) -> Rational? {
        let (n, o1) = a.numerator.multipliedReportingOverflow(by: b.denominator)
        let (d, o2) = a.denominator.multipliedReportingOverflow(by: b.numerator)
        return o1 || o2 ? nil : make(n, d)
    }

    /// The exact square root when numerator and denominator are perfect squares.
    var exactSquareRoot: Rational? {
        guard numerator >= 0 else { return nil }
        func root(_ v: Int) -> Int? {
            var r = Int(Double(v).squareRoot())
            func square(_ x: Int) -> Int { let (p, o) = x.multipliedReportingOverflow(by: x); return o ? Int.max : p }
            while r > 0 && square(r) > v { r -= 1 }
            while square(r + 1) <= v && square(r + 1) != Int.max { r += 1 }
            return square(r) == v ? r : nil
        }
        guard let n = root(numerator), let d = root(denominator) else { return nil }
        return Rational(n, d)
    }
}

indirect enum ExpressionNode {
    case number(Rational?, double: Double, isFloat: Bool)
    case symbol(String)
    case pi
    case sqrt(ExpressionNode)
    case negate(ExpressionNode)
    case binary(String, ExpressionNode, ExpressionNode)

    var symbols: [String] {
        switch self {
        case .symbol(let s): return [s]
        case .number, .pi: return []
        case .sqrt(let a), .negate(let a): return a.symbols
        case .binary(_, let a, let b): return a.symbols + b.symbols
        }
    }

    enum Exact {
        /// An exact rational.
        case value(Rational)
        /// A sympy Float (53-bit): decimals taint the arithmetic they meet.
        case float(Double)
        /// Irrational, or too large to keep exact: decide numerically.
        case inexact
        /// Division by zero, or a complex value.
        case undefined

        var double: Double? {
            switch self {
            case .value(let r): return r.double
            case .float(let d): return d
            default: return nil
            }
        }
    }

    func exact(_ values: [String: Rational]) -> Exact {
        func lift(_ r: Rational?) -> Exact { r.map { .value($0) } ?? .inexact }
        switch self {
        case .number(let r, let d, let isFloat): return isFloat ? .float(d) : lift(r)
        case .symbol(let s): return lift(values[s])
        case .pi: return .inexact
        case .sqrt(let a):
            switch a.exact(values) {
            case .value(let r):
                if r.numerator < 0 { return .undefined }
                return lift(r.exactSquareRoot)
            case .float(let d):
                return d < 0 ? .undefined : .float(d.squareRoot())
            case let other: return other
            }
        case .negate(let a):
            switch a.exact(values) {
            case .value(let r): return lift(Rational.make(-r.numerator, r.denominator))
            case .float(let d): return .float(-d)
            case let other: return other
            }
        case .binary(let op, let a, let b):
            let x = a.exact(values), y = b.exact(values)
            if case .undefined = x { return .undefined }
            if case .undefined = y { return .undefined }
            if case .inexact = x { return .inexact }
            if case .inexact = y { return .inexact }
            guard case .value(let l) = x, case .value(let r) = y else {
                guard let l = x.double, let r = y.double else { return .inexact }
                switch op {
                case "+": return .float(l + r)
                case "-": return .float(l - r)
                case "*": return .float(l * r)
                case "/": return r == 0 ? .undefined : .float(l / r)
                default: return (l < 0 && r != r.rounded()) ? .undefined : .float(pow(l, r))
                }
            }
            switch op {
            case "+": return lift(l + r)
            case "-": return lift(l - r)
            case "*": return lift(l * r)
            case "/": return r.isZero ? .undefined : lift(l / r)
            default:
                if r.isInteger {
                    guard abs(r.numerator) <= 64 else { return .inexact }
                    if r.numerator < 0 && l.isZero { return .undefined }
                    var result: Rational? = Rational(1, 1)
                    for _ in 0..<abs(r.numerator) { result = result.flatMap { $0 * l } }
                    guard let power = result else { return .inexact }
                    return r.numerator < 0 ? lift(Rational(1, 1) / power) : .value(power)
                }
                if l.numerator < 0 { return .undefined }
                if r.denominator == 2, let root = l.exactSquareRoot, abs(r.numerator) <= 64 {
                    var result: Rational? = Rational(1, 1)
                    for _ in 0..<abs(r.numerator) { result = result.flatMap { $0 * root } }
                    guard let power = result else { return .inexact }
                    if r.numerator < 0 { return power.isZero ? .undefined : lift(Rational(1, 1) / power) }
                    return .value(power)
                }
                return .inexact
            }
        }
    }

    /// The value in Double and the largest magnitude met on the way (for a relative tolerance).
    func approximate(_ values: [String: Double]) -> (value: Double, scale: Double) {
        switch self {
        case .number(_, let d, _): return (d, abs(d))
        case .symbol(let s): let v = values[s] ?? .nan; return (v, abs(v))
        case .pi: return (Double.pi, Double.pi)
        case .sqrt(let a):
            let (v, s) = a.approximate(values)
            let r = v < 0 ? Double.nan : v.squareRoot()
            return (r, max(s, abs(r)))
        case .negate(let a): let (v, s) = a.approximate(values); return (-v, s)
        case .binary(let op, let a, let b):
            let (x, sx) = a.approximate(values), (y, sy) = b.approximate(values)
            let v: Double
            switch op {
            case "+": v = x + y
            case "-": v = x - y
            case "*": v = x * y
            case "/": v = y == 0 ? .nan : x / y
            default: v = (x < 0 && y != y.rounded()) ? .nan : pow(x, y)
            }
            return (v, max(sx, sy, abs(v)))
        }
    }
}

/// Python's grammar for the tokens above: `+`/`-` terms, `*`/`/` factors, unary signs, right-associative
/// `**` whose exponent may carry a sign, parenthesised groups and `sqrt(...)` calls.
struct ExpressionParser {
    var tokens: [MathExpression.Token]
    var i = 0
    /// Nesting depth, bounded so that a pathological answer cannot exhaust the stack.
    var depth = 0
    static let maximumDepth = 200

    mutating func parseAll() -> ExpressionNode? {
        guard let e = expression(), i == tokens.count else { return nil }
        return e
    }

    func peek(_ op: String) -> Bool {
        i < tokens.count && tokens[i] == .op(op)
    }

    mutating func expression() -> ExpressionNode? {
        guard var left = term() else { return nil }
        while peek("+") || peek("-") {
            guard case .op(let op) = tokens[i] else { return nil }
            i += 1
            guard let right = term() else { return nil }
            left = .binary(op, left, right)
        }
        return left
    }

    mutating func term() -> ExpressionNode? {
        guard var left = factor() else { return nil }
        while peek("*") || peek("/") {
            guard case .op(let op) = tokens[i] else { return nil }
            i += 1
            guard let right = factor() else { return nil }
            left = .binary(op, left, right)
        }
        return left
    }

    mutating func factor() -> ExpressionNode? {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maximumDepth else { return nil }
        if peek("-") {
            i += 1
            return factor().map { .negate($0) }
        }
        if peek("+") {
            i += 1
            return factor()
        }
        return power()
    }

    mutating func power() -> ExpressionNode? {
        guard let base = atom() else { return nil }
        if peek("**") {
            i += 1
            guard let exponent = factor() else { return nil }
            return .binary("**", base, exponent)
        }
        return base
    }

    mutating func atom() -> ExpressionNode? {
        guard i < tokens.count else { return nil }
        let token = tokens[i]
        i += 1
        switch token {
        case .number(let r, let isFloat, let d): return .number(r, double: d, isFloat: isFloat)
        case .symbol(let s): return .symbol(s)
        case .pi: return .pi
        case .sqrt:
            guard peek("(") else { return nil }
            i += 1
            guard let inner = expression(), peek(")") else { return nil }
            i += 1
            return .sqrt(inner)
        case .op("("):
            guard let inner = expression(), peek(")") else { return nil }
            i += 1
            return inner
        case .op: return nil
        }
    }
}
