/// The part of pylatexenc's `LatexNodes2Text().latex_to_text` that slime's sympy grader depends on
/// (`math_utils._parse_latex`): groups lose their braces, `\frac{a}{b}` becomes `a/b` (no parentheses),
/// `\sqrt[n]{x}` becomes `√(x)`, symbol macros become their Unicode characters, text-style macros keep
/// their argument, math delimiters vanish, and unknown macros render as nothing (their brace groups
/// still render). Whitespace after a letter macro is eaten, as pylatexenc does.
///
/// Not covered (rendered differently from pylatexenc, or rejected): environments (`\begin{...}`),
/// accents other than `\hat`, `\vec`, `\bar`, and pylatexenc's full symbol table beyond the ~150
/// macros listed here. Throws where pylatexenc raises (`\sqrt` without an argument).
enum LatexToText {
    struct Failure: Error {}

    static func convert(_ latex: String) throws(Failure) -> String {
        var parser = Parser(chars: Array(latex))
        return try parser.renderSequence(until: nil)
    }

    static let symbols: [String: String] = [
        "pi": "π", "infty": "∞", "cup": "∪", "cap": "∩", "cdot": "·", "times": "×", "div": "÷", "pm": "±", "mp": "∓",
        "leq": "≤", "le": "≤", "geq": "≥", "ge": "≥", "neq": "≠", "approx": "≈", "circ": "∘", "in": "∈", "notin": "∉",
        "cdots": "⋯", "ldots": "…", "dots": "…", "vdots": "⋮", "angle": "∠", "setminus": "∖", "emptyset": "∅",
        "varnothing": "∅", "ast": "∗", "star": "⋆", "prime": "'", "mid": "|", "lvert": "|", "rvert": "|", "vert": "|",
        "langle": "⟨", "rangle": "⟩", "lfloor": "⌊", "rfloor": "⌋", "lceil": "⌈", "rceil": "⌉", "quad": "  ",
        "qquad": "    ", "to": "→", "rightarrow": "→", "Rightarrow": "⇒", "leftarrow": "←", "sim": "∼", "simeq": "≃",
        "equiv": "≡", "cong": "≅", "propto": "∝", "perp": "⊥", "parallel": "∥", "partial": "∂", "nabla": "∇",
        "forall": "∀", "exists": "∃", "wedge": "∧", "vee": "∨", "oplus": "⊕", "otimes": "⊗", "subset": "⊂",
        "subseteq": "⊆", "supset": "⊃", "supseteq": "⊇", "sin": "sin", "cos": "cos", "tan": "tan", "arcsin": "arcsin",
        "arccos": "arccos", "arctan": "arctan", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh", "log": "log", "ln": "ln",
        "exp": "exp", "lim": "lim", "max": "max", "min": "min", "sup": "sup", "inf": "inf", "alpha": "α", "beta": "β",
        "gamma": "γ", "delta": "δ", "epsilon": "ϵ", "varepsilon": "ε", "zeta": "ζ", "eta": "η", "theta": "θ",
        "vartheta": "ϑ", "iota": "ι", "kappa": "κ", "lambda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ", "omicron": "ο",
        "rho": "ρ", "varrho": "ϱ", "sigma": "σ", "varsigma": "ς", "tau": "τ", "upsilon": "υ", "phi": "ϕ", "varphi": "φ",
        "chi": "χ", "psi": "ψ", "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Xi": "Ξ",
        "Pi": "Π", "Sigma": "Σ", "Upsilon": "Υ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω", "dagger": "†", "ell": "ℓ",
        "hbar": "ħ", "aleph": "ℵ", "surd": "√",
    ]

    /// Macros whose single argument renders as plain text.
    static let textMacros: Set<String> = [
        "text", "textbf", "textit", "textrm", "textsf", "texttt", "emph", "mathrm", "mathbf", "mathit", "mathsf",
        "mathtt", "mathcal", "operatorname", "overline", "underline", "boxed", "fbox",
    ]

    static let accents: [String: String] = ["hat": "\u{0302}", "vec": "\u{20D7}", "bar": "\u{0305}"]
    static let blackboard: [Character: String] = ["R": "ℝ", "N": "ℕ", "Z": "ℤ", "Q": "ℚ", "C": "ℂ"]

    struct Parser {
        var chars: [Character]
        var i = 0
        /// Group and macro nesting, bounded so that a pathological answer cannot exhaust the stack.
        var depth = 0
        static let maximumDepth = 200

        mutating func renderSequence(until terminator: Character?) throws(Failure) -> String {
            var out = ""
            while i < chars.count {
                let c = chars[i]
                if let terminator, c == terminator {
                    i += 1
                    return out
                }
                out += try renderNode()
            }
            return out
        }

        /// Renders one node: a macro with its arguments, a group, or a character.
        mutating func renderNode() throws(Failure) -> String {
            depth += 1
            defer { depth -= 1 }
            guard depth <= Self.maximumDepth else { throw Failure() }
            let c = chars[i]
            switch c {
            case "\\": return try renderMacro()
            case "{":
                i += 1
                return try renderSequence(until: "}")
            case "}":
                i += 1
                return ""
            case "$":
                i += 1
                return ""
            case "~":
                i += 1
                return "\u{00A0}"
            case "%":
                while i < chars.count && chars[i] != "\n" { i += 1 }
                if i < chars.count { i += 1 }
                return ""
            default:
                i += 1
                return String(c)
            }
        }

        mutating func skipWhitespace() {
            while i < chars.count && (chars[i] == " " || chars[i] == "\t" || chars[i] == "\n") { i += 1 }
        }

        /// A macro argument: a group, a macro, or a single character; nil at the end of input.
        mutating func argument() throws(Failure) -> String? {
            skipWhitespace()
            guard i < chars.count else { return nil }
            if chars[i] == "}" { return nil }
            return try renderNode()
        }

        mutating func renderMacro() throws(Failure) -> String {
            i += 1  // the backslash
            guard i < chars.count else { return "" }
            let first = chars[i]
            if !first.isLetter {
                i += 1
                switch first {
                case ",", ";", ":", " ": return " "
                case "!", "(", ")": return ""
                case "[": return "\n    "
                case "]": return "\n"
                case "\\": return "\n"
                default: return String(first)  // \% \$ \{ \} \& \# \_
                }
            }
            var name = ""
            while i < chars.count && chars[i].isLetter && chars[i].isASCII {
                name.append(chars[i])
                i += 1
            }
            skipWhitespace()
            if let symbol = LatexToText.symbols[name] { return symbol }
            if LatexToText.textMacros.contains(name) { return try argument() ?? "" }
            if let accent = LatexToText.accents[name] { return (try argument() ?? "") + accent }
            switch name {
            case "frac":
                // pylatexenc formats "%s/%s" % args; with a missing argument its template leaks through.
                guard let numerator = try argument() else { return "%s/%s" }
                guard let denominator = try argument() else { return "%s/%s" + numerator }
                return numerator + "/" + denominator
            case "sqrt":
                skipWhitespace()
                if i < chars.count && chars[i] == "[" {
                    while i < chars.count && chars[i] != "]" { i += 1 }
                    if i < chars.count { i += 1 }
                }
                guard let radicand = try argument() else { throw Failure() }
                return "√(" + radicand + ")"
            case "mathbb":
                let content = try argument() ?? ""
                if content.count == 1, let first = content.first, let letter = LatexToText.blackboard[first] { return letter }
                return content
            case "mbox", "hbox":
                _ = try argument()
                return ""
            default:
                return ""  // unknown macros and \left, \right, \displaystyle, ... render as nothing
            }
        }
    }
}
