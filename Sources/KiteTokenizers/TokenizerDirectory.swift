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
            configSource: base + "/tokenizer_config.json", specialTokensMap: specialTokensMap,
            specialTokensMapSource: base + "/special_tokens_map.json", chatTemplate: chatTemplate)
    }

    /// Builds a tokenizer from parsed `tokenizer.json` (and optionally `tokenizer_config.json` and
    /// `special_tokens_map.json`) documents. `source` names the document in errors; `chatTemplate` (the
    /// contents of chat_template.jinja) overrides the config's template.
    public convenience init(
        tokenizerJSON: JSONValue, source: String = "tokenizer.json", config: JSONValue? = nil,
        configSource: String = "tokenizer_config.json", specialTokensMap: JSONValue? = nil,
        specialTokensMapSource: String = "special_tokens_map.json", chatTemplate: String? = nil
    ) throws(TokenizerError) {
        var parts = try TokenizerJSONReader(source: source).parts(tokenizerJSON)
        try TokenizerConfigReader(source: configSource, mapSource: specialTokensMapSource)
            .apply(config: config, specialTokensMap: specialTokensMap, to: &parts)
        // A chat_template.jinja file takes priority over the config's entry, as in transformers.
        if let chatTemplate { parts.chatTemplate = chatTemplate }
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
