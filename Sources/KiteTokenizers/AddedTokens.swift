/// A token matched as a whole before pre-tokenization (HF `AddedToken`): special tokens such as
/// `<|im_start|>` and user-defined ones such as `<think>`.
public struct AddedToken: Sendable, Hashable {
    /// The token's id in the vocabulary.
    public var id: Int
    /// The text matched in input and produced by decoding.
    public var content: String
    /// Special tokens are dropped by `decode(_:skipSpecialTokens: true)`.
    public var special: Bool
    /// Match only where the token is not inside a word (no word character on either side).
    public var singleWord: Bool
    /// Absorb the whitespace before the token.
    public var lstrip: Bool
    /// Absorb the whitespace after the token.
    public var rstrip: Bool
    /// Match in the normalized text (true) or in the raw text (false).
    public var normalized: Bool

    /// `normalized` defaults to `!special`, as in HF.
    public init(id: Int, content: String, special: Bool, singleWord: Bool = false, lstrip: Bool = false,
                rstrip: Bool = false, normalized: Bool? = nil) {
        self.id = id
        self.content = content
        self.special = special
        self.singleWord = singleWord
        self.lstrip = lstrip
        self.rstrip = rstrip
        self.normalized = normalized ?? !special
    }
}

/// Finds added tokens in text the way HF's `AddedVocabulary` does: leftmost-longest, non-overlapping, then
/// `single_word`, `lstrip` and `rstrip` applied to each match.
struct AddedTokenMatcher: Sendable {
    private struct Node: Sendable {
        var edges: [(byte: UInt8, child: Int32)] = []
        /// Index into `tokens` of the token ending here, or -1.
        var token: Int32 = -1
    }

    private var nodes: [Node] = [Node()]
    private var firstBytes = [Bool](repeating: false, count: 256)
    private(set) var tokens: [AddedToken] = []

    init(_ tokens: [AddedToken]) {
        for token in tokens where !token.content.isEmpty { add(token) }
    }

    var isEmpty: Bool { tokens.isEmpty }

    private mutating func add(_ token: AddedToken) {
        var node = 0
        for byte in token.content.utf8 {
            if let edge = nodes[node].edges.first(where: { $0.byte == byte }) {
                node = Int(edge.child)
            } else {
                nodes.append(Node())
                nodes[node].edges.append((byte, Int32(nodes.count - 1)))
                node = nodes.count - 1
            }
        }
        // The same content twice: the later declaration wins, as in HF's map.
        if nodes[node].token >= 0 {
            tokens[Int(nodes[node].token)] = token
        } else {
            tokens.append(token)
            nodes[node].token = Int32(tokens.count - 1)
        }
        if let first = token.content.utf8.first { firstBytes[Int(first)] = true }
    }

    /// The longest token starting at `position`, as (token index, end).
    private func longestMatch(_ text: UnsafeBufferPointer<UInt8>, at position: Int, upper: Int) -> (Int, Int)? {
        var node = 0
        var best: (Int, Int)?
        var index = position
        while index < upper {
            let byte = text[index]
            guard let edge = nodes[node].edges.first(where: { $0.byte == byte }) else { break }
            node = Int(edge.child)
            index += 1
            if nodes[node].token >= 0 { best = (Int(nodes[node].token), index) }
        }
        return best
    }

    /// Cuts `text[lower..<upper]` into segments: added-token matches (with their token) and the text between.
    func split(_ text: UnsafeBufferPointer<UInt8>, lower: Int, upper: Int, into segments: inout [Segment]) {
        guard !tokens.isEmpty else {
            if lower < upper { segments.append(Segment(start: lower, end: upper, token: -1)) }
            return
        }
        var previousEnd = lower
        var position = lower
        while position < upper {
            guard firstBytes[Int(text[position])], let (tokenIndex, matchEnd) = longestMatch(text, at: position, upper: upper) else {
                position += 1
                continue
            }
            let token = tokens[tokenIndex]
            var start = position
            var stop = matchEnd
            position = matchEnd
            if token.singleWord {
                let wordBefore = start > lower && isRustWord(lastScalar(text, before: start, lower: lower))
                let wordAfter = stop < upper && isRustWord(decode(text, stop, upper).scalar)
                if wordBefore || wordAfter { continue }
            }
            if token.lstrip {
                var newStart = start
                while newStart > lower {
                    let previous = previousScalarStart(text, before: newStart, lower: lower)
                    guard UnicodeClass.contains(decode(text, previous, upper).scalar, .whitespace) else { break }
                    newStart = previous
                }
                start = max(newStart, previousEnd)
            }
            if token.rstrip {
                while stop < upper {
                    let (scalar, length) = decode(text, stop, upper)
                    guard UnicodeClass.contains(scalar, .whitespace) else { break }
                    stop += length
                }
                position = max(position, stop)
            }
            if previousEnd < start { segments.append(Segment(start: previousEnd, end: start, token: -1)) }
            segments.append(Segment(start: start, end: stop, token: token.id))
            previousEnd = stop
        }
        if previousEnd < upper { segments.append(Segment(start: previousEnd, end: upper, token: -1)) }
    }

    /// Rust `regex`'s Unicode `\w` (word characters and Join_Control), which HF uses for `single_word`.
    private func isRustWord(_ scalar: UInt32) -> Bool {
        scalar == 0x200C || scalar == 0x200D || UnicodeClass.contains(scalar, .word)
    }

    private func lastScalar(_ text: UnsafeBufferPointer<UInt8>, before position: Int, lower: Int) -> UInt32 {
        decode(text, previousScalarStart(text, before: position, lower: lower), position).scalar
    }
}

/// A stretch of text: an added token (`token` is its id) or text still to be tokenized (`token` is -1).
struct Segment {
    var start: Int
    var end: Int
    var token: Int
}
