import FoundationEssentials
import KiteEngine
import KiteJSON

// OpenAI's API as SGLang serves it (`python/sglang/srt/entrypoints/openai/protocol.py`): the standard
// fields, plus SGLang's sampling extras (`top_k`, `min_p`, `ignore_eos`, `stop_token_ids`, ...).
// Unknown fields are ignored, as OpenAI clients send many; fields that would change the tokens but are
// not implemented are refused unless neutral.

/// The sampling fields shared by completions and chat completions.
struct OpenAISampling: Sendable {
    var temperature: Double?
    var topP: Double?
    var topK: Int?
    var minP: Double?
    var n: Int?
    var stop: [String]?
    var stopTokenIDs: [Int]?
    var ignoreEOS: Bool?
    var skipSpecialTokens: Bool?
    var noStopTrim: Bool?
    var seed: Int?

    enum CodingKeys: String, CodingKey {
        case temperature
        case topP = "top_p"
        case topK = "top_k"
        case minP = "min_p"
        case n
        case stop
        case stopTokenIDs = "stop_token_ids"
        case ignoreEOS = "ignore_eos"
        case skipSpecialTokens = "skip_special_tokens"
        case noStopTrim = "no_stop_trim"
        case seed
        case frequencyPenalty = "frequency_penalty"
        case presencePenalty = "presence_penalty"
        case repetitionPenalty = "repetition_penalty"
        case minTokens = "min_tokens"
        case logitBias = "logit_bias"
        case regex, ebnf
        case jsonSchema = "json_schema"
        case bestOf = "best_of"
        case suffix
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        temperature = try container.decodeIfPresent(Double.self, forKey: .temperature)
        topP = try container.decodeIfPresent(Double.self, forKey: .topP)
        topK = try container.decodeIfPresent(Int.self, forKey: .topK)
        minP = try container.decodeIfPresent(Double.self, forKey: .minP)
        n = try container.decodeIfPresent(Int.self, forKey: .n)
        stop = try container.decodeIfPresent(OneOrMany<String>.self, forKey: .stop)?.values
        stopTokenIDs = try container.decodeIfPresent([Int].self, forKey: .stopTokenIDs)
        ignoreEOS = try container.decodeIfPresent(Bool.self, forKey: .ignoreEOS)
        skipSpecialTokens = try container.decodeIfPresent(Bool.self, forKey: .skipSpecialTokens)
        noStopTrim = try container.decodeIfPresent(Bool.self, forKey: .noStopTrim)
        seed = try container.decodeIfPresent(Int.self, forKey: .seed)
        for (key, neutral) in [(CodingKeys.frequencyPenalty, 0.0), (.presencePenalty, 0), (.repetitionPenalty, 1), (.minTokens, 0)] {
            if let value = try container.decodeIfPresent(Double.self, forKey: key), value != neutral {
                throw DecodingError.dataCorrupted(.init(codingPath: [key], debugDescription: "is not supported by this server; only \(neutral) is accepted"))
            }
        }
        for key in [CodingKeys.logitBias, .regex, .ebnf, .jsonSchema, .suffix] {
            if let value = try container.decodeIfPresent(AnyJSON.self, forKey: key), value != .null, value != .object([]), value != .string("") {
                throw DecodingError.dataCorrupted(.init(codingPath: [key], debugDescription: "is not supported by this server"))
            }
        }
        if let bestOf = try container.decodeIfPresent(Int.self, forKey: .bestOf), bestOf != 1, bestOf != (n ?? 1) {
            throw DecodingError.dataCorrupted(.init(codingPath: [CodingKeys.bestOf], debugDescription: "is not supported by this server"))
        }
    }

    func engineParameters(maxNewTokens: Int) throws(APIError) -> SamplingParameters {
        var sampling = SamplingParameters()
        sampling.maxNewTokens = maxNewTokens
        sampling.temperature = temperature ?? 1
        sampling.topP = topP ?? 1
        sampling.topK = topK ?? -1
        sampling.minP = minP ?? 0
        sampling.n = n ?? 1
        sampling.stop = stop ?? []
        sampling.stopTokenIDs = try SamplingParamsBody.tokenIDs(stopTokenIDs ?? [], field: "stop_token_ids")
        sampling.ignoreEOS = ignoreEOS ?? false
        sampling.skipSpecialTokens = skipSpecialTokens ?? true
        sampling.seed = seed.map { UInt64(bitPattern: Int64($0)) }
        return sampling
    }
}

/// `stream_options`.
struct StreamOptions: Codable, Sendable {
    var includeUsage: Bool?

    enum CodingKeys: String, CodingKey {
        case includeUsage = "include_usage"
    }
}

/// A prompt: text, a list of texts, token ids, or a list of token-id lists.
enum CompletionPrompt: Sendable {
    case texts([String], batch: Bool)
    case tokens([[Int]], batch: Bool)
}

/// `POST /v1/completions`.
struct CompletionRequestBody: Decodable, Sendable {
    var model: String?
    var prompt: CompletionPrompt
    var maxTokens: Int?
    var echo: Bool?
    var logprobs: Int?
    var stream: Bool?
    var streamOptions: StreamOptions?
    var sampling: OpenAISampling

    enum CodingKeys: String, CodingKey {
        case model, prompt, echo, logprobs, stream
        case maxTokens = "max_tokens"
        case streamOptions = "stream_options"
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        model = try container.decodeIfPresent(String.self, forKey: .model)
        if let texts = try? container.decode(OneOrMany<String>.self, forKey: .prompt) {
            prompt = .texts(texts.values, batch: texts.isBatch)
        } else {
            let ids = try container.decode(OneOrMany<[Int]>.self, forKey: .prompt)
            prompt = .tokens(ids.values, batch: ids.isBatch)
        }
        maxTokens = try container.decodeIfPresent(Int.self, forKey: .maxTokens)
        echo = try container.decodeIfPresent(Bool.self, forKey: .echo)
        logprobs = try container.decodeIfPresent(Int.self, forKey: .logprobs)
        stream = try container.decodeIfPresent(Bool.self, forKey: .stream)
        streamOptions = try container.decodeIfPresent(StreamOptions.self, forKey: .streamOptions)
        sampling = try OpenAISampling(from: decoder)
    }
}

/// One message of a conversation, checked: a role, and text parts only in a content list.
struct ChatMessage: Decodable, Sendable {
    var role: String

    /// The message as the chat template sees it: a content list's text parts joined into one string.
    static func flattened(_ message: JSONValue) -> JSONValue {
        guard case .object(var object) = message, case .array(let parts)? = object["content"] else { return message }
        object["content"] = .string(parts.compactMap { $0["text"]?.stringValue }.joined())
        return .object(object)
    }

    init(from decoder: any Decoder) throws {
        guard case .object(let entries) = try AnyJSON(from: decoder) else {
            throw DecodingError.typeMismatch(ChatMessage.self, .init(codingPath: decoder.codingPath, debugDescription: "expected a message object"))
        }
        guard let role = entries.last(where: { $0.0 == "role" })?.1.stringValue else {
            throw DecodingError.keyNotFound(AnyCodingKey(stringValue: "role"), .init(codingPath: decoder.codingPath, debugDescription: "a message needs a role"))
        }
        self.role = role
        if let index = entries.lastIndex(where: { $0.0 == "content" }), case .array(let parts) = entries[index].1 {
            for (partIndex, part) in parts.enumerated() where part["type"]?.stringValue != "text" || part["text"]?.stringValue == nil {
                throw DecodingError.dataCorrupted(.init(
                    codingPath: decoder.codingPath + [AnyCodingKey(stringValue: "content"), AnyCodingKey(stringValue: "\(partIndex)")],
                    debugDescription: "only text content parts are supported by this server"))
            }
        }
    }
}

/// `POST /v1/chat/completions`.
struct ChatCompletionRequestBody: Decodable, Sendable {
    var model: String?
    var messages: [ChatMessage]
    var maxTokens: Int?
    var logprobs: Bool?
    var topLogprobs: Int?
    var stream: Bool?
    var streamOptions: StreamOptions?
    var tools: [AnyJSON]?
    var chatTemplateKwargs: AnyJSON?
    var continueFinalMessage: Bool?
    var sampling: OpenAISampling

    enum CodingKeys: String, CodingKey {
        case model, messages, logprobs, stream, tools
        case maxTokens = "max_tokens"
        case maxCompletionTokens = "max_completion_tokens"
        case topLogprobs = "top_logprobs"
        case streamOptions = "stream_options"
        case chatTemplateKwargs = "chat_template_kwargs"
        case continueFinalMessage = "continue_final_message"
        case responseFormat = "response_format"
        case toolChoice = "tool_choice"
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        model = try container.decodeIfPresent(String.self, forKey: .model)
        messages = try container.decode([ChatMessage].self, forKey: .messages)
        maxTokens = try container.decodeIfPresent(Int.self, forKey: .maxCompletionTokens) ?? container.decodeIfPresent(Int.self, forKey: .maxTokens)
        logprobs = try container.decodeIfPresent(Bool.self, forKey: .logprobs)
        topLogprobs = try container.decodeIfPresent(Int.self, forKey: .topLogprobs)
        stream = try container.decodeIfPresent(Bool.self, forKey: .stream)
        streamOptions = try container.decodeIfPresent(StreamOptions.self, forKey: .streamOptions)
        tools = try container.decodeIfPresent([AnyJSON].self, forKey: .tools)
        chatTemplateKwargs = try container.decodeIfPresent(AnyJSON.self, forKey: .chatTemplateKwargs)
        continueFinalMessage = try container.decodeIfPresent(Bool.self, forKey: .continueFinalMessage)
        if let format = try container.decodeIfPresent(AnyJSON.self, forKey: .responseFormat), format != .null, format["type"]?.stringValue != "text" {
            throw DecodingError.dataCorrupted(.init(codingPath: [CodingKeys.responseFormat], debugDescription: "only {\"type\": \"text\"} is supported by this server"))
        }
        if let choice = try container.decodeIfPresent(AnyJSON.self, forKey: .toolChoice), choice != .null, choice != .string("none"), choice != .string("auto") {
            throw DecodingError.dataCorrupted(.init(codingPath: [CodingKeys.toolChoice], debugDescription: "only \"none\" and \"auto\" are supported by this server"))
        }
        sampling = try OpenAISampling(from: decoder)
    }
}

// MARK: Responses

struct UsageBody: Codable, Sendable {
    var promptTokens: Int
    var completionTokens: Int
    var totalTokens: Int

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case totalTokens = "total_tokens"
    }
}

/// `matched_stop` (SGLang): the stop token id or string that ended a choice.
enum MatchedStop: Encodable, Sendable {
    case token(Int)
    case text(String)

    init?(_ reason: FinishReason) {
        switch reason {
        case .stopToken(let token): self = .token(Int(token))
        case .stopString(let text): self = .text(text)
        default: return nil
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .token(let token): try container.encode(token)
        case .text(let text): try container.encode(text)
        }
    }
}

func openAIFinishReason(_ reason: FinishReason) -> String {
    switch reason {
    case .stopToken, .stopString: "stop"
    case .length: "length"
    case .abort: "abort"
    }
}

/// Completion log-probs, the legacy shape.
struct CompletionLogprobs: Encodable, Sendable {
    var tokens: [String]
    var tokenLogprobs: [Float]
    var topLogprobs: [[String: Float]]?
    var textOffset: [Int]

    enum CodingKeys: String, CodingKey {
        case tokens
        case tokenLogprobs = "token_logprobs"
        case topLogprobs = "top_logprobs"
        case textOffset = "text_offset"
    }
}

struct CompletionChoice: Encodable, Sendable {
    var index: Int
    var text: String
    var logprobs: CompletionLogprobs?
    var finishReason: String?
    var matchedStop: MatchedStop?

    enum CodingKeys: String, CodingKey {
        case index, text, logprobs
        case finishReason = "finish_reason"
        case matchedStop = "matched_stop"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(index, forKey: .index)
        try container.encode(text, forKey: .text)
        try container.encode(logprobs, forKey: .logprobs)
        try container.encode(finishReason, forKey: .finishReason)
        try container.encode(matchedStop, forKey: .matchedStop)
    }
}

/// `text_completion`, whole or as a stream chunk.
struct CompletionResponseBody: Encodable, Sendable {
    var id: String
    var object = "text_completion"
    var created: Int
    var model: String
    var choices: [CompletionChoice]
    var usage: UsageBody?

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: AnyCodingKey.self)
        try container.encode(id, forKey: .init(stringValue: "id"))
        try container.encode(object, forKey: .init(stringValue: "object"))
        try container.encode(created, forKey: .init(stringValue: "created"))
        try container.encode(model, forKey: .init(stringValue: "model"))
        try container.encode(choices, forKey: .init(stringValue: "choices"))
        try container.encode(usage, forKey: .init(stringValue: "usage"))
    }
}

struct ChatTopLogprob: Encodable, Sendable {
    var token: String
    var logprob: Float
    var bytes: [UInt8]
}

struct ChatTokenLogprob: Encodable, Sendable {
    var token: String
    var logprob: Float
    var bytes: [UInt8]
    var topLogprobs: [ChatTopLogprob]

    enum CodingKeys: String, CodingKey {
        case token, logprob, bytes
        case topLogprobs = "top_logprobs"
    }
}

struct ChatLogprobs: Encodable, Sendable {
    var content: [ChatTokenLogprob]
}

struct ChatMessageBody: Encodable, Sendable {
    var role: String?
    var content: String?

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: AnyCodingKey.self)
        try container.encodeIfPresent(role, forKey: .init(stringValue: "role"))
        try container.encodeIfPresent(content, forKey: .init(stringValue: "content"))
    }
}

struct ChatChoice: Encodable, Sendable {
    var index: Int
    /// `message` in a whole answer, `delta` in a stream chunk.
    var message: ChatMessageBody
    var isDelta: Bool
    var logprobs: ChatLogprobs?
    var finishReason: String?
    var matchedStop: MatchedStop?

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: AnyCodingKey.self)
        try container.encode(index, forKey: .init(stringValue: "index"))
        try container.encode(message, forKey: .init(stringValue: isDelta ? "delta" : "message"))
        try container.encode(logprobs, forKey: .init(stringValue: "logprobs"))
        try container.encode(finishReason, forKey: .init(stringValue: "finish_reason"))
        try container.encode(matchedStop, forKey: .init(stringValue: "matched_stop"))
    }
}

/// `chat.completion` or `chat.completion.chunk`.
struct ChatCompletionResponseBody: Encodable, Sendable {
    var id: String
    var object: String
    var created: Int
    var model: String
    var choices: [ChatChoice]
    var usage: UsageBody?

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: AnyCodingKey.self)
        try container.encode(id, forKey: .init(stringValue: "id"))
        try container.encode(object, forKey: .init(stringValue: "object"))
        try container.encode(created, forKey: .init(stringValue: "created"))
        try container.encode(model, forKey: .init(stringValue: "model"))
        try container.encode(choices, forKey: .init(stringValue: "choices"))
        try container.encode(usage, forKey: .init(stringValue: "usage"))
    }
}

/// `GET /v1/models`.
struct ModelListBody: Encodable, Sendable {
    struct Model: Encodable, Sendable {
        var id: String
        var object = "model"
        var created: Int
        var ownedBy = "kite"
        var root: String
        var maxModelLen: Int

        enum CodingKeys: String, CodingKey {
            case id, object, created, root
            case ownedBy = "owned_by"
            case maxModelLen = "max_model_len"
        }
    }

    var object = "list"
    var data: [Model]
}
