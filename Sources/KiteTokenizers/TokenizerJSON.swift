import KiteJSON

/// Reads `tokenizer.json` (HF `tokenizers` serialization, version 1.0) into `TokenizerParts`.
struct TokenizerJSONReader {
    let json: JSONAccess

    init(source: String) {
        json = JSONAccess(source: source)
    }

    func parts(_ document: JSONValue) throws(TokenizerError) -> TokenizerParts {
        let root = try json.object(document, "(root)")
        var parts = TokenizerParts(source: json.source)
        if let version = json.field(root, "version") {
            let text = try json.string(version, "version")
            guard text == "1.0" else { throw json.error("version", "unknown tokenizer.json version \(quoted(text))", kind: .unsupported) }
        }
        try readModel(try json.required(root, "model", ""), into: &parts)
        if let added = json.field(root, "added_tokens") {
            var assigner = AddedTokenIDs(vocabulary: parts.vocabulary)
            for (index, item) in try json.array(added, "added_tokens").enumerated() {
                var token = try addedToken(item, "added_tokens[\(index)]")
                token.id = assigner.id(for: token.content)
                parts.addedTokens.removeAll { $0.content == token.content }
                parts.addedTokens.append(token)
            }
        }
        if let normalizer = json.field(root, "normalizer") { parts.normalizer = try self.normalizer(normalizer, "normalizer") }
        if let pre = json.field(root, "pre_tokenizer") { parts.preTokenizer = try preTokenizer(pre, "pre_tokenizer") }
        if let post = json.field(root, "post_processor") {
            let (prefix, suffix) = try postProcessor(post, "post_processor", parts: parts)
            parts.prefixIDs = prefix
            parts.suffixIDs = suffix
            parts.hasPostProcessor = true
        }
        if let decoder = json.field(root, "decoder") { try checkDecoder(decoder, "decoder") }
        return parts
    }

    private func readModel(_ value: JSONValue, into parts: inout TokenizerParts) throws(TokenizerError) {
        let model = try json.object(value, "model")
        if let type = json.field(model, "type") {
            let name = try json.string(type, "model.type")
            guard name == "BPE" else { throw json.error("model.type", "model \(quoted(name)) is not supported (only BPE)", kind: .unsupported) }
        }
        if let dropout = json.field(model, "dropout"), (dropout.doubleValue ?? 1) != 0 {
            throw json.error("model.dropout", "BPE dropout makes tokenization random; only null or 0 is supported", kind: .unsupported)
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let text = try json.optionalString(model, key, "model"), !text.isEmpty {
                throw json.error("model." + key, "non-empty \(key) is not supported in byte-level BPE", kind: .unsupported)
            }
        }
        if try json.optionalBool(model, "byte_fallback", "model", default: false) {
            throw json.error("model.byte_fallback", "byte fallback (SentencePiece-style BPE) is not supported", kind: .unsupported)
        }
        parts.ignoreMerges = try json.optionalBool(model, "ignore_merges", "model", default: false)
        parts.unknownModelToken = try json.optionalString(model, "unk_token", "model")
        let vocab = try json.object(try json.required(model, "vocab", "model"), "model.vocab")
        parts.vocabulary.reserveCapacity(vocab.count)
        for (spelling, id) in vocab {
            parts.vocabulary.append((spelling, try json.int(id, "model.vocab[\(quoted(spelling))]")))
        }
        let merges = try json.array(try json.required(model, "merges", "model"), "model.merges")
        parts.merges.reserveCapacity(merges.count)
        for (index, merge) in merges.enumerated() {
            switch merge {
            case .string(let text):
                let halves = text.split(separator: " ", omittingEmptySubsequences: false)
                guard halves.count == 2 else {
                    throw json.error("model.merges[\(index)]", "expected two tokens separated by one space, found \(quoted(text))")
                }
                parts.merges.append((String(halves[0]), String(halves[1])))
            case .array(let pair):
                guard pair.count == 2, let left = pair[0].stringValue, let right = pair[1].stringValue else {
                    throw json.error("model.merges[\(index)]", "expected a pair of strings")
                }
                parts.merges.append((left, right))
            default:
                throw json.error("model.merges[\(index)]", "expected a string \"a b\" or a pair of strings, found \(merge.typeName)")
            }
        }
    }

    /// An added token as declared; its id is settled by `AddedTokenIDs`.
    private func addedToken(_ value: JSONValue, _ path: String) throws(TokenizerError) -> AddedToken {
        let object = try json.object(value, path)
        let content = try json.string(try json.required(object, "content", path), json.join(path, "content"))
        let id = try json.int(try json.required(object, "id", path), json.join(path, "id"))
        guard id >= 0 else { throw json.error(json.join(path, "id"), "negative id \(id)") }
        let special = try json.optionalBool(object, "special", path, default: false)
        return AddedToken(
            id: id, content: content, special: special,
            singleWord: try json.optionalBool(object, "single_word", path, default: false),
            lstrip: try json.optionalBool(object, "lstrip", path, default: false),
            rstrip: try json.optionalBool(object, "rstrip", path, default: false),
            normalized: try json.optionalBool(object, "normalized", path, default: !special))
    }

    func normalizer(_ value: JSONValue, _ path: String) throws(TokenizerError) -> Normalizer {
        let object = try json.object(value, path)
        let type = try json.string(try json.required(object, "type", path), json.join(path, "type"))
        switch type {
        case "NFC": return .nfc
        case "Lowercase": return .lowercase
        case "Strip":
            return .strip(left: try json.optionalBool(object, "strip_left", path, default: true),
                          right: try json.optionalBool(object, "strip_right", path, default: true))
        case "Prepend":
            return .prepend(try json.string(try json.required(object, "prepend", path), json.join(path, "prepend")))
        case "Replace":
            let pattern = try splitPattern(try json.required(object, "pattern", path), json.join(path, "pattern"))
            let content = try json.string(try json.required(object, "content", path), json.join(path, "content"))
            return .replace(pattern: pattern, content: content)
        case "Sequence":
            let items = try json.array(try json.required(object, "normalizers", path), json.join(path, "normalizers"))
            var steps: [Normalizer] = []
            for (index, item) in items.enumerated() {
                steps.append(try normalizer(item, json.join(path, "normalizers") + "[\(index)]"))
            }
            return .sequence(steps)
        default:
            throw json.error(json.join(path, "type"), "normalizer \(quoted(type)) is not supported", kind: .unsupported)
        }
    }

    func preTokenizer(_ value: JSONValue, _ path: String) throws(TokenizerError) -> PreTokenizer {
        let object = try json.object(value, path)
        let type = try json.string(try json.required(object, "type", path), json.join(path, "type"))
        switch type {
        case "ByteLevel":
            return .byteLevel(addPrefixSpace: try json.optionalBool(object, "add_prefix_space", path, default: true),
                              useRegex: try json.optionalBool(object, "use_regex", path, default: true))
        case "Split":
            let pattern = try splitPattern(try json.required(object, "pattern", path), json.join(path, "pattern"))
            let behaviorName = try json.string(try json.required(object, "behavior", path), json.join(path, "behavior"))
            guard let behavior = SplitBehavior(rawValue: behaviorName) else {
                throw json.error(json.join(path, "behavior"), "unknown split behavior \(quoted(behaviorName))")
            }
            return .split(pattern, behavior: behavior, invert: try json.optionalBool(object, "invert", path, default: false))
        case "Digits":
            return .digits(individual: try json.optionalBool(object, "individual_digits", path, default: false))
        case "Sequence":
            let items = try json.array(try json.required(object, "pretokenizers", path), json.join(path, "pretokenizers"))
            var steps: [PreTokenizer] = []
            for (index, item) in items.enumerated() {
                steps.append(try preTokenizer(item, json.join(path, "pretokenizers") + "[\(index)]"))
            }
            return .sequence(steps)
        default:
            throw json.error(json.join(path, "type"), "pre-tokenizer \(quoted(type)) is not supported", kind: .unsupported)
        }
    }

    /// `{"Regex": "..."}` or `{"String": "..."}`.
    func splitPattern(_ value: JSONValue, _ path: String) throws(TokenizerError) -> SplitPattern {
        let object = try json.object(value, path)
        do {
            if let regex = json.field(object, "Regex") {
                return try SplitPattern(regex: try json.string(regex, json.join(path, "Regex")))
            }
            if let literal = json.field(object, "String") {
                return try SplitPattern(literal: try json.string(literal, json.join(path, "String")))
            }
        } catch let error as RegexError {
            throw json.error(json.join(path, "Regex"), "\(error.message) at character \(error.offset) of the pattern", kind: .unsupported)
        } catch let error as TokenizerError {
            throw error
        } catch {
            throw json.error(path, "\(error)")
        }
        throw json.error(path, "expected {\"Regex\": ...} or {\"String\": ...}")
    }

    /// The ids the single-sequence template puts before and after the text.
    private func postProcessor(_ value: JSONValue, _ path: String, parts: TokenizerParts) throws(TokenizerError) -> ([Int], [Int]) {
        let object = try json.object(value, path)
        let type = try json.string(try json.required(object, "type", path), json.join(path, "type"))
        switch type {
        case "ByteLevel":
            return ([], [])
        case "TemplateProcessing":
            let specials = try json.field(object, "special_tokens").map { v throws(TokenizerError) in try json.object(v, json.join(path, "special_tokens")) } ?? JSONObject()
            let single = try json.array(try json.required(object, "single", path), json.join(path, "single"))
            var prefix: [Int] = []
            var suffix: [Int] = []
            var sawSequence = false
            for (index, item) in single.enumerated() {
                let itemPath = json.join(path, "single") + "[\(index)]"
                let entry = try json.object(item, itemPath)
                if json.field(entry, "Sequence") != nil {
                    sawSequence = true
                    continue
                }
                guard let special = json.field(entry, "SpecialToken") else {
                    throw json.error(itemPath, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}")
                }
                let name = try json.string(try json.required(try json.object(special, itemPath + ".SpecialToken"), "id", itemPath + ".SpecialToken"), itemPath + ".SpecialToken.id")
                let ids: [Int]
                if let declared = json.field(specials, name) {
                    let declaredPath = json.join(path, "special_tokens") + "[\(quoted(name))]"
                    let list = try json.array(try json.required(try json.object(declared, declaredPath), "ids", declaredPath), declaredPath + ".ids")
                    var collected: [Int] = []
                    for (position, id) in list.enumerated() { collected.append(try json.int(id, declaredPath + ".ids[\(position)]")) }
                    ids = collected
                } else if let id = parts.vocabulary.first(where: { $0.spelling == name })?.id ?? parts.addedTokens.first(where: { $0.content == name })?.id {
                    ids = [id]
                } else {
                    throw json.error(itemPath, "special token \(quoted(name)) is not declared in special_tokens")
                }
                if sawSequence { suffix += ids } else { prefix += ids }
            }
            return (prefix, suffix)
        case "RobertaProcessing", "BertProcessing":
            func pair(_ key: String) throws(TokenizerError) -> Int {
                let items = try json.array(try json.required(object, key, path), json.join(path, key))
                guard items.count == 2 else { throw json.error(json.join(path, key), "expected [token, id]") }
                return try json.int(items[1], json.join(path, key) + "[1]")
            }
            return ([try pair("cls")], [try pair("sep")])
        case "Sequence":
            let items = try json.array(try json.required(object, "processors", path), json.join(path, "processors"))
            var prefix: [Int] = []
            var suffix: [Int] = []
            for (index, item) in items.enumerated() {
                let (before, after) = try postProcessor(item, json.join(path, "processors") + "[\(index)]", parts: parts)
                prefix = before + prefix
                suffix += after
            }
            return (prefix, suffix)
        default:
            throw json.error(json.join(path, "type"), "post-processor \(quoted(type)) is not supported", kind: .unsupported)
        }
    }

    /// Decoding is byte-level; a decoder that would change text (Replace, Strip...) is refused.
    private func checkDecoder(_ value: JSONValue, _ path: String) throws(TokenizerError) {
        let object = try json.object(value, path)
        let type = try json.string(try json.required(object, "type", path), json.join(path, "type"))
        switch type {
        case "ByteLevel":
            return
        case "Sequence":
            let items = try json.array(try json.required(object, "decoders", path), json.join(path, "decoders"))
            for (index, item) in items.enumerated() { try checkDecoder(item, json.join(path, "decoders") + "[\(index)]") }
        default:
            throw json.error(json.join(path, "type"), "decoder \(quoted(type)) is not supported (only ByteLevel)", kind: .unsupported)
        }
    }
}
