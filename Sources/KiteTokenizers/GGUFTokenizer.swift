/// GGUF token types (`tokenizer.ggml.token_type`), as llama.cpp defines them.
public enum GGUFTokenType: Int32, Sendable {
    case undefined = 0
    case normal = 1
    case unknown = 2
    /// Special tokens such as `<|im_start|>` or `<｜User｜>`: atomic, dropped when decoding without specials.
    case control = 3
    /// Added tokens such as `<think>`: atomic, kept when decoding.
    case userDefined = 4
    case unused = 5
    case byte = 6
}

/// The tokenizer part of a GGUF file's metadata, as plain values (the keys `tokenizer.ggml.*`). The GGUF
/// reader fills it; tests and tools can build one by hand.
public struct GGUFTokenizerMetadata: Sendable {
    /// `tokenizer.ggml.model`: "gpt2" for byte-level BPE.
    public var model: String
    /// `tokenizer.ggml.pre`: which pre-tokenizer regexes apply ("smollm", "qwen2", "llama-bpe", ...).
    public var pre: String?
    /// `tokenizer.ggml.tokens`: byte-level spellings; control and user-defined tokens as plain text.
    public var tokens: [String]
    /// `tokenizer.ggml.merges`: "left right", in rank order.
    public var merges: [String]
    /// `tokenizer.ggml.token_type`, one per token (all normal when absent).
    public var tokenTypes: [Int32]?
    /// `tokenizer.ggml.bos_token_id`, `eos_token_id`, `padding_token_id`, `unknown_token_id`.
    public var bosTokenID: Int?
    public var eosTokenID: Int?
    public var paddingTokenID: Int?
    public var unknownTokenID: Int?
    /// `tokenizer.ggml.add_bos_token` / `add_eos_token` (absent: llama.cpp's default for the pre-tokenizer).
    public var addBOS: Bool?
    /// `tokenizer.ggml.add_eos_token` (absent: false).
    public var addEOS: Bool?
    /// `tokenizer.chat_template`.
    public var chatTemplate: String?
    /// Names the file in errors.
    public var source: String

    /// Metadata from plain values; see the properties for what each means.
    public init(
        model: String, pre: String?, tokens: [String], merges: [String], tokenTypes: [Int32]? = nil,
        bosTokenID: Int? = nil, eosTokenID: Int? = nil, paddingTokenID: Int? = nil, unknownTokenID: Int? = nil,
        addBOS: Bool? = nil, addEOS: Bool? = nil, chatTemplate: String? = nil, source: String = "GGUF metadata"
    ) {
        self.model = model
        self.pre = pre
        self.tokens = tokens
        self.merges = merges
        self.tokenTypes = tokenTypes
        self.bosTokenID = bosTokenID
        self.eosTokenID = eosTokenID
        self.paddingTokenID = paddingTokenID
        self.unknownTokenID = unknownTokenID
        self.addBOS = addBOS
        self.addEOS = addEOS
        self.chatTemplate = chatTemplate
        self.source = source
    }
}

extension Tokenizer {
    /// A byte-level BPE tokenizer from plain arrays as GGUF stores them: `tokens` (byte-level spellings, control
    /// and user-defined tokens as plain text), `merges` ("left right"), `tokenTypes` (`GGUFTokenType` raw
    /// values) and the llama.cpp pre-tokenizer name (`preTokenizer`: "smollm", "qwen2", "llama-bpe", ...).
    public convenience init(
        tokens: [String], merges: [String], tokenTypes: [Int32]? = nil, preTokenizer: String,
        bosTokenID: Int? = nil, eosTokenID: Int? = nil, padTokenID: Int? = nil, unknownTokenID: Int? = nil,
        addBOS: Bool? = nil, addEOS: Bool? = nil, chatTemplate: String? = nil
    ) throws(TokenizerError) {
        try self.init(ggufMetadata: GGUFTokenizerMetadata(
            model: "gpt2", pre: preTokenizer, tokens: tokens, merges: merges, tokenTypes: tokenTypes,
            bosTokenID: bosTokenID, eosTokenID: eosTokenID, paddingTokenID: padTokenID, unknownTokenID: unknownTokenID,
            addBOS: addBOS, addEOS: addEOS, chatTemplate: chatTemplate, source: "tokenizer arrays"))
    }

    /// A tokenizer from GGUF metadata, read as llama.cpp reads it: every token keeps its GGUF id; control
    /// (type 3) and user-defined (type 4) tokens are matched whole inside text (control tokens are special);
    /// `tokenizer.ggml.pre` selects the pre-tokenizer. (transformers' own GGUF conversion differs: it moves
    /// some special tokens to new ids and drops SmolLM's digit splitting.)
    public convenience init(ggufMetadata metadata: GGUFTokenizerMetadata) throws(TokenizerError) {
        let source = metadata.source
        guard metadata.model == "gpt2" else {
            throw TokenizerError(.unsupported, source: source, field: "tokenizer.ggml.model",
                                 "tokenizer model \(quoted(metadata.model)) is not supported (only \"gpt2\", byte-level BPE)")
        }
        let pre = metadata.pre ?? "default"
        guard let (preTokenizer, ignoreMerges, defaultAddBOS) = try GGUFPreTokenizers.named(pre) else {
            throw TokenizerError(.unsupported, source: source, field: "tokenizer.ggml.pre",
                                 "pre-tokenizer \(quoted(pre)) is not supported (known: \(GGUFPreTokenizers.knownNames.joined(separator: ", ")))")
        }
        if let types = metadata.tokenTypes, types.count != metadata.tokens.count {
            throw TokenizerError(.invalidField, source: source, field: "tokenizer.ggml.token_type",
                                 "has \(types.count) entries for \(metadata.tokens.count) tokens")
        }
        var parts = TokenizerParts(source: source)
        parts.mergesField = "tokenizer.ggml.merges"
        parts.vocabulary.reserveCapacity(metadata.tokens.count)
        for (id, token) in metadata.tokens.enumerated() {
            // llama.cpp renames empty tokens so that they cannot collide.
            let spelling = token.isEmpty ? "[EMPTY_\(id)]" : token
            parts.vocabulary.append((spelling, id))
            let type = metadata.tokenTypes.map { GGUFTokenType(rawValue: $0[id]) } ?? .normal
            if type == .control || type == .userDefined {
                parts.addedTokens.append(AddedToken(id: id, content: spelling, special: type == .control, normalized: false))
            }
        }
        parts.merges.reserveCapacity(metadata.merges.count)
        for (rank, merge) in metadata.merges.enumerated() {
            // Split at the first space after the first character, so that a token that is a space can merge.
            let scalars = merge.unicodeScalars
            guard let first = scalars.indices.first,
                  let space = scalars[scalars.index(after: first)...].firstIndex(of: " ")
            else {
                throw TokenizerError(.invalidField, source: source, field: "tokenizer.ggml.merges[\(rank)]",
                                     "expected two tokens separated by a space, found \(quoted(merge))")
            }
            parts.merges.append((String(scalars[..<space]), String(scalars[scalars.index(after: space)...])))
        }
        parts.ignoreMerges = ignoreMerges
        parts.preTokenizer = preTokenizer
        func id(_ value: Int?, _ key: String) throws(TokenizerError) -> Int? {
            guard let value else { return nil }
            guard value >= 0, value < metadata.tokens.count else {
                throw TokenizerError(.invalidField, source: source, field: key,
                                     "token id \(value) is outside the vocabulary of \(metadata.tokens.count)")
            }
            return value
        }
        parts.bosTokenID = try id(metadata.bosTokenID, "tokenizer.ggml.bos_token_id")
        parts.eosTokenID = try id(metadata.eosTokenID, "tokenizer.ggml.eos_token_id")
        parts.padTokenID = try id(metadata.paddingTokenID, "tokenizer.ggml.padding_token_id")
        parts.unknownTokenID = try id(metadata.unknownTokenID, "tokenizer.ggml.unknown_token_id")
        if metadata.addBOS ?? defaultAddBOS, let bos = parts.bosTokenID { parts.prefixIDs = [bos] }
        if metadata.addEOS ?? false, let eos = parts.eosTokenID { parts.suffixIDs = [eos] }
        parts.chatTemplate = metadata.chatTemplate
        try self.init(parts: parts)
    }
}

/// llama.cpp's `tokenizer.ggml.pre` names and the pre-tokenizer each implies, written as HF pre-tokenizers
/// (regexes from llama.cpp's `llama-vocab.cpp`; its multi-regex lists are `Split` steps in sequence). One table
/// serves the reader (`named`) and the Hugging Face export (`huggingFaceJSON`).
enum GGUFPreTokenizers {
    /// What a name implies: pre-tokenizer steps in order, BPE's `ignore_merges`, and llama.cpp's default for
    /// adding the beginning-of-sequence token.
    struct Recipe {
        enum Step {
            case digits
            case byteLevel(useRegex: Bool)
            case split(String)
        }

        let steps: [Step]
        let ignoreMerges: Bool
        let addBOS: Bool
    }

    static let deepSeekV3Patterns = [DeepSeekPatterns.digits, DeepSeekPatterns.kana, DeepSeekPatterns.words]

    private static func splitsThenBytes(_ patterns: [String], ignoreMerges: Bool = false, addBOS: Bool = false) -> Recipe {
        Recipe(steps: patterns.map { .split($0) } + [.byteLevel(useRegex: false)], ignoreMerges: ignoreMerges, addBOS: addBOS)
    }

    static let recipes: [(names: [String], recipe: Recipe)] = [
        (["gpt2", "gpt-2", "phi-2", "mpt", "olmo", "jais", "exaone4"], Recipe(steps: [.byteLevel(useRegex: true)], ignoreMerges: false, addBOS: false)),
        (["smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"],
         Recipe(steps: [.digits, .byteLevel(useRegex: true)], ignoreMerges: false, addBOS: false)),
        (["qwen2", "deepseek-r1-qwen", "stablelm2", "megrez", "kormo"], splitsThenBytes([KnownPattern.qwen2Pattern])),
        (["llama3", "llama-v3", "llama-bpe", "falcon3"], splitsThenBytes([KnownPattern.llama3Pattern], ignoreMerges: true, addBOS: true)),
        (["dbrx", "smaug-bpe"], splitsThenBytes([KnownPattern.llama3Pattern])),
        (["deepseek-v3"], splitsThenBytes(deepSeekV3Patterns)),
    ]

    static var knownNames: [String] { recipes.flatMap(\.names) }

    static func recipe(_ name: String) -> Recipe? {
        recipes.first { $0.names.contains(name) }?.recipe
    }

    /// (pre-tokenizer, ignore_merges, default add_bos) for `name`, or nil when unknown.
    static func named(_ name: String) throws(TokenizerError) -> (PreTokenizer, Bool, Bool)? {
        guard let recipe = recipe(name) else { return nil }
        var steps: [PreTokenizer] = []
        for step in recipe.steps {
            switch step {
            case .digits: steps.append(.digits(individual: true))
            case .byteLevel(let useRegex): steps.append(.byteLevel(addPrefixSpace: false, useRegex: useRegex))
            case .split(let pattern):
                do {
                    steps.append(.split(try SplitPattern(regex: pattern), behavior: .isolated, invert: false))
                } catch {
                    throw TokenizerError(.unsupported, source: "GGUF pre-tokenizer", field: name, "\(error.message)")
                }
            }
        }
        return (steps.count == 1 ? steps[0] : .sequence(steps), recipe.ignoreMerges, recipe.addBOS)
    }
}
