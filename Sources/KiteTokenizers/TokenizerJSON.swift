#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KiteJSON

extension Tokenizer {
    /// Loads a Hugging Face tokenizer directory: `tokenizer.json`, and if present `tokenizer_config.json`
    /// (bos/eos/pad/unk, `add_bos_token`, `add_eos_token`, chat template), `special_tokens_map.json` and
    /// `chat_template.jinja`.
    public convenience init(directory: String) throws(TokenizerError) {
        let base = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        let tokenizerPath = base + "/tokenizer.json"
        let tokenizerJSON = try readJSON(tokenizerPath, required: true) ?? .null
        let config = try readJSON(base + "/tokenizer_config.json", required: false)
        let specialTokensMap = try readJSON(base + "/special_tokens_map.json", required: false)
        var chatTemplate: String?
        let templatePath = base + "/chat_template.jinja"
        if FileManager.default.fileExists(atPath: templatePath) {
            chatTemplate = String(decoding: try readFile(templatePath), as: UTF8.self)
        }
        try self.init(
            tokenizerJSON: tokenizerJSON, source: tokenizerPath, config: config,
            configSource: base + "/tokenizer_config.json", specialTokensMap: specialTokensMap, chatTemplate: chatTemplate)
    }

    /// Builds a tokenizer from parsed `tokenizer.json` (and optionally `tokenizer_config.json` and
    /// `special_tokens_map.json`) documents. `source` names the document in errors.
    public convenience init(
        tokenizerJSON: JSONValue, source: String = "tokenizer.json", config: JSONValue? = nil,
        configSource: String = "tokenizer_config.json", specialTokensMap: JSONValue? = nil, chatTemplate: String? = nil
    ) throws(TokenizerError) {
        var parts = try TokenizerJSONReader(source: source).parts(tokenizerJSON)
        try TokenizerConfigReader(source: configSource).apply(config: config, specialTokensMap: specialTokensMap, to: &parts)
        if parts.chatTemplate == nil { parts.chatTemplate = chatTemplate }
        try self.init(parts: parts)
    }
}

private func readFile(_ path: String) throws(TokenizerError) -> Data {
    do {
        return try Data(contentsOf: URL(fileURLWithPath: path))
    } catch {
        throw TokenizerError(.io, source: path, "cannot read the file (\(error))")
    }
}

private func readJSON(_ path: String, required: Bool) throws(TokenizerError) -> JSONValue? {
    if !required, !FileManager.default.fileExists(atPath: path) { return nil }
    let data = try readFile(path)
    do {
        return try JSONValue(parsing: [UInt8](data), source: path)
    } catch {
        throw TokenizerError(.syntax, source: path, line: error.line, column: error.column, error.message)
    }
}

/// Typed access to JSON with errors naming the file and the JSON path.
struct JSONAccess {
    let source: String

    func error(_ path: String, _ message: String, kind: TokenizerError.Kind = .invalidField) -> TokenizerError {
        TokenizerError(kind, source: source, field: path, message)
    }

    func object(_ value: JSONValue, _ path: String) throws(TokenizerError) -> JSONObject {
        guard let object = value.objectValue else { throw error(path, "expected an object, found \(value.typeName)") }
        return object
    }

    func array(_ value: JSONValue, _ path: String) throws(TokenizerError) -> [JSONValue] {
        guard let array = value.arrayValue else { throw error(path, "expected an array, found \(value.typeName)") }
        return array
    }

    func string(_ value: JSONValue, _ path: String) throws(TokenizerError) -> String {
        guard let string = value.stringValue else { throw error(path, "expected a string, found \(value.typeName)") }
        return string
    }

    func int(_ value: JSONValue, _ path: String) throws(TokenizerError) -> Int {
        guard case .int(let number) = value else {
            throw error(path, "expected an integer, found \(value.typeName == "a number" ? "\(value.serialized())" : value.typeName)")
        }
        return number
    }

    func bool(_ value: JSONValue, _ path: String) throws(TokenizerError) -> Bool {
        guard let bool = value.boolValue else { throw error(path, "expected a boolean, found \(value.typeName)") }
        return bool
    }

    /// `object[key]`, treating null as absent.
    func field(_ object: JSONObject, _ key: String) -> JSONValue? {
        guard let value = object[key], !value.isNull else { return nil }
        return value
    }

    func required(_ object: JSONObject, _ key: String, _ path: String) throws(TokenizerError) -> JSONValue {
        guard let value = field(object, key) else {
            throw error(join(path, key), "missing", kind: .missingField)
        }
        return value
    }

    func optionalBool(_ object: JSONObject, _ key: String, _ path: String, default fallback: Bool) throws(TokenizerError) -> Bool {
        guard let value = field(object, key) else { return fallback }
        return try bool(value, join(path, key))
    }

    func optionalString(_ object: JSONObject, _ key: String, _ path: String) throws(TokenizerError) -> String? {
        guard let value = field(object, key) else { return nil }
        return try string(value, join(path, key))
    }

    func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : path + "." + key }
}

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

/// Applies `tokenizer_config.json` and `special_tokens_map.json` as transformers does.
struct TokenizerConfigReader {
    let json: JSONAccess

    init(source: String) {
        json = JSONAccess(source: source)
    }

    func apply(config: JSONValue?, specialTokensMap: JSONValue?, to parts: inout TokenizerParts) throws(TokenizerError) {
        let configObject = try config.map { v throws(TokenizerError) in try json.object(v, "(root)") } ?? JSONObject()
        let mapObject = try specialTokensMap.map { v throws(TokenizerError) in
            try JSONAccess(source: "special_tokens_map.json").object(v, "(root)")
        } ?? JSONObject()

        var assigner = AddedTokenIDs(vocabulary: parts.vocabulary, added: parts.addedTokens)
        // Tokens listed in added_tokens_decoder but absent from tokenizer.json are added (the key's id is
        // only a hint, as in transformers).
        if let decoder = json.field(configObject, "added_tokens_decoder") {
            for (key, value) in try json.object(decoder, "added_tokens_decoder") {
                let path = "added_tokens_decoder[\(quoted(key))]"
                let object = try json.object(value, path)
                let content = try json.string(try json.required(object, "content", path), json.join(path, "content"))
                if parts.addedTokens.contains(where: { $0.content == content }) { continue }
                let special = try json.optionalBool(object, "special", path, default: false)
                parts.addedTokens.append(AddedToken(
                    id: assigner.id(for: content), content: content, special: special,
                    singleWord: try json.optionalBool(object, "single_word", path, default: false),
                    lstrip: try json.optionalBool(object, "lstrip", path, default: false),
                    rstrip: try json.optionalBool(object, "rstrip", path, default: false),
                    normalized: try json.optionalBool(object, "normalized", path, default: !special)))
            }
        }

        func tokenContent(_ key: String) throws(TokenizerError) -> String? {
            for (object, access) in [(configObject, json), (mapObject, JSONAccess(source: "special_tokens_map.json"))] {
                guard let value = access.field(object, key) else { continue }
                if let text = value.stringValue { return text }
                let entry = try access.object(value, key)
                return try access.string(try access.required(entry, "content", key), key + ".content")
            }
            return nil
        }
        func resolve(_ key: String) throws(TokenizerError) -> Int? {
            guard let content = try tokenContent(key) else { return nil }
            if let added = parts.addedTokens.first(where: { $0.content == content }) { return added.id }
            // transformers adds a named special token missing from the added tokens (a new id if it is not in
            // the model vocabulary either), which makes it atomic.
            let id = assigner.id(for: content)
            parts.addedTokens.append(AddedToken(id: id, content: content, special: true, normalized: false))
            return id
        }
        parts.bosTokenID = try resolve("bos_token")
        parts.eosTokenID = try resolve("eos_token")
        parts.padTokenID = try resolve("pad_token")
        parts.unknownTokenID = try resolve("unk_token")
        if parts.chatTemplate == nil, let template = json.field(configObject, "chat_template") {
            // A string, or a list of named templates of which "default" is the one transformers uses.
            if let text = template.stringValue {
                parts.chatTemplate = text
            } else if let list = template.arrayValue {
                for (index, item) in list.enumerated() {
                    let entry = try json.object(item, "chat_template[\(index)]")
                    if try json.optionalString(entry, "name", "chat_template[\(index)]") == "default" {
                        parts.chatTemplate = try json.optionalString(entry, "template", "chat_template[\(index)]")
                    }
                }
            }
        }
        // transformers 5 ignores add_bos_token / add_eos_token when tokenizer.json exists: its post-processor
        // decides what encode(add_special_tokens=True) adds. They are still checked for type.
        for key in ["add_bos_token", "add_eos_token"] {
            if let value = json.field(configObject, key) { _ = try json.bool(value, key) }
        }
    }
}

/// Ids for added tokens as HF `tokenizers` assigns them (the ids written in the file are ignored): the model
/// vocabulary's id when the content is a model token, else the next id after the vocabulary (or after the
/// largest added id beyond it).
struct AddedTokenIDs {
    private var model: [String: Int] = [:]
    private var assigned: [String: Int] = [:]
    private var next: Int

    init(vocabulary: [(spelling: String, id: Int)], added: [AddedToken] = []) {
        for (spelling, id) in vocabulary where model[spelling] == nil { model[spelling] = id }
        for token in added { assigned[token.content] = token.id }
        let largest = added.map(\.id).max() ?? -1
        next = largest >= vocabulary.count ? largest + 1 : vocabulary.count
    }

    mutating func id(for content: String) -> Int {
        if let id = assigned[content] ?? model[content] { return id }
        let id = next
        next += 1
        assigned[content] = id
        return id
    }
}
