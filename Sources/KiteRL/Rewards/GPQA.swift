import KiteJSON

/// slime's `compute_gpqa_reward` (`rm_hub/gpqa.py`): a multiple-choice grader. The correct letter comes
/// from `metadata.correct_letter`, a one-letter label, an integer label (index into the valid letters), or
/// the label matching one of `metadata.choices`; the chosen letter is read from the response after the
/// last `</think>` ("answer is X", "X is correct", "final answer: X", else the last standalone capital).
/// Falls back to finding the correct choice's text in the response. Returns 1.0 or 0.0.
public func gpqaReward(response: String?, label: JSONValue?, metadata: JSONObject) -> Double {
    guard let response else { return 0 }
    var metadata = metadata
    var choices: [JSONValue]?
    switch metadata["choices"] {
    case .object(let o)?: choices = o.entries.map(\.value)
    case .array(let a)?: choices = a
    case .string(let s)?: choices = s.map { .string(String($0)) }
    case nil, .null?: choices = nil
    case let other?: choices = [other]
    }
    let validLetters: [String]
    if pythonTruthy(metadata["valid_letters"]), let value = metadata["valid_letters"] {
        switch value {
        case .array(let a): validLetters = a.map { pythonStr($0).uppercased() }
        case .string(let s): validLetters = s.map { String($0).uppercased() }
        default: validLetters = [pythonStr(value).uppercased()]
        }
    } else if let choices, !choices.isEmpty {
        validLetters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ".prefix(choices.count).map(String.init)
    } else {
        validLetters = "ABCDEFGHIJ".map(String.init)
    }
    var correctLetter: String? = metadata["correct_letter"]?.stringValue.map { PythonString.strip($0).uppercased() }
    var labelText: String?
    switch label {
    case .string(let s)?:
        labelText = PythonString.strip(s)
        if let text = labelText, text.count == 1, validLetters.contains(text.uppercased()), !(correctLetter.map { !$0.isEmpty } ?? false) {
            correctLetter = text.uppercased()
        }
    case .int(let i)?:
        if i >= 0 && i < validLetters.count { correctLetter = validLetters[i] }
    case .double(let d)?:
        if d > -1 && d < Double(validLetters.count) { correctLetter = validLetters[max(0, Int(d))] }
    case .bool(let b)?:
        let i = b ? 1 : 0
        if i < validLetters.count { correctLetter = validLetters[i] }
    default: break
    }
    let hasCorrect = !(correctLetter ?? "").isEmpty
    if !hasCorrect, let choices, !choices.isEmpty, let text = labelText, !text.isEmpty {
        let normalizedLabel = normalizeGPQAText(text)
        for (i, choice) in choices.enumerated() where normalizeGPQAText(pythonStr(choice)) == normalizedLabel {
            correctLetter = i < validLetters.count ? validLetters[i] : nil
            if metadata["correct_answer"] == nil { metadata["correct_answer"] = choice }
            break
        }
    }
    let correct = (correctLetter ?? "").isEmpty ? nil : correctLetter
    let extracted = extractGPQALetter(response, validLetters: validLetters)
    if let extracted, let correct { return extracted == correct ? 1 : 0 }

    var candidates: [String] = []
    if let correct, let choices, let index = validLetters.firstIndex(of: correct), index < choices.count {
        candidates.append(pythonStr(choices[index]))
    }
    for key in ["correct_answer", "answer_text"] where pythonTruthy(metadata[key]) {
        if let value = metadata[key] { candidates.append(pythonStr(value)) }
    }
    if let text = labelText, !text.isEmpty { candidates.append(text) }
    let normalizedResponse = normalizeGPQAText(stripChainOfThought(response))
    for target in Set(candidates.filter { !$0.isEmpty }.map(normalizeGPQAText)) where !target.isEmpty {
        if normalizedResponse.contains(target) { return 1 }
    }
    if let extracted, correct == nil, let text = labelText, !text.isEmpty {
        return extracted == PythonString.strip(text).uppercased() ? 1 : 0
    }
    return 0
}

/// `_strip_chain_of_thought`: the text after the last `</think>`.
func stripChainOfThought(_ text: String) -> String {
    guard text.contains("</think>") else { return text }
    return PythonString.split(text, "</think>").last ?? ""
}

/// `_normalize_text`: lower-case, runs of characters other than a-z and 0-9 become one space, stripped.
func normalizeGPQAText(_ text: String) -> String {
    text.lowercased()
        .split(whereSeparator: { !($0.isASCII && ($0.isLowercase || $0.isNumber)) })
        .joined(separator: " ")
}

/// `_extract_letter_from_response`.
func extractGPQALetter(_ response: String, validLetters: [String]) -> String? {
    if response.isEmpty { return nil }
    let c = Array(stripChainOfThought(response))
    let valid = Set(validLetters.map { $0.uppercased() })
    func matches(_ word: String, at i: Int) -> Bool {
        let w = Array(word)
        guard i >= 0, i + w.count <= c.count else { return false }
        return zip(c[i..<i + w.count], w).allSatisfy { $0.lowercased() == String($1) }
    }
    func whitespaceEnd(_ i: Int) -> Int {
        var j = i
        while j < c.count && c[j].isWhitespace { j += 1 }
        return j
    }
    func isLetter(_ i: Int) -> Bool { i < c.count && c[i].isASCII && c[i].isLetter }
    // `\s*(?:is|:)?\s*([A-Z])` from position a, in the regex engine's backtracking order.
    func tail(_ a: Int) -> Character? {
        for w1 in stride(from: whitespaceEnd(a), through: a, by: -1) {
            for option in ["is", ":", ""] {
                guard option.isEmpty || matches(option, at: w1) else { continue }
                let b = w1 + option.count
                for w2 in stride(from: whitespaceEnd(b), through: b, by: -1) where isLetter(w2) { return c[w2] }
            }
        }
        return nil
    }
    let patterns: [(Int) -> Character?] = [
        { i in
            for word in ["answer", "option", "choice"] where matches(word, at: i) {
                if let letter = tail(i + word.count) { return letter }
            }
            return nil
        },
        { i in
            guard isLetter(i) else { return nil }
            let p = whitespaceEnd(i + 1)
            guard matches("is", at: p) else { return nil }
            let q = whitespaceEnd(p + 2)
            if matches("the", at: q) && matches("correct", at: whitespaceEnd(q + 3)) { return c[i] }
            return matches("correct", at: q) ? c[i] : nil
        },
        { i in
            guard matches("final", at: i) else { return nil }
            let a = whitespaceEnd(i + 5)
            for word in ["answer", "option"] where matches(word, at: a) {
                if let letter = tail(a + word.count) { return letter }
            }
            return nil
        },
    ]
    for pattern in patterns {
        for i in 0..<max(c.count, 1) {
            if let letter = pattern(i) {
                let upper = String(letter).uppercased()
                if valid.contains(upper) { return upper }
                break
            }
        }
    }
    func isWord(_ ch: Character) -> Bool { ch.isLetter || ch.isNumber || ch == "_" }
    for i in stride(from: c.count - 1, through: 0, by: -1) {
        let ch = c[i]
        guard ch.isASCII && ch.isUppercase else { continue }
        if (i == 0 || !isWord(c[i - 1])) && (i + 1 == c.count || !isWord(c[i + 1])) && valid.contains(String(ch)) { return String(ch) }
    }
    return nil
}
