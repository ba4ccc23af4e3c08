import KiteJSON
import KiteModels

/// Turns a data set's prompt field into the text the engine sees: the string as is, or a chat rendered
/// through the model's chat template (`--apply-chat-template`).
public protocol PromptRenderer: Sendable {
    /// `prompt` is the record's input field: a string, or a list of messages. Returns the text to tokenise
    /// and whether that text already holds the tokenizer's special tokens (chat templates write them).
    func render(prompt: JSONValue, tools: JSONValue?, source: String) throws -> (text: String, hasSpecialTokens: Bool)
}

/// Prompts used as written: a string, or an error for a message list (which needs a chat template).
public struct PlainPromptRenderer: PromptRenderer {
    public init() {}

    public func render(prompt: JSONValue, tools: JSONValue?, source: String) throws -> (text: String, hasSpecialTokens: Bool) {
        guard let text = prompt.stringValue else {
            throw RLError.invalidSample(sample: source, field: "prompt", message: "a \(prompt.typeName) prompt needs --apply-chat-template")
        }
        return (text, false)
    }
}

/// Reads `--prompt-data` jsonl: one JSON object per line with the prompt under `--input-key`, the label
/// under `--label-key`, metadata under `--metadata-key` and tools under `--tool-key`, as slime reads it.
public struct PromptDataLoader: Sendable {
    public var inputKey = "input"
    public var labelKey: String?
    public var metadataKey = "metadata"
    public var toolKey = "tools"
    /// Skip malformed lines (counting them) instead of stopping at the first one.
    public var skipMalformed = false

    public init() {}

    /// What loading found.
    public struct Report: Sendable {
        public var records: [PromptRecord]
        /// Lines skipped, with why, when `skipMalformed` is on.
        public var skipped: [String]
    }

    public func load(path: String, renderer: any PromptRenderer, tokenize: (String, Bool) throws -> [Int32]) throws -> Report {
        let bytes = try FileText.readBytes(path)
        var records: [PromptRecord] = []
        var skipped: [String] = []
        var lineNumber = 0
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
            lineNumber += 1
            let line = Array(bytes[start..<end])
            start = end + 1
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            let source = "\(path):\(lineNumber)"
            do {
                records.append(try record(line, source: source, index: records.count, renderer: renderer, tokenize: tokenize))
            } catch {
                guard skipMalformed else { throw error }
                skipped.append("\(error)")
            }
        }
        guard !records.isEmpty else {
            throw RLError.invalidOption(name: "--prompt-data", message: "\(path) has no usable prompts (\(skipped.count) malformed lines skipped)")
        }
        return Report(records: records, skipped: skipped)
    }

    func record(_ line: [UInt8], source: String, index: Int, renderer: any PromptRenderer, tokenize: (String, Bool) throws -> [Int32]) throws -> PromptRecord {
        let value: JSONValue
        do { value = try JSONValue(parsing: line, source: source) } catch {
            throw RLError.invalidSample(sample: source, field: "(line)", message: "not valid JSON: \(error.message) at column \(error.column)")
        }
        guard let object = value.objectValue else {
            throw RLError.invalidSample(sample: source, field: "(line)", message: "expected a JSON object, found \(value.typeName)")
        }
        guard let prompt = object[inputKey], !prompt.isNull else {
            throw RLError.invalidSample(sample: source, field: inputKey, message: "missing (set --input-key to the prompt's field; found: \(object.keys.joined(separator: ", ")))")
        }
        guard prompt.stringValue != nil || prompt.arrayValue != nil else {
            throw RLError.invalidSample(sample: source, field: inputKey, message: "expected a string or a list of messages, found \(prompt.typeName)")
        }
        var label: JSONValue?
        if let labelKey {
            guard let value = object[labelKey] else {
                throw RLError.invalidSample(sample: source, field: labelKey, message: "missing (--label-key \(labelKey))")
            }
            label = value
        }
        var metadata = JSONObject()
        if let value = object[metadataKey], !value.isNull {
            guard let fields = value.objectValue else {
                throw RLError.invalidSample(sample: source, field: metadataKey, message: "expected an object, found \(value.typeName)")
            }
            metadata = fields
        }
        let tools = object[toolKey].flatMap { $0.isNull ? nil : $0 }
        let (text, hasSpecialTokens) = try renderer.render(prompt: prompt, tools: tools, source: source)
        let tokens = try tokenize(text, !hasSpecialTokens)
        guard !tokens.isEmpty else { throw RLError.invalidSample(sample: source, field: inputKey, message: "the prompt tokenises to nothing") }
        return PromptRecord(index: index, prompt: prompt, promptTokens: tokens, promptText: text, label: label, metadata: metadata, tools: tools)
    }
}
