import KiteEngine

/// A tokenizer of single characters for the synthetic tasks: one token per character of `alphabet`, plus
/// beginning- and end-of-sequence tokens. Text outside the alphabet is an error, not silently dropped.
public struct CharacterTokenizer: EngineTokenizer {
    public let alphabet: [Character]
    private let ids: [Character: Int32]
    public static let beginOfSequence: Int32 = 0
    public static let endOfSequence: Int32 = 1

    public init(alphabet: String) {
        self.alphabet = Array(alphabet)
        var ids: [Character: Int32] = [:]
        for (index, character) in alphabet.enumerated() { ids[character] = Int32(index + 2) }
        self.ids = ids
    }

    public var vocabularySize: Int { alphabet.count + 2 }
    public var endOfSequenceTokenIDs: [Int32] { [Self.endOfSequence] }

    /// The characters' ids, without BOS (the caller adds it where the prompt starts).
    public func encode(_ text: String) throws -> [Int32] {
        try text.enumerated().map { position, character in
            guard let id = ids[character] else {
                throw EngineError.invalidRequest(field: "text", detail: "character '\(character)' at position \(position) is not in the alphabet '\(String(alphabet))'")
            }
            return id
        }
    }

    public func decode(_ tokens: [Int32], skipSpecialTokens: Bool) throws -> String {
        var text = ""
        for (position, token) in tokens.enumerated() {
            switch token {
            case Self.beginOfSequence: if !skipSpecialTokens { text += "<bos>" }
            case Self.endOfSequence: if !skipSpecialTokens { text += "<eos>" }
            case 2..<Int32(vocabularySize): text.append(alphabet[Int(token) - 2])
            default: throw EngineError.invalidRequest(field: "tokens", detail: "token \(token) at position \(position) is outside the vocabulary (0..<\(vocabularySize))")
            }
        }
        return text
    }

    public func makeIncrementalDecoder(skipSpecialTokens: Bool) -> any IncrementalDecoder {
        Decoder(tokenizer: self, skipSpecialTokens: skipSpecialTokens)
    }

    struct Decoder: IncrementalDecoder {
        let tokenizer: CharacterTokenizer
        let skipSpecialTokens: Bool

        mutating func push(_ token: Int32) throws -> String {
            try tokenizer.decode([token], skipSpecialTokens: skipSpecialTokens)
        }

        mutating func finish() -> String { "" }
    }
}
