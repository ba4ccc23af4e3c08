/// How many arguments the Python methods accept, with CPython's wording for calls that do not fit
/// (which differs between methods: `str.upper() takes no arguments (1 given)`, `split() takes at most 2
/// arguments (3 given)`, `replace expected at least 2 arguments, got 1`).
extension PythonMethods {
    enum ArityStyle {
        /// `str.upper() takes no arguments (N given)`
        case none
        /// `str.join() takes exactly one argument (N given)`
        case exactlyOne
        /// `split() takes at most 2 arguments (N given)`, `find() takes at least 1 argument (N given)`
        case takes
        /// `replace expected at least 2 arguments, got N`
        case expected
    }

    struct Arity {
        let style: ArityStyle
        let minimum: Int
        let maximum: Int
        /// Keyword names accepted; nil when the method takes no keyword arguments.
        let keywords: [String]?

        init(_ style: ArityStyle, _ minimum: Int = 0, _ maximum: Int = 0, keywords: [String]? = nil) {
            self.style = style
            self.minimum = minimum
            self.maximum = maximum
            self.keywords = keywords
        }
    }

    static let arities: [String: Arity] = [
        "upper": Arity(.none), "lower": Arity(.none), "casefold": Arity(.none), "title": Arity(.none),
        "capitalize": Arity(.none), "swapcase": Arity(.none), "isalpha": Arity(.none), "isdigit": Arity(.none),
        "isdecimal": Arity(.none), "isnumeric": Arity(.none), "isalnum": Arity(.none), "isspace": Arity(.none),
        "islower": Arity(.none), "isupper": Arity(.none), "items": Arity(.none), "keys": Arity(.none),
        "values": Arity(.none), "copy": Arity(.none),
        "join": Arity(.exactlyOne, 1, 1), "zfill": Arity(.exactlyOne, 1, 1), "partition": Arity(.exactlyOne, 1, 1),
        "rpartition": Arity(.exactlyOne, 1, 1), "removeprefix": Arity(.exactlyOne, 1, 1),
        "removesuffix": Arity(.exactlyOne, 1, 1),
        "split": Arity(.takes, 0, 2, keywords: ["sep", "maxsplit"]), "rsplit": Arity(.takes, 0, 2, keywords: ["sep", "maxsplit"]),
        "splitlines": Arity(.takes, 0, 1, keywords: ["keepends"]), "strip": Arity(.takes, 0, 1),
        "lstrip": Arity(.takes, 0, 1), "rstrip": Arity(.takes, 0, 1), "startswith": Arity(.takes, 1, 3),
        "endswith": Arity(.takes, 1, 3), "find": Arity(.takes, 1, 3), "rfind": Arity(.takes, 1, 3),
        "rindex": Arity(.takes, 1, 3),
        "replace": Arity(.expected, 2, 3), "center": Arity(.expected, 1, 2), "ljust": Arity(.expected, 1, 2),
        "rjust": Arity(.expected, 1, 2), "get": Arity(.expected, 1, 2),
    ]

    /// Checks a call of `value.name(...)` against the method's signature.
    static func checkArity(_ value: JinjaValue, _ name: String, _ arguments: JinjaArguments) throws(RuntimeFailure) {
        let type = value.pythonTypeName
        var arity = arities[name]
        // `count` and `index` differ between str and list/tuple.
        if name == "count" { arity = type == "str" ? Arity(.takes, 1, 3) : Arity(.exactlyOne, 1, 1) }
        if name == "index" { arity = type == "str" ? Arity(.takes, 1, 3) : Arity(.expected, 1, 3) }
        guard let arity else { return }
        if let first = arguments.keywords.first {
            guard let accepted = arity.keywords else {
                throw RuntimeFailure("TypeError: \(type).\(name)() takes no keyword arguments")
            }
            guard accepted.contains(first.name) else {
                throw RuntimeFailure("TypeError: \(pythonRepr(first.name)) is an invalid keyword argument for \(name)()")
            }
        }
        let given = arguments.positional.count + arguments.keywords.count
        func plural(_ n: Int) -> String { n == 1 ? "argument" : "arguments" }
        switch arity.style {
        case .none:
            if given > 0 { throw RuntimeFailure("TypeError: \(type).\(name)() takes no arguments (\(given) given)") }
        case .exactlyOne:
            if given != 1 { throw RuntimeFailure("TypeError: \(type).\(name)() takes exactly one argument (\(given) given)") }
        case .takes:
            if given < arity.minimum {
                throw RuntimeFailure("TypeError: \(name)() takes at least \(arity.minimum) \(plural(arity.minimum)) (\(given) given)")
            }
            if given > arity.maximum {
                throw RuntimeFailure("TypeError: \(name)() takes at most \(arity.maximum) \(plural(arity.maximum)) (\(given) given)")
            }
        case .expected:
            if given < arity.minimum {
                throw RuntimeFailure("TypeError: \(name) expected at least \(arity.minimum) \(plural(arity.minimum)), got \(given)")
            }
            if given > arity.maximum {
                throw RuntimeFailure("TypeError: \(name) expected at most \(arity.maximum) \(plural(arity.maximum)), got \(given)")
            }
        }
    }
}
