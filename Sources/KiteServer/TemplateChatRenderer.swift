import KiteEngine
import KiteJSON
import KiteTokenizers

/// A model's Jinja chat template, rendered as transformers' `apply_chat_template` renders it, with the
/// tokenizer's special tokens as variables.
public struct TemplateChatRenderer: ChatPromptRenderer {
    public let template: ChatTemplate
    public let tokenizer: Tokenizer
    let specialTokens: [String: String]

    public init(template: ChatTemplate, tokenizer: Tokenizer) {
        self.template = template
        self.tokenizer = tokenizer
        var tokens: [String: String] = [:]
        tokens["bos_token"] = tokenizer.bosToken
        tokens["eos_token"] = tokenizer.eosToken
        tokens["pad_token"] = tokenizer.padToken
        tokens["unk_token"] = tokenizer.unknownToken
        specialTokens = tokens
    }

    /// The tokenizer's own template (from the GGUF or tokenizer_config.json / chat_template.jinja); nil if it has none.
    public init?(tokenizer: Tokenizer) throws {
        guard let source = tokenizer.chatTemplate else { return nil }
        self.init(template: try ChatTemplate(source: source, name: "chat_template"), tokenizer: tokenizer)
    }

    public func render(messages: [JSONValue], tools: [JSONValue]?, addGenerationPrompt: Bool, arguments: JSONObject) throws -> String {
        try template.render(messages: messages, tools: tools, addGenerationPrompt: addGenerationPrompt, extraContext: arguments, specialTokens: specialTokens)
    }

    public func encode(rendered: String) throws -> [Int32] {
        tokenizer.encode(rendered, addSpecialTokens: false).map(Int32.init)
    }
}
