/// Text normalization before pre-tokenization (HF `normalizers`), the kinds byte-level BPE tokenizers use.
/// NFD, NFKC and NFKD need Unicode decomposition tables that the standard library does not expose without
/// Foundation; tokenizers that use them are refused at load time rather than tokenized differently.
indirect enum Normalizer: Sendable {
    /// Unicode canonical composition (Qwen2's original tokenizer.json uses it).
    case nfc
    /// Lowercase each scalar by its full lowercase mapping, without context (as Rust's `char::to_lowercase`).
    case lowercase
    case strip(left: Bool, right: Bool)
    case replace(pattern: SplitPattern, content: String)
    /// Prepend a string to non-empty text.
    case prepend(String)
    case sequence([Normalizer])

    func normalize(_ text: String) -> String {
        switch self {
        case .nfc:
            return String(decoding: text._nfcCodeUnits, as: UTF8.self)
        case .lowercase:
            var result = ""
            result.reserveCapacity(text.utf8.count)
            for scalar in text.unicodeScalars { result += scalar.properties.lowercaseMapping }
            return result
        case .strip(let left, let right):
            var scalars = Substring(text).unicodeScalars
            if left { while let first = scalars.first, first.properties.isWhitespace { scalars.removeFirst() } }
            if right { while let last = scalars.last, last.properties.isWhitespace { scalars.removeLast() } }
            return String(scalars)
        case .replace(let pattern, let content):
            return replaceAll(text, pattern: pattern, with: content)
        case .prepend(let prefix):
            return text.isEmpty ? text : prefix + text
        case .sequence(let steps):
            return steps.reduce(text) { $1.normalize($0) }
        }
    }

    private func replaceAll(_ text: String, pattern: SplitPattern, with content: String) -> String {
        var text = text
        return text.withUTF8 { buffer in
            var matches: [(Int, Int)] = []
            switch pattern.matcher {
            case .known(let known):
                known.appendMatches(in: buffer, lower: 0, upper: buffer.count, into: &matches)
            case .program(let program):
                var matcher = RegexMatcher()
                matcher.findAll(program, in: buffer, lower: 0, upper: buffer.count, into: &matches)
            }
            var result: [UInt8] = []
            result.reserveCapacity(buffer.count)
            var previous = 0
            for (start, end) in matches {
                result.append(contentsOf: buffer[previous..<start])
                result.append(contentsOf: content.utf8)
                previous = end
            }
            result.append(contentsOf: buffer[previous..<buffer.count])
            return String(decoding: result, as: UTF8.self)
        }
    }
}
