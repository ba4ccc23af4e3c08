import KiteJSON

/// slime's `rm_hub/math_dapo_utils.py` (DAPO, after lm-evaluation-harness' Minerva grader).
public enum DAPOReward {
    /// `compute_score` with the default (Minerva) verifier: within the last 300 characters, the text after
    /// the last `Answer:` (case-insensitive) up to the end of its line is normalised and compared with the
    /// normalised label read as an integer. Returns slime's `{"score": ±1.0, "acc": Bool, "pred": String}`;
    /// `--reward-key score` reads it. A label that is not a number is an error (slime raises too).
    public static func score(response: String, label: JSONValue?) throws(RLError) -> JSONValue {
        let scalars = response.unicodeScalars
        let tail = String(String.UnicodeScalarView(scalars.suffix(300)))
        let (correct, prediction) = try minerva(solution: tail, groundTruth: label)
        return .object(JSONObject([("score", .double(correct ? 1.0 : -1.0)), ("acc", .bool(correct)), ("pred", .string(prediction))]))
    }

    /// `is_correct_minerva`.
    static func minerva(solution: String, groundTruth: JSONValue?) throws(RLError) -> (Bool, String) {
        let extracted = lastAnswer(in: solution) ?? "[INVALID]"
        let prediction = normalizeFinalAnswer(extracted)
        guard let groundTruth else { throw .invalidLabel(rewardType: "dapo", message: "missing (expected an integer answer)") }
        let truthText = normalizeFinalAnswer(pythonStr(groundTruth))
        guard let value = PythonString.float(truthText), value.isFinite else {
            throw .invalidLabel(rewardType: "dapo", message: "'\(truthText)' is not a number (DAPO answers are integers)")
        }
        let truth = PythonString.integerString(value < 0 ? value.rounded(.up) : value.rounded(.down))
        return (prediction == truth, prediction)
    }

    /// The group of the last match of `(?i)Answer\s*:\s*([^\n]+)` (`re.findall(...)[-1]`).
    static func lastAnswer(in text: String) -> String? {
        let c = Array(text)
        let word = Array("answer")
        var last: String?
        var i = 0
        while i + word.count <= c.count {
            guard zip(c[i..<i + word.count], word).allSatisfy({ $0.lowercased() == String($1) }) else { i += 1; continue }
            var j = i + word.count
            while j < c.count && c[j].isWhitespace { j += 1 }
            guard j < c.count && c[j] == ":" else { i += 1; continue }
            let afterColon = j + 1
            var k = afterColon
            while k < c.count && c[k].isWhitespace { k += 1 }
            // [^\n]+ from k, else backtrack into the whitespace run for a non-newline character.
            var start: Int? = k < c.count && c[k] != "\n" ? k : nil
            if start == nil {
                var q = k - 1
                while q >= afterColon {
                    if c[q] != "\n" { start = q; break }
                    q -= 1
                }
            }
            guard let groupStart = start else { i += 1; continue }
            var end = groupStart
            while end < c.count && c[end] != "\n" { end += 1 }
            last = String(c[groupStart..<end])
            i = end
        }
        return last
    }

    static let substitutions: [(String, String)] = [
        ("an ", ""), ("a ", ""), (".$", "$"), ("\\$", ""), ("\\ ", ""), (" ", ""), ("mbox", "text"),
        (",\\text{and}", ","), ("\\text{and}", ","), ("\\text{m}", "\\text{}"),
    ]

    static let removedExpressions: [String] = [
        "square", "ways", "integers", "dollars", "mph", "inches", "hours", "km", "units", "\\ldots", "sue", "points",
        "feet", "minutes", "digits", "cents", "degrees", "cm", "gm", "pounds", "meters", "meals", "edges", "students",
        "childrentickets", "multiples", "\\text{s}", "\\text{.}", "\\text{\ns}", "\\text{}^2", "\\text{}^3", "\\text{\n}",
        "\\text{}", "\\mathrm{th}", "^\\circ", "^{\\circ}", "\\;", ",\\!", "{,}", "\"", "\\dots", "<|im_end|>", "<|endoftext|>",
    ]

    /// `normalize_final_answer`.
    public static func normalizeFinalAnswer(_ input: String) -> String {
        var s = PythonString.split(input, "=").last ?? ""
        for (old, new) in substitutions { s = PythonString.replace(s, old, new) }
        for expression in removedExpressions { s = PythonString.replace(s, expression, "") }
        s = keepFirstDollarMath(s)
        s = unwrapLazy(s, prefix: "\\text{")
        s = unwrapLazy(s, prefix: "\\textbf{")
        s = unwrapLazy(s, prefix: "\\overline{")
        s = unwrapBoxedGreedy(s)
        s = fixShorthand(s)
        s = PythonString.replace(s, "$", "")
        let withoutCommas = PythonString.replace(s, ",", "")
        if PythonString.isDigits(withoutCommas) { s = withoutCommas }
        return PythonString.strip(s)
    }

    /// `re.sub(r"(.*?)(\$)(.*?)(\$)(.*)", "$\\3$", s)`: on every line with two `$`, the line becomes
    /// its first `$...$`.
    static func keepFirstDollarMath(_ s: String) -> String {
        guard s.contains("$") else { return s }
        return PythonString.split(s, "\n").map { line -> String in
            let c = Array(line)
            guard let first = c.firstIndex(of: "$"), let second = c[(first + 1)...].firstIndex(of: "$") else { return line }
            return "$" + String(c[(first + 1)..<second]) + "$"
        }.joined(separator: "\n")
    }

    /// `re.sub(r"(\\name\{)(.*?)(\})", "\\2", s)`: each `\name{...}` (up to the first `}` on its line)
    /// becomes its content.
    static func unwrapLazy(_ s: String, prefix: String) -> String {
        guard s.contains(prefix) else { return s }
        let c = Array(s), p = Array(prefix)
        var out: [Character] = []
        var i = 0
        while i < c.count {
            if i + p.count <= c.count && Array(c[i..<i + p.count]) == p {
                var j = i + p.count
                while j < c.count && c[j] != "}" && c[j] != "\n" { j += 1 }
                if j < c.count && c[j] == "}" {
                    out += c[(i + p.count)..<j]
                    i = j + 1
                    continue
                }
            }
            out.append(c[i])
            i += 1
        }
        return String(out)
    }

    /// `re.sub(r"(\\boxed\{)(.*)(\})", "\\2", s)`: from a `\boxed{` to the last `}` of its line.
    static func unwrapBoxedGreedy(_ s: String) -> String {
        guard s.contains("\\boxed{") else { return s }
        let c = Array(s), p = Array("\\boxed{")
        var out: [Character] = []
        var i = 0
        while i < c.count {
            if i + p.count <= c.count && Array(c[i..<i + p.count]) == p {
                var lineEnd = i + p.count
                while lineEnd < c.count && c[lineEnd] != "\n" { lineEnd += 1 }
                if let close = c[(i + p.count)..<lineEnd].lastIndex(of: "}") {
                    out += c[(i + p.count)..<close]
                    i = close + 1
                    continue
                }
            }
            out.append(c[i])
            i += 1
        }
        return String(out)
    }

    /// `re.sub(r"(frac)([^{])(.)", "frac{\\2}{\\3}", s)` then `re.sub(r"(sqrt)([^{])", "sqrt{\\2}", s)`.
    static func fixShorthand(_ s: String) -> String {
        var c = Array(s)
        var out: [Character] = []
        var i = 0
        let frac = Array("frac"), sqrt = Array("sqrt")
        while i < c.count {
            if i + 6 <= c.count && Array(c[i..<i + 4]) == frac && c[i + 4] != "{" && c[i + 5] != "\n" {
                out += Array("frac{") + [c[i + 4]] + Array("}{") + [c[i + 5]] + ["}"]
                i += 6
                continue
            }
            out.append(c[i])
            i += 1
        }
        c = out
        out = []
        i = 0
        while i < c.count {
            if i + 5 <= c.count && Array(c[i..<i + 4]) == sqrt && c[i + 4] != "{" {
                out += Array("sqrt{") + [c[i + 4]] + ["}"]
                i += 5
                continue
            }
            out.append(c[i])
            i += 1
        }
        return String(out)
    }
}
