#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Python's arithmetic operators and `%` string formatting, with Python's results (true division, floor
/// division and modulo rounding toward negative infinity, int/float promotion) and its error messages.
/// Results that would grow without bound (string repetition, integer overflow) are refused.
enum BinaryOperator: String, Sendable {
    case add = "+", subtract = "-", multiply = "*", divide = "/", floorDivide = "//", modulo = "%", power = "**"
}

/// The most UTF-8 bytes one string may hold while rendering.
let maximumStringBytes = 16 << 20
/// The most items one list may hold while rendering.
let maximumListItems = 1 << 20

func checkedSize(_ bytes: Int) throws(RuntimeFailure) {
    if bytes > maximumStringBytes {
        throw RuntimeFailure("MemoryError: string larger than \(maximumStringBytes) bytes")
    }
}

func checkedCount(_ items: Int) throws(RuntimeFailure) {
    if items > maximumListItems {
        throw RuntimeFailure("MemoryError: list longer than \(maximumListItems) items")
    }
}

extension JinjaValue {
    static func binary(_ op: BinaryOperator, _ a: JinjaValue, _ b: JinjaValue) throws(RuntimeFailure) -> JinjaValue {
        if case .undefined(let u) = a { throw u.failure }
        // `'%s' % undefined` formats the undefined value (as ''); every other use of one fails.
        if op == .modulo, case .string(let format) = a { return .string(try pythonPercentFormat(format, b)) }
        if case .undefined(let u) = b { throw u.failure }
        if let x = a.numeric, let y = b.numeric { return try arithmetic(op, x, y) }
        switch (op, a, b) {
        case (.add, .string(let x), .string(let y)):
            try checkedSize(x.utf8.count + y.utf8.count)
            return .string(x + y)
        case (.add, .list(let x), .list(let y)):
            try checkedCount(x.items.count + y.items.count)
            return .list(try JinjaList(x.items + y.items))
        case (.add, .tuple(let x), .tuple(let y)):
            try checkedCount(x.items.count + y.items.count)
            return .tuple(try JinjaList(x.items + y.items))
        case (.add, .string, _), (.add, .list, _), (.add, .tuple, _):
            throw RuntimeFailure("TypeError: can only concatenate \(a.pythonTypeName) (not \"\(b.pythonTypeName)\") to \(a.pythonTypeName)")
        case (.multiply, .string, _), (.multiply, .list, _), (.multiply, .tuple, _):
            return try repeatSequence(a, b)
        case (.multiply, _, .string), (.multiply, _, .list), (.multiply, _, .tuple):
            return try repeatSequence(b, a)
        case (.modulo, .string(let format), _):
            return .string(try pythonPercentFormat(format, b))
        default:
            let name = op == .power ? "** or pow()" : op.rawValue
            throw RuntimeFailure("TypeError: unsupported operand type(s) for \(name): '\(a.pythonTypeName)' and '\(b.pythonTypeName)'")
        }
    }

    private static func repeatSequence(_ sequence: JinjaValue, _ times: JinjaValue) throws(RuntimeFailure) -> JinjaValue {
        let count: Int
        switch times {
        case .int(let i): count = max(0, i)
        case .bool(let b): count = b ? 1 : 0
        default: throw RuntimeFailure("TypeError: can't multiply sequence by non-int of type '\(times.pythonTypeName)'")
        }
        switch sequence {
        case .string(let s):
            let (total, overflow) = s.utf8.count.multipliedReportingOverflow(by: count)
            if overflow { try checkedSize(Int.max) }
            try checkedSize(total)
            return .string(String(repeating: s, count: count))
        case .list(let l), .tuple(let l):
            let (total, overflow) = l.items.count.multipliedReportingOverflow(by: count)
            if overflow { try checkedCount(Int.max) }
            try checkedCount(total)
            var items: [JinjaValue] = []
            items.reserveCapacity(total)
            for _ in 0..<count { items.append(contentsOf: l.items) }
            let list = try JinjaList(items)
            if case .tuple = sequence { return .tuple(list) }
            return .list(list)
        default:
            throw RuntimeFailure("TypeError: unsupported operand type(s) for *")
        }
    }

    private static func overflow() -> RuntimeFailure {
        RuntimeFailure("OverflowError: integer result does not fit in 64 bits")
    }

    private static func arithmetic(_ op: BinaryOperator, _ a: Number, _ b: Number) throws(RuntimeFailure) -> JinjaValue {
        if case .int(let x) = a, case .int(let y) = b {
            switch op {
            case .add:
                let (r, o) = x.addingReportingOverflow(y)
                if o { throw overflow() }
                return .int(r)
            case .subtract:
                let (r, o) = x.subtractingReportingOverflow(y)
                if o { throw overflow() }
                return .int(r)
            case .multiply:
                let (r, o) = x.multipliedReportingOverflow(by: y)
                if o { throw overflow() }
                return .int(r)
            case .divide:
                guard y != 0 else { throw RuntimeFailure("ZeroDivisionError: division by zero") }
                return .float(Double(x) / Double(y))
            case .floorDivide:
                guard y != 0 else { throw RuntimeFailure("ZeroDivisionError: integer division or modulo by zero") }
                if x == Int.min && y == -1 { throw overflow() }
                let q = x / y
                return .int((x % y != 0 && (x < 0) != (y < 0)) ? q - 1 : q)
            case .modulo:
                guard y != 0 else { throw RuntimeFailure("ZeroDivisionError: integer modulo by zero") }
                if y == -1 { return .int(0) }
                let r = x % y
                return .int((r != 0 && (r < 0) != (y < 0)) ? r + y : r)
            case .power:
                if y < 0 {
                    guard x != 0 else { throw RuntimeFailure("ZeroDivisionError: 0.0 cannot be raised to a negative power") }
                    return .float(pow(Double(x), Double(y)))
                }
                var result = 1
                var base = x
                var exponent = y
                while exponent > 0 {
                    if exponent & 1 == 1 {
                        let (r, o) = result.multipliedReportingOverflow(by: base)
                        if o { throw overflow() }
                        result = r
                    }
                    exponent >>= 1
                    if exponent > 0 {
                        let (sq, o) = base.multipliedReportingOverflow(by: base)
                        if o { throw overflow() }
                        base = sq
                    }
                }
                return .int(result)
            }
        }
        let x = a.double
        let y = b.double
        switch op {
        case .add: return .float(x + y)
        case .subtract: return .float(x - y)
        case .multiply: return .float(x * y)
        case .divide:
            guard y != 0 else { throw RuntimeFailure("ZeroDivisionError: float division by zero") }
            return .float(x / y)
        case .floorDivide:
            guard y != 0 else { throw RuntimeFailure("ZeroDivisionError: float floor division by zero") }
            return .float(pythonFloatFloorDivide(x, y))
        case .modulo:
            guard y != 0 else { throw RuntimeFailure("ZeroDivisionError: float modulo") }
            return .float(pythonFloatModulo(x, y))
        case .power:
            if x == 0 && y < 0 { throw RuntimeFailure("ZeroDivisionError: 0.0 cannot be raised to a negative power") }
            if x < 0 && y.rounded() != y { throw RuntimeFailure("ValueError: complex results are not supported") }
            let result = pow(x, y)
            if result.isInfinite && x.isFinite && y.isFinite {
                throw RuntimeFailure("OverflowError: (34, 'Numerical result out of range')")
            }
            return .float(result)
        }
    }

    static func unary(negate: Bool, _ value: JinjaValue) throws(RuntimeFailure) -> JinjaValue {
        if case .undefined(let u) = value { throw u.failure }
        switch value.numeric {
        case .int(let i)?:
            if !negate { return .int(i) }
            guard i != Int.min else { throw overflow() }
            return .int(-i)
        case .float(let d)?: return .float(negate ? -d : d)
        case nil: throw RuntimeFailure("TypeError: bad operand type for unary \(negate ? "-" : "+"): '\(value.pythonTypeName)'")
        }
    }
}

/// Python's float `%` (CPython's `float_rem`): the result takes the sign of the divisor.
func pythonFloatModulo(_ x: Double, _ y: Double) -> Double {
    var r = x.truncatingRemainder(dividingBy: y)
    if r != 0 {
        if (y < 0) != (r < 0) { r += y }
    } else {
        r = Double(signOf: y, magnitudeOf: 0)
    }
    return r
}

/// Python's float `//` (CPython's `float_floor_div`).
func pythonFloatFloorDivide(_ x: Double, _ y: Double) -> Double {
    let mod = x.truncatingRemainder(dividingBy: y)
    var div = (x - mod) / y
    if mod != 0 && (y < 0) != (mod < 0) { div -= 1 }
    guard div != 0 else { return Double(signOf: x / y, magnitudeOf: 0) }
    var floorDiv = div.rounded(.down)
    if div - floorDiv > 0.5 { floorDiv += 1 }
    return floorDiv
}

private func unsupportedConversion(_ conversion: Unicode.Scalar, at index: Int) -> RuntimeFailure {
    let hex = String(conversion.value, radix: 16)
    // CPython shows the character only when it is printable ASCII.
    let shown = conversion.value >= 32 && conversion.value < 127 ? String(conversion) : "?"
    return RuntimeFailure("ValueError: unsupported format character '\(shown)' (0x\(hex)) at index \(index)")
}

/// Python's printf-style `format % values` for the conversions templates use: `%s %r %a %d %i %u %x %X
/// %o %c %%` with flags, width and precision, and `%(name)s` with a dict. Float conversions are refused
/// rather than rounded differently from Python.
func pythonPercentFormat(_ format: String, _ values: JinjaValue) throws(RuntimeFailure) -> String {
    var positional: [JinjaValue]
    // Python treats any argument with __getitem__ (other than a tuple or str) as a mapping: it then
    // never complains about unused arguments.
    var mapping: JinjaValue? = nil
    switch values {
    case .tuple(let t): positional = t.items
    case .dict, .list, .undefined, .range:
        positional = [values]
        mapping = values
    default: positional = [values]
    }
    var next = 0
    var out = ""
    let scalars = Array(format.unicodeScalars)
    var i = 0
    func takeArgument() throws(RuntimeFailure) -> JinjaValue {
        guard next < positional.count else { throw RuntimeFailure("TypeError: not enough arguments for format string") }
        next += 1
        return positional[next - 1]
    }
    var usedMapping = false
    while i < scalars.count {
        guard scalars[i] == "%" else {
            out.unicodeScalars.append(scalars[i])
            i += 1
            continue
        }
        i += 1
        guard i < scalars.count else { throw RuntimeFailure("ValueError: incomplete format") }
        let specifierStart = i
        var argument: JinjaValue? = nil
        if scalars[i] == "(" {
            guard let mapping else { throw RuntimeFailure("TypeError: format requires a mapping") }
            // The key ends at the matching parenthesis: `%(a(b))s` has the key `a(b)`.
            var j = i + 1
            var depth = 1
            while j < scalars.count {
                if scalars[j] == "(" { depth += 1 }
                if scalars[j] == ")" {
                    depth -= 1
                    if depth == 0 { break }
                }
                j += 1
            }
            guard j < scalars.count else { throw RuntimeFailure("ValueError: incomplete format key") }
            let key = PythonString.string(scalars[(i + 1)..<j])
            switch mapping {
            case .dict(let dict):
                guard let value = dict.get(key) else { throw RuntimeFailure("KeyError: \(pythonRepr(key))") }
                argument = value
            case .undefined(let u):
                throw u.failure
            default:
                throw RuntimeFailure("TypeError: \(mapping.pythonTypeName) indices must be integers or slices, not str")
            }
            usedMapping = true
            i = j + 1
        }
        var leftAlign = false, zeroPad = false, plus = false, space = false
        while i < scalars.count, "-0+ #".unicodeScalars.contains(scalars[i]) {
            switch scalars[i] {
            case "-": leftAlign = true
            case "0": zeroPad = true
            case "+": plus = true
            case " ": space = true
            default: break
            }
            i += 1
        }
        // `*` takes the width or precision from the arguments.
        func starArgument() throws(RuntimeFailure) -> Int {
            guard case .int(let n)? = try takeArgument().numeric else { throw RuntimeFailure("TypeError: * wants int") }
            return n
        }
        var width = 0
        if i < scalars.count && scalars[i] == "*" {
            width = try starArgument()
            if width < 0 {
                leftAlign = true
                width = -width
            }
            width = min(width, 1 << 20)
            i += 1
        } else {
            while i < scalars.count, let digit = Int(String(scalars[i])) {
                width = min(width * 10 + digit, 1 << 20)
                i += 1
            }
        }
        var precision: Int? = nil
        if i < scalars.count && scalars[i] == "." {
            i += 1
            var p = 0
            if i < scalars.count && scalars[i] == "*" {
                p = max(0, min(try starArgument(), 1 << 20))
                i += 1
            } else {
                while i < scalars.count, let digit = Int(String(scalars[i])) {
                    p = min(p * 10 + digit, 1 << 20)
                    i += 1
                }
            }
            precision = p
        }
        // Length modifiers are accepted and ignored, as in Python.
        while i < scalars.count, "hlL".unicodeScalars.contains(scalars[i]) { i += 1 }
        guard i < scalars.count else { throw RuntimeFailure("ValueError: incomplete format") }
        let conversion = scalars[i]
        let conversionIndex = i
        i += 1
        if conversion == "%" && conversionIndex == specifierStart {
            out += "%"
            continue
        }
        if conversion == "%" {
            // `%` after flags or a width is a conversion like any other: it takes an argument, then fails.
            if argument == nil { _ = try takeArgument() }
            throw unsupportedConversion(conversion, at: conversionIndex)
        }
        let value: JinjaValue
        if let argument { value = argument } else { value = try takeArgument() }
        var body: String
        var numeric = false
        let floatConversions = "eEfFgG".unicodeScalars
        if case .undefined(let u) = value, !"sra".unicodeScalars.contains(conversion) {
            guard "diuxXoc".unicodeScalars.contains(conversion) || floatConversions.contains(conversion) else {
                throw unsupportedConversion(conversion, at: conversionIndex)
            }
            throw u.failure
        }
        if floatConversions.contains(conversion) {
            guard value.numeric != nil else {
                throw RuntimeFailure("TypeError: must be real number, not \(value.pythonTypeName)")
            }
            // Python rounds the exact binary value to the requested digits; Kite does not reimplement
            // that, so it refuses rather than print a different number.
            throw RuntimeFailure("ValueError: %\(conversion) float formatting is not supported by Kite's template engine")
        }
        switch conversion {
        case "s": body = try value.pythonStr()
        case "r", "a": body = try value.pythonRepr()
        case "d", "i", "u", "x", "X", "o":
            let number: Int
            switch value.numeric {
            case .int(let n)?: number = n
            case .float(let d)?:
                guard conversion == "d" || conversion == "i" || conversion == "u", d.isFinite, abs(d) < 9.2e18 else {
                    throw RuntimeFailure("TypeError: %\(conversion) format: an integer is required, not float")
                }
                number = Int(d)
            case nil:
                let needs = "diu".unicodeScalars.contains(conversion) ? "a real number" : "an integer"
                throw RuntimeFailure("TypeError: %\(conversion) format: \(needs) is required, not \(value.pythonTypeName)")
            }
            let radix = conversion == "x" || conversion == "X" ? 16 : (conversion == "o" ? 8 : 10)
            body = String(number.magnitude, radix: radix, uppercase: conversion == "X")
            if let precision, body.count < precision { body = String(repeating: "0", count: precision - body.count) + body }
            if number < 0 { body = "-" + body } else if plus { body = "+" + body } else if space { body = " " + body }
            numeric = true
        case "c":
            switch value {
            case .int(let n):
                guard let scalar = Unicode.Scalar(UInt32(clamping: max(0, n))) else {
                    throw RuntimeFailure("OverflowError: %c arg not in range(0x110000)")
                }
                body = String(scalar)
            case .string(let s) where s.unicodeScalars.count == 1: body = s
            default: throw RuntimeFailure("TypeError: %c requires int or char")
            }
        default:
            throw unsupportedConversion(conversion, at: conversionIndex)
        }
        if let precision, !numeric, conversion != "c" {
            body = PythonString.string(body.unicodeScalars.prefix(precision))
        }
        let length = body.unicodeScalars.count
        if width > length {
            let padding = width - length
            if leftAlign {
                body += String(repeating: " ", count: padding)
            } else if zeroPad && numeric {
                let sign = body.hasPrefix("-") || body.hasPrefix("+") || body.hasPrefix(" ") ? String(body.removeFirst()) : ""
                body = sign + String(repeating: "0", count: padding) + body
            } else {
                body = String(repeating: " ", count: padding) + body
            }
        }
        out += body
        try checkedSize(out.utf8.count)
    }
    if !usedMapping && mapping == nil && next < positional.count {
        throw RuntimeFailure("TypeError: not all arguments converted during string formatting")
    }
    return out
}
