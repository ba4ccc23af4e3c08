import KiteGGUF

extension GGUFTokenizerMetadata {
    /// The `tokenizer.*` keys of a GGUF file's metadata. A missing required key or a value of the wrong type
    /// throws, naming the key.
    public init(metadata: GGUFMetadata) throws(TokenizerError) {
        let source = metadata.path ?? "GGUF metadata"
        let reader = GGUFKeyReader(metadata: metadata, source: source)
        self.init(
            model: try reader.string("tokenizer.ggml.model", required: true) ?? "",
            pre: try reader.string("tokenizer.ggml.pre"),
            tokens: try reader.strings("tokenizer.ggml.tokens", required: true) ?? [],
            merges: try reader.strings("tokenizer.ggml.merges") ?? [],
            tokenTypes: try reader.ints("tokenizer.ggml.token_type")?.map { Int32(truncatingIfNeeded: $0) },
            bosTokenID: try reader.int("tokenizer.ggml.bos_token_id"),
            eosTokenID: try reader.int("tokenizer.ggml.eos_token_id"),
            paddingTokenID: try reader.int("tokenizer.ggml.padding_token_id"),
            unknownTokenID: try reader.int("tokenizer.ggml.unknown_token_id"),
            addBOS: try reader.bool("tokenizer.ggml.add_bos_token"),
            addEOS: try reader.bool("tokenizer.ggml.add_eos_token"),
            chatTemplate: try reader.string("tokenizer.chat_template"),
            source: source)
    }
}

extension Tokenizer {
    /// The tokenizer stored in a GGUF file's metadata, read as llama.cpp reads it (see
    /// `init(ggufMetadata:)`). Only the metadata is used: a GGUF whose tensor data is truncated or split
    /// into parts is fine.
    public convenience init(gguf: GGUFFile) throws(TokenizerError) {
        try self.init(ggufMetadata: try GGUFTokenizerMetadata(metadata: gguf.metadata))
    }

    /// Opens the GGUF file at `path` and reads its tokenizer.
    public convenience init(ggufPath path: String) throws(TokenizerError) {
        let file: GGUFFile
        do {
            file = try GGUFFile(path: path)
        } catch let error as GGUFError {
            throw TokenizerError(error.kind == .io ? .io : .invalidField, source: path, error.description)
        } catch {
            throw TokenizerError(.io, source: path, "\(error)")
        }
        try self.init(gguf: file)
    }
}

/// Typed reads of metadata values with errors that name the key and what it holds.
private struct GGUFKeyReader {
    let metadata: GGUFMetadata
    let source: String

    private func mismatch(_ key: String, _ expected: String, _ value: GGUFValue) -> TokenizerError {
        let found: String
        if case .array(let array) = value { found = "an array of \(array.elementType)" } else { found = "a \(value.type)" }
        return TokenizerError(.invalidField, source: source, field: key, "expected \(expected), found \(found)")
    }

    private func missing(_ key: String, _ expected: String) -> TokenizerError {
        TokenizerError(.missingField, source: source, field: key, "missing (expected \(expected))")
    }

    func string(_ key: String, required: Bool = false) throws(TokenizerError) -> String? {
        guard let value = metadata[key] else {
            if required { throw missing(key, "a string") }
            return nil
        }
        guard case .string(let text) = value else { throw mismatch(key, "a string", value) }
        return text
    }

    func strings(_ key: String, required: Bool = false) throws(TokenizerError) -> [String]? {
        guard let value = metadata[key] else {
            if required { throw missing(key, "an array of strings") }
            return nil
        }
        guard case .array(.string(let texts)) = value else { throw mismatch(key, "an array of strings", value) }
        return texts
    }

    func ints(_ key: String) throws(TokenizerError) -> [Int]? {
        guard let value = metadata[key] else { return nil }
        guard case .array(let array) = value, let numbers = array.intValues else {
            throw mismatch(key, "an array of integers", value)
        }
        return numbers
    }

    func int(_ key: String) throws(TokenizerError) -> Int? {
        guard let value = metadata[key] else { return nil }
        guard let number = value.intValue else { throw mismatch(key, "an integer", value) }
        return number
    }

    func bool(_ key: String) throws(TokenizerError) -> Bool? {
        guard let value = metadata[key] else { return nil }
        guard case .bool(let flag) = value else { throw mismatch(key, "a bool", value) }
        return flag
    }
}
