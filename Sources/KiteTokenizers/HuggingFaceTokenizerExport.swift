import KiteGGUF
import KiteJSON

/// Writes a GGUF file's tokenizer as Hugging Face files (`tokenizer.json`, `tokenizer_config.json`,
/// `chat_template.jinja`), so that a model trained from a GGUF and exported with `--save-hf` loads in
/// transformers with its tokenizer and chat template.
///
/// The files describe the tokenizer as llama.cpp reads the GGUF (what Kite encodes with): every token at its
/// GGUF id, control (type 3) and user-defined (type 4) tokens as atomic added tokens (special for control),
/// the pre-tokenizer `tokenizer.ggml.pre` names, and the beginning-of-sequence token prepended when the GGUF
/// (or llama.cpp's default for that pre-tokenizer) says so.
public enum HuggingFaceTokenizerExport {
    /// The files' names and UTF-8 contents.
    public static func files(for metadata: GGUFTokenizerMetadata) throws(TokenizerError) -> [(name: String, contents: [UInt8])] {
        let source = metadata.source
        // Building the tokenizer first runs every check the reader makes (model, pre-tokenizer, ids, merges).
        _ = try Tokenizer(ggufMetadata: metadata)
        let pre = metadata.pre ?? "default"
        guard let (preTokenizer, ignoreMerges, defaultAddBOS) = GGUFPreTokenizers.huggingFaceJSON(pre) else {
            throw TokenizerError(.unsupported, source: source, field: "tokenizer.ggml.pre", "pre-tokenizer \(quoted(pre)) has no tokenizer.json form")
        }
        let tokens = metadata.tokens.enumerated().map { $0.element.isEmpty ? "[EMPTY_\($0.offset)]" : $0.element }
        var added: [JSONValue] = []
        for (id, token) in tokens.enumerated() {
            let type = metadata.tokenTypes.map { GGUFTokenType(rawValue: $0[id]) } ?? .normal
            guard type == .control || type == .userDefined else { continue }
            added.append(.object(JSONObject([
                ("id", .int(id)), ("content", .string(token)), ("single_word", false), ("lstrip", false), ("rstrip", false),
                ("normalized", false), ("special", .bool(type == .control)),
            ])))
        }
        let addBOS = metadata.addBOS ?? defaultAddBOS
        let addEOS = metadata.addEOS ?? false
        let bos = metadata.bosTokenID.map { tokens[$0] }, eos = metadata.eosTokenID.map { tokens[$0] }

        var single: [JSONValue] = [["Sequence": ["id": "A", "type_id": 0]]]
        var specials = JSONObject()
        if addBOS, let bos, let id = metadata.bosTokenID {
            single.insert(["SpecialToken": ["id": .string(bos), "type_id": 0]], at: 0)
            specials[bos] = .object(JSONObject([("id", .string(bos)), ("ids", [.int(id)]), ("tokens", [.string(bos)])]))
        }
        if addEOS, let eos, let id = metadata.eosTokenID {
            single.append(["SpecialToken": ["id": .string(eos), "type_id": 0]])
            specials[eos] = .object(JSONObject([("id", .string(eos)), ("ids", [.int(id)]), ("tokens", [.string(eos)])]))
        }
        var vocabulary = JSONObject()
        for (id, token) in tokens.enumerated() { vocabulary[token] = .int(id) }
        let merges: [JSONValue] = metadata.merges.map { merge in
            // As the reader splits them: at the first space after the first character.
            let scalars = merge.unicodeScalars
            guard let first = scalars.indices.first, let space = scalars[scalars.index(after: first)...].firstIndex(of: " ") else { return .null }
            return [.string(String(scalars[..<space])), .string(String(scalars[scalars.index(after: space)...]))]
        }
        let tokenizer: JSONValue = .object(JSONObject([
            ("version", "1.0"), ("truncation", .null), ("padding", .null), ("added_tokens", .array(added)), ("normalizer", .null),
            ("pre_tokenizer", preTokenizer),
            ("post_processor", .object(JSONObject([
                ("type", "TemplateProcessing"), ("single", .array(single)), ("pair", .array(single)), ("special_tokens", .object(specials)),
            ]))),
            ("decoder", ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true]),
            ("model", .object(JSONObject([
                ("type", "BPE"), ("dropout", .null), ("unk_token", metadata.unknownTokenID.map { .string(tokens[$0]) } ?? .null),
                ("continuing_subword_prefix", .null), ("end_of_word_suffix", .null), ("fuse_unk", false), ("byte_fallback", false),
                ("ignore_merges", .bool(ignoreMerges)), ("vocab", .object(vocabulary)), ("merges", .array(merges)),
            ]))),
        ]))

        var config = JSONObject([
            ("tokenizer_class", "PreTrainedTokenizerFast"), ("clean_up_tokenization_spaces", false),
            ("add_bos_token", .bool(addBOS)), ("add_eos_token", .bool(addEOS)),
        ])
        if let bos { config["bos_token"] = .string(bos) }
        if let eos { config["eos_token"] = .string(eos) }
        if let id = metadata.paddingTokenID { config["pad_token"] = .string(tokens[id]) }
        if let id = metadata.unknownTokenID { config["unk_token"] = .string(tokens[id]) }

        let options = JSONWriteOptions(ensureASCII: false, indent: 2)
        var files: [(name: String, contents: [UInt8])] = [
            ("tokenizer.json", Array(tokenizer.serialized(JSONWriteOptions(ensureASCII: false)).utf8)),
            ("tokenizer_config.json", Array(JSONValue.object(config).serialized(options).utf8)),
        ]
        if let template = metadata.chatTemplate { files.append(("chat_template.jinja", Array(template.utf8))) }
        return files
    }

    /// The files for the tokenizer of the GGUF file at `path`.
    public static func files(ggufPath path: String) throws(TokenizerError) -> [(name: String, contents: [UInt8])] {
        let file: GGUFFile
        do {
            file = try GGUFFile(path: path)
        } catch let error as GGUFError {
            throw TokenizerError(error.kind == .io ? .io : .invalidField, source: path, error.description)
        } catch {
            throw TokenizerError(.io, source: path, "\(error)")
        }
        return try files(for: try GGUFTokenizerMetadata(metadata: file.metadata))
    }
}

extension GGUFPreTokenizers {
    /// The `tokenizer.json` form of `named(_:)`: the pre-tokenizer, `ignore_merges`, and llama.cpp's default
    /// for adding the beginning-of-sequence token; nil for names `named` does not know.
    static func huggingFaceJSON(_ name: String) -> (JSONValue, Bool, Bool)? {
        guard let recipe = recipe(name) else { return nil }
        let steps: [JSONValue] = recipe.steps.map { step in
            switch step {
            case .digits: ["type": "Digits", "individual_digits": true]
            case .byteLevel(let useRegex): ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": .bool(useRegex)]
            case .split(let pattern): ["type": "Split", "pattern": ["Regex": .string(pattern)], "behavior": "Isolated", "invert": false]
            }
        }
        return (steps.count == 1 ? steps[0] : ["type": "Sequence", "pretokenizers": .array(steps)], recipe.ignoreMerges, recipe.addBOS)
    }
}
