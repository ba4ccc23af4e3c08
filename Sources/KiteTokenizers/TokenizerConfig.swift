import KiteJSON

/// Applies `tokenizer_config.json` and `special_tokens_map.json` as transformers does.
struct TokenizerConfigReader {
    let json: JSONAccess
    let map: JSONAccess

    init(source: String, mapSource: String = "special_tokens_map.json") {
        json = JSONAccess(source: source)
        map = JSONAccess(source: mapSource)
    }

    func apply(config: JSONValue?, specialTokensMap: JSONValue?, to parts: inout TokenizerParts) throws(TokenizerError) {
        let configObject = try config.map { v throws(TokenizerError) in try json.object(v, "(root)") } ?? JSONObject()
        let mapObject = try specialTokensMap.map { v throws(TokenizerError) in
            try map.object(v, "(root)")
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

        /// A token given as a string or as an AddedToken object {"content": ...}.
        func content(_ value: JSONValue, _ access: JSONAccess, _ path: String) throws(TokenizerError) -> String {
            if let text = value.stringValue { return text }
            let entry = try access.object(value, path)
            return try access.string(try access.required(entry, "content", path), path + ".content")
        }
        let sources = [(configObject, json), (mapObject, map)]
        func tokenContent(_ key: String) throws(TokenizerError) -> String? {
            for (object, access) in sources {
                if let value = access.field(object, key) { return try content(value, access, key) }
            }
            return nil
        }
        /// The id of a special token, adding it when missing: transformers adds named and extra special tokens
        /// that are not added tokens yet (with a new id if the model vocabulary lacks them too), which makes
        /// them atomic.
        func resolve(_ content: String) -> Int {
            if let added = parts.addedTokens.first(where: { $0.content == content }) { return added.id }
            let id = assigner.id(for: content)
            parts.addedTokens.append(AddedToken(id: id, content: content, special: true, normalized: false))
            return id
        }
        var named: [String: Int] = [:]
        for key in ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"] {
            if let text = try tokenContent(key) { named[key] = resolve(text) }
        }
        parts.bosTokenID = named["bos_token"]
        parts.eosTokenID = named["eos_token"]
        parts.padTokenID = named["pad_token"]
        parts.unknownTokenID = named["unk_token"]
        for key in ["additional_special_tokens", "extra_special_tokens"] {
            for (object, access) in sources {
                guard let value = access.field(object, key) else { continue }
                for (index, item) in try access.array(value, key).enumerated() {
                    _ = resolve(try content(item, access, "\(key)[\(index)]"))
                }
            }
        }
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
