import KiteTokenizers

/// A Hugging Face-compatible tokenizer (`KiteTokenizers.Tokenizer`) as the engine uses it: prompts
/// encoded as transformers encodes text (special tokens added by the post-processor), outputs decoded
/// incrementally, and every end-of-generation token (EOS and end-of-turn tokens) ending a sample.
public struct TokenizerAdapter: EngineTokenizer {
    public let tokenizer: Tokenizer

    public init(_ tokenizer: Tokenizer) {
        self.tokenizer = tokenizer
    }

    public var vocabularySize: Int { tokenizer.vocabularySize }
    public var endOfSequenceTokenIDs: [Int32] { tokenizer.endOfGenerationTokenIDs.map(Int32.init) }

    public func encode(_ text: String) throws -> [Int32] {
        tokenizer.encode(text, addSpecialTokens: true).map(Int32.init)
    }

    public func decode(_ tokens: [Int32], skipSpecialTokens: Bool) throws -> String {
        try tokenizer.decode(tokens.map(Int.init), skipSpecialTokens: skipSpecialTokens)
    }

    public func makeIncrementalDecoder(skipSpecialTokens: Bool) -> any IncrementalDecoder {
        Decoder(detokenizer: tokenizer.makeStreamingDetokenizer(skipSpecialTokens: skipSpecialTokens))
    }

    struct Decoder: IncrementalDecoder {
        var detokenizer: StreamingDetokenizer

        mutating func push(_ token: Int32) throws -> String {
            try detokenizer.append(Int(token))
        }

        mutating func finish() -> String {
            detokenizer.finish()
        }
    }
}
