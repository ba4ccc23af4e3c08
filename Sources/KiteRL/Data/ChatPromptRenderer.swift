import KiteJSON
import KiteTokenizers

/// `--apply-chat-template`: a string prompt becomes one user message, a message list is rendered as given,
/// with `add_generation_prompt` on and `--apply-chat-template-kwargs` as extra variables — what slime gets
/// from `tokenizer.apply_chat_template(..., tokenize=False)`.
public struct ChatPromptRenderer: PromptRenderer {
    public let template: ChatTemplate
    public let specialTokens: [String: String]
    public let extraContext: JSONObject

    public init(template: ChatTemplate, tokenizer: Tokenizer, extraContext: JSONObject) {
        self.template = template
        var tokens: [String: String] = [:]
        if let bos = tokenizer.bosToken { tokens["bos_token"] = bos }
        if let eos = tokenizer.eosToken { tokens["eos_token"] = eos }
        if let pad = tokenizer.padToken { tokens["pad_token"] = pad }
        if let unknown = tokenizer.unknownToken { tokens["unk_token"] = unknown }
        self.specialTokens = tokens
        self.extraContext = extraContext
    }

    public func render(prompt: JSONValue, tools: JSONValue?, source: String) throws -> (text: String, hasSpecialTokens: Bool) {
        let messages: [JSONValue]
        if let text = prompt.stringValue {
            messages = [["role": "user", "content": .string(text)]]
        } else if let list = prompt.arrayValue {
            for (index, message) in list.enumerated() where message.objectValue == nil {
                throw RLError.invalidSample(sample: source, field: "prompt[\(index)]", message: "a chat message must be an object, found \(message.typeName)")
            }
            messages = list
        } else {
            throw RLError.invalidSample(sample: source, field: "prompt", message: "expected a string or a list of messages, found \(prompt.typeName)")
        }
        var toolList: [JSONValue]?
        if let tools {
            guard let list = tools.arrayValue else {
                throw RLError.invalidSample(sample: source, field: "tools", message: "expected a list of tool definitions, found \(tools.typeName)")
            }
            toolList = list
        }
        do {
            let text = try template.render(messages: messages, tools: toolList, addGenerationPrompt: true, extraContext: extraContext, specialTokens: specialTokens)
            return (text, true)
        } catch {
            throw RLError.invalidSample(sample: source, field: "prompt", message: "chat template: \(error)")
        }
    }
}
