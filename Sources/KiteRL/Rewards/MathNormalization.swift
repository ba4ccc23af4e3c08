/// slime's `rm_hub/math_utils.py` (from DeepScaleR): boxed-answer extraction, Hendrycks' MATH answer
/// normalisation (`mathd_normalize_answer`), the sympy-side normalisation (`_normalize`) and the two
/// graders `grade_answer_mathd` / `grade_answer_sympy`.
public enum MathAnswer {
    // MARK: Boxed answers

    /// `last_boxed_only_string`: the last `\boxed` (else `\fbox`) with its brace-matched argument,
    /// nil when the braces never close.
    public static func lastBoxedOnlyString(_ text: String) -> String? {
        let chars = Array(text)
        guard let start = lastIndex(of: Array("\\boxed"), in: chars) ?? lastIndex(of: Array("\\fbox"), in: chars) else { return nil }
        var open = 0
        for i in start..<chars.count {
            if chars[i] == "{" { open += 1 }
            if chars[i] == "}" {
                open -= 1
                if open == 0 { return String(chars[start...i]) }
            }
        }
        return nil
    }

    /// `remove_boxed`: the argument of a string that is exactly `\boxed{...}`.
    public static func removeBoxed(_ s: String?) -> String? {
        guard let s, s.hasPrefix("\\boxed{"), s.hasSuffix("}"), s.count >= 8 else { return nil }
        return String(s.dropFirst(7).dropLast())
    }

    /// `extract_answer`: the content of the last `\boxed{...}` when the text mentions `\boxed`.
    public static func extractAnswer(_ passage: String) -> String? {
        guard passage.contains("\\boxed") else { return nil }
        return removeBoxed(lastBoxedOnlyString(passage))
    }

    static func lastIndex(of needle: [Character], in haystack: [Character]) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        var i = haystack.count - needle.count
        while i >= 0 {
            if haystack[i] == needle[0] && needle.indices.allSatisfy({ haystack[i + $0] == needle[$0] }) { return i }
            i -= 1
        }
        return nil
    }

    // MARK: Hendrycks normalisation

    struct Abort: Error {}

    /// `re.search(r"^\\text\{(?P<text>.+?)\}$", s)`: the argument of a string that is one `\text{...}`
    /// (no newline inside; `$` also matches before a final newline).
    static func unwrapText(_ s: String) -> String? {
        var body = s
        if body.hasSuffix("\n") { body.removeLast() }
        guard body.hasPrefix("\\text{"), body.hasSuffix("}"), body.count >= 8 else { return nil }
        let inner = String(body.dropFirst(6).dropLast())
        return inner.contains("\n") ? nil : inner
    }

    /// `mathd_normalize_answer`.
    public static func mathdNormalize(_ answer: String) -> String {
        var answer = PythonString.strip(answer)
        if let inner = unwrapText(answer) { answer = PythonString.strip(inner) }
        do {
            return try stripString(answer)
        } catch {
            return answer
        }
    }

    /// `_strip_string`; throws where Python raises (and `mathd_normalize_answer` falls back).
    static func stripString(_ input: String) throws(Abort) -> String {
        var s = input
        for (old, new) in [("\n", ""), ("\\!", ""), ("\\\\", "\\"), ("tfrac", "frac"), ("dfrac", "frac"), ("\\left", ""), ("\\right", ""), ("^{\\circ}", ""), ("^\\circ", ""), ("\\$", "")] {
            s = PythonString.replace(s, old, new)
        }
        if s.contains("\\text{ ") {
            let parts = PythonString.split(s, "\\text{ ")
            guard parts.count == 2 else { throw Abort() }
            s = parts[0]
        }
        s = PythonString.replace(s, "\\%", "")
        s = PythonString.replace(s, " .", " 0.")
        s = PythonString.replace(s, "{.", "{0.")
        if s.isEmpty { return s }
        if s.first == "." { s = "0" + s }
        let sides = PythonString.split(s, "=")
        if sides.count == 2 && sides[0].count <= 2 { s = sides[1] }
        s = try fixSqrt(s)
        s = PythonString.replace(s, " ", "")
        s = try fixFracs(s)
        if s == "0.5" { s = "\\frac{1}{2}" }
        return fixSlash(s)
    }

    /// `_fix_sqrt`: `\sqrt3` → `\sqrt{3}`.
    static func fixSqrt(_ s: String) throws(Abort) -> String {
        guard s.contains("\\sqrt") else { return s }
        let parts = PythonString.split(s, "\\sqrt")
        var out = parts[0]
        for part in parts.dropFirst() {
            guard let first = part.first else { throw Abort() }
            if first != "{" {
                out += "\\sqrt{" + String(first) + "}" + part.dropFirst()
            } else {
                out += "\\sqrt" + part
            }
        }
        return out
    }

    /// `_fix_fracs`: `\frac12` → `\frac{1}{2}`, `\frac1{72}` → `\frac{1}{72}`.
    static func fixFracs(_ s: String) throws(Abort) -> String {
        let parts = PythonString.split(s, "\\frac")
        var out = parts[0]
        for part in parts.dropFirst() {
            out += "\\frac"
            let chars = Array(part)
            guard let first = chars.first else { throw Abort() }
            if first == "{" {
                out += part
                continue
            }
            guard chars.count >= 2 else { return s }
            let a = String(chars[0]), b = chars[1]
            let rest = String(chars.dropFirst(2))
            if b != "{" {
                out += "{" + a + "}{" + String(b) + "}" + rest
            } else {
                out += "{" + a + "}" + String(b) + rest
            }
        }
        return out
    }

    /// `_fix_a_slash_b`: `3/4` (canonical integers) → `\frac{3}{4}`.
    static func fixSlash(_ s: String) -> String {
        let parts = PythonString.split(s, "/")
        guard parts.count == 2, isCanonicalInteger(parts[0]), isCanonicalInteger(parts[1]) else { return s }
        return "\\frac{" + parts[0] + "}{" + parts[1] + "}"
    }

    /// Text equal to `str(int(text))`.
    static func isCanonicalInteger(_ s: String) -> Bool {
        var body = Substring(s)
        if body.first == "-" { body = body.dropFirst() }
        guard let first = body.first, body.allSatisfy(PythonString.isASCIIDigit) else { return false }
        if first == "0" { return body.count == 1 && !s.hasPrefix("-") }
        return true
    }

    /// `grade_answer_mathd`: equal after Hendrycks normalisation.
    public static func gradeMathd(given: String, groundTruth: String) -> Bool {
        mathdNormalize(groundTruth) == mathdNormalize(given)
    }

    // MARK: sympy-side normalisation

    static let units = ["degree", "cm", "centimeter", "meter", "mile", "second", "minute", "hour", "day", "week", "month", "year", "foot", "feet", "inch", "yard"]

    /// `_normalize`.
    public static func normalize(_ input: String) -> String {
        var expr = input
        if let inner = unwrapText(expr) { expr = inner }
        for (old, new) in [("\\%", "%"), ("\\$", "$"), ("$", ""), ("%", ""), (" or ", " , "), (" and ", " , "), ("million", "*10^6"), ("billion", "*10^9"), ("trillion", "*10^12")] {
            expr = PythonString.replace(expr, old, new)
        }
        for unit in units { expr = removeUnit(expr, unit) }
        expr = removeCirc(expr)
        if expr.count > 0 && expr.first == "{" && expr.last == "}" { expr = String(expr.dropFirst().dropLast()) }
        expr = removeThinSpaceCommas(expr)
        if let value = PythonString.float(expr), isInt(value) {
            expr = PythonString.integerString(value.rounded(.toNearestOrEven))
        }
        if expr.contains("\\") {
            if let text = try? parseLatex(expr) { expr = text }
        }
        expr = collapseMinusSpaces(expr)
        expr = injectImplicitMixedNumber(expr)
        expr = PythonString.replace(expr, " ", "")
        expr = PythonString.replace(expr, "{", "")
        expr = PythonString.replace(expr, "}", "")
        expr = expr.lowercased()
        if strIsInt(expr), let value = PythonString.float(PythonString.replace(expr, ",", "")) {
            expr = PythonString.integerString(value < 0 ? value.rounded(.up) : value.rounded(.down))
        }
        return expr
    }

    /// `re.sub(rf"{unit}(es)?(s)? *(\^[0-9]+)?", "", expr)`.
    static func removeUnit(_ s: String, _ unit: String) -> String {
        guard s.contains(unit) else { return s }
        let chars = Array(s), u = Array(unit)
        var out: [Character] = []
        var i = 0
        while i < chars.count {
            if i + u.count <= chars.count && Array(chars[i..<i + u.count]) == u {
                var j = i + u.count
                if j + 1 < chars.count && chars[j] == "e" && chars[j + 1] == "s" { j += 2 }
                if j < chars.count && chars[j] == "s" { j += 1 }
                while j < chars.count && chars[j] == " " { j += 1 }
                if j + 1 < chars.count && chars[j] == "^" && PythonString.isASCIIDigit(chars[j + 1]) {
                    j += 1
                    while j < chars.count && PythonString.isASCIIDigit(chars[j]) { j += 1 }
                }
                i = j
                continue
            }
            out.append(chars[i])
            i += 1
        }
        return String(out)
    }

    /// `re.sub(r"\^ *\\circ", "", expr)`.
    static func removeCirc(_ s: String) -> String {
        guard s.contains("\\circ") else { return s }
        let chars = Array(s)
        var out: [Character] = []
        var i = 0
        while i < chars.count {
            if chars[i] == "^" {
                var j = i + 1
                while j < chars.count && chars[j] == " " { j += 1 }
                if j + 5 <= chars.count && String(chars[j..<j + 5]) == "\\circ" {
                    i = j + 5
                    continue
                }
            }
            out.append(chars[i])
            i += 1
        }
        return String(out)
    }

    /// `re.sub(",\\\\! *", "", expr)`.
    static func removeThinSpaceCommas(_ s: String) -> String {
        guard s.contains(",\\!") else { return s }
        var out = ""
        var rest = Substring(s)
        while let range = rest.firstRange(of: ",\\!") {
            out += rest[..<range.lowerBound]
            rest = rest[range.upperBound...].drop { $0 == " " }
        }
        return out + rest
    }

    /// `re.sub("- *", "-", expr)`.
    static func collapseMinusSpaces(_ s: String) -> String {
        var out = ""
        var skipping = false
        for c in s {
            if skipping && c == " " { continue }
            skipping = c == "-"
            out.append(c)
        }
        return out
    }

    /// `_inject_implicit_mixed_number`: `re.sub("([0-9]) +([0-9])", "\\1+\\2", s)`.
    static func injectImplicitMixedNumber(_ s: String) -> String {
        let chars = Array(s)
        var out: [Character] = []
        var i = 0
        while i < chars.count {
            if PythonString.isASCIIDigit(chars[i]) && i + 1 < chars.count && chars[i + 1] == " " {
                var j = i + 1
                while j < chars.count && chars[j] == " " { j += 1 }
                if j < chars.count && PythonString.isASCIIDigit(chars[j]) {
                    out += [chars[i], "+", chars[j]]
                    i = j + 1
                    continue
                }
            }
            out.append(chars[i])
            i += 1
        }
        return String(out)
    }

    /// `_parse_latex`: LaTeX to the text sympy reads.
    static func parseLatex(_ input: String) throws(LatexToText.Failure) -> String {
        var expr = PythonString.replace(input, "\\tfrac", "\\frac")
        expr = PythonString.replace(expr, "\\dfrac", "\\frac")
        expr = PythonString.replace(expr, "\\frac", " \\frac")
        expr = try LatexToText.convert(expr)
        for (old, new) in [("√", "sqrt"), ("π", "pi"), ("∞", "inf"), ("∪", "U"), ("·", "*"), ("×", "*")] {
            expr = PythonString.replace(expr, old, new)
        }
        return PythonString.strip(expr)
    }

    /// `_is_int`: within 1e-7 of an integer (finite only).
    static func isInt(_ x: Double) -> Bool {
        x.isFinite && abs(x - x.rounded(.toNearestOrEven)) <= 1e-7
    }

    /// `_str_is_int`.
    static func strIsInt(_ s: String) -> Bool {
        guard let value = PythonString.float(stripProperlyFormattedCommas(s)) else { return false }
        return isInt(value)
    }

    /// `_strip_properly_formatted_commas`: `re.sub(r"(\d)(,)(\d\d\d)($|\D)", r"\1\3\4")` to a fixed point.
    static func stripProperlyFormattedCommas(_ s: String) -> String {
        var current = Array(s)
        while true {
            var out: [Character] = []
            var i = 0
            var changed = false
            let c = current
            while i < c.count {
                if PythonString.isDecimalDigit(c[i]), i + 4 < c.count, c[i + 1] == ",",
                    PythonString.isDecimalDigit(c[i + 2]), PythonString.isDecimalDigit(c[i + 3]), PythonString.isDecimalDigit(c[i + 4])
                {
                    if i + 5 == c.count {
                        out += [c[i], c[i + 2], c[i + 3], c[i + 4]]
                        i += 5
                        changed = true
                        continue
                    }
                    if !PythonString.isDecimalDigit(c[i + 5]) {
                        out += [c[i], c[i + 2], c[i + 3], c[i + 4], c[i + 5]]
                        i += 6
                        changed = true
                        continue
                    }
                }
                out.append(c[i])
                i += 1
            }
            if !changed { return String(current) }
            current = out
        }
    }

    static let tupleCharacters: Set<Character> = ["(", ")", "[", "]"]

    /// `split_tuple`: the elements of `(a,b)` / `[a,b)` style text, else the text itself.
    static func splitTuple(_ input: String) -> [String] {
        let expr = Array(stripProperlyFormattedCommas(input))
        if expr.isEmpty { return [] }
        if expr.count > 2, let first = expr.first, let last = expr.last, tupleCharacters.contains(first), tupleCharacters.contains(last),
            !expr[1..<expr.count - 1].contains(where: { tupleCharacters.contains($0) })
        {
            return PythonString.split(String(expr[1..<expr.count - 1]), ",").map(PythonString.strip)
        }
        return [String(expr)]
    }

    /// `_is_frac`: `^-?[0-9]+.?/0*[1-9][0-9]*.?$`.
    static func isFrac(_ s: String) -> Bool {
        let pattern = /-?[0-9]+.?\/0*[1-9][0-9]*.?/
        if s.hasSuffix("\n") && s.dropLast().wholeMatch(of: pattern) != nil { return true }
        return s.wholeMatch(of: pattern) != nil
    }

    /// `should_allow_eval`: at most two distinct letters (after removing `sqrt` and `frac`), no `^{`,
    /// `^(`, and no powers with two or more digits or stacked powers.
    static func shouldAllowEval(_ expr: String) -> Bool {
        let stripped = PythonString.replace(PythonString.replace(expr, "sqrt", ""), "frac", "")
        if Set(stripped.filter(\.isLetter)).count > 2 { return false }
        if expr.contains("^{") || expr.contains("^(") { return false }
        let chars = Array(expr)
        for (i, c) in chars.enumerated() where c == "^" {
            var j = i + 1
            while j < chars.count && PythonString.isASCIIDigit(chars[j]) { j += 1 }
            let digits = j - i - 1
            if digits >= 2 { return false }
            if digits >= 1 && j < chars.count && chars[j] == "^" { return false }
        }
        return true
    }

    /// `are_equal_under_sympy`, with Kite's evaluator (see `MathExpression`).
    static func equalUnderSympy(_ groundTruth: String, _ given: String) -> Bool {
        guard shouldAllowEval("(\(groundTruth))-(\(given))") else { return false }
        return MathExpression.equal(groundTruth, given)
    }

    /// `grade_answer_sympy`.
    public static func gradeSympy(given: String, groundTruth: String) -> Bool {
        let truth = normalize(groundTruth)
        let answer = normalize(given)
        if truth == answer { return true }
        if answer.isEmpty { return false }
        let truthElements = splitTuple(truth)
        let givenElements = splitTuple(answer)
        if truthElements.count > 1 && (truth.first != answer.first || truth.last != answer.last) { return false }
        if truthElements.count != givenElements.count { return false }
        for (t, g) in zip(truthElements, givenElements) {
            let correct: Bool
            if isFrac(t) && isFrac(g) {
                correct = t == g
            } else if strIsInt(t) != strIsInt(g) {
                correct = false
            } else {
                correct = equalUnderSympy(t, g)
            }
            if !correct { return false }
        }
        return true
    }

    /// `grade_answer_verl` (`--rm-type math`): the last `\boxed{}` of the whole response against the
    /// label (its own `\boxed{}` extracted when present).
    public static func gradeVerl(solution: String, groundTruth: String) -> Bool {
        guard !groundTruth.isEmpty else { return false }
        var truth: String? = groundTruth
        if groundTruth.contains("\\boxed") { truth = extractAnswer(groundTruth) }
        guard let given = extractAnswer(solution) else { return false }
        guard let truth else { return false }
        return gradeMathd(given: given, groundTruth: truth) || gradeSympy(given: given, groundTruth: truth)
    }
}
