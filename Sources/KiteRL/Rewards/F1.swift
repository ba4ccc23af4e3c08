/// slime's `rm_hub/f1.py` (SQuAD-style token F1): lower-case, drop ASCII punctuation, drop the articles
/// a/an/the, collapse whitespace; yes/no/noanswer must match exactly; otherwise the F1 of the token
/// multisets. Returns (f1, precision, recall), all 0 when nothing overlaps.
public func f1Score(prediction: String?, groundTruth: String) -> (f1: Double, precision: Double, recall: Double) {
    guard let prediction else { return (0, 0, 0) }
    let p = normalizeF1Answer(prediction), g = normalizeF1Answer(groundTruth)
    let special: Set<String> = ["yes", "no", "noanswer"]
    if special.contains(p) && p != g { return (0, 0, 0) }
    if special.contains(g) && p != g { return (0, 0, 0) }
    let predictionTokens = pythonWhitespaceSplit(p), truthTokens = pythonWhitespaceSplit(g)
    var counts: [String: Int] = [:]
    for token in truthTokens { counts[token, default: 0] += 1 }
    var same = 0
    for token in predictionTokens {
        guard let available = counts[token], available > 0 else { continue }
        counts[token] = available - 1
        same += 1
    }
    if same == 0 { return (0, 0, 0) }
    let precision = Double(same) / Double(predictionTokens.count)
    let recall = Double(same) / Double(truthTokens.count)
    return (2 * precision * recall / (precision + recall), precision, recall)
}

/// `normalize_answer` of `f1.py`.
func normalizeF1Answer(_ s: String) -> String {
    let punctuation = Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
    let lowered = s.lowercased().filter { !punctuation.contains($0) }
    return pythonWhitespaceSplit(removeArticles(lowered)).joined(separator: " ")
}

/// `re.sub(r"\b(a|an|the)\b", " ", text)` with Python's Unicode word characters.
func removeArticles(_ text: String) -> String {
    let c = Array(text)
    func isWord(_ ch: Character) -> Bool { ch.isLetter || ch.isNumber || ch == "_" }
    var out: [Character] = []
    var i = 0
    outer: while i < c.count {
        if i == 0 || !isWord(c[i - 1]) {
            for article in ["a", "an", "the"] {
                let a = Array(article)
                if i + a.count <= c.count && Array(c[i..<i + a.count]) == a && (i + a.count == c.count || !isWord(c[i + a.count])) {
                    out.append(" ")
                    i += a.count
                    continue outer
                }
            }
        }
        out.append(c[i])
        i += 1
    }
    return String(out)
}

/// Python's `str.split()`.
func pythonWhitespaceSplit(_ s: String) -> [String] {
    s.split(whereSeparator: \.isWhitespace).map(String.init)
}
