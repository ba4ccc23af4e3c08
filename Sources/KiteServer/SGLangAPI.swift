import FoundationEssentials
import KiteEngine

// SGLang's native API (`python/sglang/srt/managers/io_struct.py`, `sampling/sampling_params.py`), with
// its field names and shapes. Fields Kite does not implement are accepted only at their neutral value, so
// that a request never silently means something else here than on SGLang.

/// `POST /generate`: one prompt or a batch, as text or token ids.
public struct GenerateRequestBody: Codable, Sendable {
    var text: OneOrMany<String>?
    var inputIDs: OneOrMany<[Int]>?
    var samplingParams: OneOrMany<SamplingParamsBody>?
    var rid: OneOrMany<String>?
    var returnLogprob: OneOrMany<Bool>?
    var logprobStartLen: OneOrMany<Int>?
    var topLogprobsNum: OneOrMany<Int>?
    var returnTextInLogprobs: Bool?
    var stream: Bool?
    var returnRoutedExperts: OneOrMany<Bool>?

    enum CodingKeys: String, CodingKey {
        case text
        case inputIDs = "input_ids"
        case samplingParams = "sampling_params"
        case rid
        case returnLogprob = "return_logprob"
        case logprobStartLen = "logprob_start_len"
        case topLogprobsNum = "top_logprobs_num"
        case returnTextInLogprobs = "return_text_in_logprobs"
        case stream
        case inputEmbeds = "input_embeds"
        case imageData = "image_data"
        case audioData = "audio_data"
        case videoData = "video_data"
        case loraPath = "lora_path"
        case returnHiddenStates = "return_hidden_states"
        case tokenIDsLogprob = "token_ids_logprob"
        case returnRoutedExperts = "return_routed_experts"
    }

    /// Fields of SGLang's `GenerateReqInput` that are ignored here because they change nothing about the
    /// tokens (logging, routing and tracing hints).
    static let ignoredFields: Set<String> = [
        "log_metrics", "modalities", "session_params", "custom_logit_processor", "data_parallel_rank",
        "bootstrap_host", "bootstrap_port", "bootstrap_room", "bootstrap_pair_key",
        "priority", "extra_key", "routed_dp_rank", "no_logs", "background", "conversation_id", "label",
        "return_bytes", "routing_key", "external_trace_header", "received_time", "stream_options",
    ]

    public init(from decoder: any Decoder) throws {
        let known = Set(CodingKeys.allStrings).union(Self.ignoredFields)
        try decoder.rejectUnknownKeys(known, in: "the request")
        let container = try decoder.container(keyedBy: CodingKeys.self)
        text = try container.decodeIfPresent(OneOrMany<String>.self, forKey: .text)
        inputIDs = try container.decodeIfPresent(OneOrMany<[Int]>.self, forKey: .inputIDs)
        samplingParams = try container.decodeIfPresent(OneOrMany<SamplingParamsBody>.self, forKey: .samplingParams)
        rid = try container.decodeIfPresent(OneOrMany<String>.self, forKey: .rid)
        returnLogprob = try container.decodeIfPresent(OneOrMany<Bool>.self, forKey: .returnLogprob)
        logprobStartLen = try container.decodeIfPresent(OneOrMany<Int>.self, forKey: .logprobStartLen)
        topLogprobsNum = try container.decodeIfPresent(OneOrMany<Int>.self, forKey: .topLogprobsNum)
        returnTextInLogprobs = try container.decodeIfPresent(Bool.self, forKey: .returnTextInLogprobs)
        stream = try container.decodeIfPresent(Bool.self, forKey: .stream)
        returnRoutedExperts = try container.decodeIfPresent(OneOrMany<Bool>.self, forKey: .returnRoutedExperts)
        for key in [CodingKeys.inputEmbeds, .imageData, .audioData, .videoData, .loraPath, .tokenIDsLogprob] {
            if try container.decodeIfPresent(AnyJSON.self, forKey: key).map({ $0 != .null }) ?? false {
                throw DecodingError.dataCorrupted(.init(codingPath: [key], debugDescription: "is not supported by this server (text-only models, no LoRA)"))
            }
        }
        if try container.decodeIfPresent(OneOrMany<Bool>.self, forKey: .returnHiddenStates)?.values.contains(true) ?? false {
            throw DecodingError.dataCorrupted(.init(codingPath: [CodingKeys.returnHiddenStates], debugDescription: "is not supported by this server"))
        }
    }

    public init(
        text: String? = nil, inputIDs: [Int]? = nil, samplingParams: SamplingParamsBody? = nil, rid: String? = nil,
        returnLogprob: Bool? = nil, topLogprobsNum: Int? = nil, stream: Bool? = nil, returnRoutedExperts: Bool? = nil
    ) {
        self.returnRoutedExperts = returnRoutedExperts.map { .one($0) }
        self.text = text.map { .one($0) }
        self.inputIDs = inputIDs.map { .one($0) }
        self.samplingParams = samplingParams.map { .one($0) }
        self.rid = rid.map { .one($0) }
        self.returnLogprob = returnLogprob.map { .one($0) }
        self.topLogprobsNum = topLogprobsNum.map { .one($0) }
        self.stream = stream
    }

    /// A batch of token-id prompts.
    public init(batchInputIDs: [[Int]], samplingParams: SamplingParamsBody? = nil, returnLogprob: Bool? = nil, stream: Bool? = nil) {
        self.inputIDs = .many(batchInputIDs)
        self.samplingParams = samplingParams.map { .one($0) }
        self.returnLogprob = returnLogprob.map { .one($0) }
        self.stream = stream
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        func put<T: Encodable>(_ value: OneOrMany<T>?, _ key: CodingKeys) throws {
            switch value {
            case .one(let single): try container.encode(single, forKey: key)
            case .many(let list): try container.encode(list, forKey: key)
            case nil: break
            }
        }
        try put(text, .text)
        try put(inputIDs, .inputIDs)
        try put(samplingParams, .samplingParams)
        try put(rid, .rid)
        try put(returnLogprob, .returnLogprob)
        try put(logprobStartLen, .logprobStartLen)
        try put(topLogprobsNum, .topLogprobsNum)
        try container.encodeIfPresent(returnTextInLogprobs, forKey: .returnTextInLogprobs)
        try container.encodeIfPresent(stream, forKey: .stream)
        try put(returnRoutedExperts, .returnRoutedExperts)
    }
}

/// `sampling_params`, with SGLang's names and defaults.
public struct SamplingParamsBody: Codable, Sendable, Equatable {
    public var maxNewTokens: Int?
    public var temperature: Double?
    public var topP: Double?
    public var topK: Int?
    public var minP: Double?
    public var stop: [String]?
    public var stopTokenIDs: [Int]?
    public var ignoreEOS: Bool?
    public var n: Int?
    public var skipSpecialTokens: Bool?
    public var noStopTrim: Bool?
    /// `sampling_seed`: the same seed and request give the same tokens.
    public var seed: Int?

    public init(maxNewTokens: Int? = nil, temperature: Double? = nil, topP: Double? = nil, topK: Int? = nil, stop: [String]? = nil, stopTokenIDs: [Int]? = nil, ignoreEOS: Bool? = nil, n: Int? = nil, seed: Int? = nil) {
        self.maxNewTokens = maxNewTokens
        self.temperature = temperature
        self.topP = topP
        self.topK = topK
        self.stop = stop
        self.stopTokenIDs = stopTokenIDs
        self.ignoreEOS = ignoreEOS
        self.n = n
        self.seed = seed
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case maxNewTokens = "max_new_tokens"
        case temperature
        case topP = "top_p"
        case topK = "top_k"
        case minP = "min_p"
        case stop
        case stopTokenIDs = "stop_token_ids"
        case ignoreEOS = "ignore_eos"
        case n
        case skipSpecialTokens = "skip_special_tokens"
        case noStopTrim = "no_stop_trim"
        case seed = "sampling_seed"
    }

    /// SGLang parameters accepted only at their neutral value (Kite does not implement them).
    static let neutralNumbers: [String: Double] = [
        "frequency_penalty": 0, "presence_penalty": 0, "repetition_penalty": 1, "min_new_tokens": 0,
    ]
    static let mustBeNull: Set<String> = ["json_schema", "regex", "ebnf", "structural_tag", "stop_regex", "logit_bias"]
    /// Formatting and scheduling hints that change no token: accepted and ignored.
    static let ignored: Set<String> = ["spaces_between_special_tokens", "stream_interval", "custom_params"]

    public init(from decoder: any Decoder) throws {
        let known = Set(CodingKeys.allCases.map(\.rawValue)).union(Self.neutralNumbers.keys).union(Self.mustBeNull).union(Self.ignored)
        try decoder.rejectUnknownKeys(known, in: "sampling_params")
        let container = try decoder.container(keyedBy: CodingKeys.self)
        maxNewTokens = try container.decodeIfPresent(Int.self, forKey: .maxNewTokens)
        temperature = try container.decodeIfPresent(Double.self, forKey: .temperature)
        topP = try container.decodeIfPresent(Double.self, forKey: .topP)
        topK = try container.decodeIfPresent(Int.self, forKey: .topK)
        minP = try container.decodeIfPresent(Double.self, forKey: .minP)
        stop = try container.decodeIfPresent(OneOrMany<String>.self, forKey: .stop)?.values
        stopTokenIDs = try container.decodeIfPresent([Int].self, forKey: .stopTokenIDs)
        ignoreEOS = try container.decodeIfPresent(Bool.self, forKey: .ignoreEOS)
        n = try container.decodeIfPresent(Int.self, forKey: .n)
        skipSpecialTokens = try container.decodeIfPresent(Bool.self, forKey: .skipSpecialTokens)
        noStopTrim = try container.decodeIfPresent(Bool.self, forKey: .noStopTrim)
        seed = try container.decodeIfPresent(Int.self, forKey: .seed)
        let extra = try decoder.container(keyedBy: AnyCodingKey.self)
        for (name, neutral) in Self.neutralNumbers {
            let key = AnyCodingKey(stringValue: name)
            if let value = try extra.decodeIfPresent(Double.self, forKey: key), value != neutral {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath + [key], debugDescription: "is not supported by this server; only \(neutral) is accepted"))
            }
        }
        for name in Self.mustBeNull {
            let key = AnyCodingKey(stringValue: name)
            if let value = try extra.decodeIfPresent(AnyJSON.self, forKey: key), value != .null, value != .object([]) {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath + [key], debugDescription: "is not supported by this server"))
            }
        }
    }

    /// The engine's parameters; range checks are the engine's (one place, one message).
    func engineParameters(defaultMaxNewTokens: Int = 128) throws(APIError) -> SamplingParameters {
        var sampling = SamplingParameters()
        sampling.maxNewTokens = maxNewTokens ?? defaultMaxNewTokens
        sampling.temperature = temperature ?? 1
        sampling.topP = topP ?? 1
        sampling.topK = topK ?? -1
        sampling.minP = minP ?? 0
        sampling.stop = stop ?? []
        sampling.stopTokenIDs = try Self.tokenIDs(stopTokenIDs ?? [], field: "sampling_params.stop_token_ids")
        sampling.ignoreEOS = ignoreEOS ?? false
        sampling.n = n ?? 1
        sampling.skipSpecialTokens = skipSpecialTokens ?? true
        sampling.seed = seed.map { UInt64(bitPattern: Int64($0)) }
        return sampling
    }

    /// Converts ids to the engine's width; the vocabulary check is the engine's.
    static func tokenIDs(_ ids: [Int], field: String) throws(APIError) -> [Int32] {
        var result: [Int32] = []
        result.reserveCapacity(ids.count)
        for (position, id) in ids.enumerated() {
            guard let narrow = Int32(exactly: id), narrow >= 0 else {
                throw .badRequest("invalid '\(field)': token id \(id) at position \(position) is outside the vocabulary", param: field)
            }
            result.append(narrow)
        }
        return result
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(maxNewTokens, forKey: .maxNewTokens)
        try container.encodeIfPresent(temperature, forKey: .temperature)
        try container.encodeIfPresent(topP, forKey: .topP)
        try container.encodeIfPresent(topK, forKey: .topK)
        try container.encodeIfPresent(minP, forKey: .minP)
        try container.encodeIfPresent(stop, forKey: .stop)
        try container.encodeIfPresent(stopTokenIDs, forKey: .stopTokenIDs)
        try container.encodeIfPresent(ignoreEOS, forKey: .ignoreEOS)
        try container.encodeIfPresent(n, forKey: .n)
        try container.encodeIfPresent(skipSpecialTokens, forKey: .skipSpecialTokens)
        try container.encodeIfPresent(noStopTrim, forKey: .noStopTrim)
        try container.encodeIfPresent(seed, forKey: .seed)
    }
}

/// One sample's answer to `/generate` (a batch answers a list of these, prompt-major).
public struct GenerateResponseBody: Codable, Sendable {
    public var text: String
    public var outputIDs: [Int]
    public var metaInfo: MetaInfo
    /// The prompt's position in a streamed batch.
    public var index: Int?

    enum CodingKeys: String, CodingKey {
        case text
        case outputIDs = "output_ids"
        case metaInfo = "meta_info"
        case index
    }

    public struct MetaInfo: Codable, Sendable {
        public var id: String
        public var finishReason: FinishReasonBody?
        public var promptTokens: Int
        public var completionTokens: Int
        public var cachedTokens: Int
        public var weightVersion: String
        public var e2eLatency: Double?
        public var outputTokenLogprobs: [TokenLogprobEntry]?
        public var outputTopLogprobs: [[TokenLogprobEntry]]?
        public var inputTokenLogprobs: [TokenLogprobEntry]?
        /// With `return_routed_experts`: base64 of the little-endian i32 array `[prompt + completion - 1,
        /// num_hidden_layers, topK]` (SGLang's encoding; see `GenerationResult.routedExperts`).
        public var routedExperts: String?

        enum CodingKeys: String, CodingKey {
            case id
            case finishReason = "finish_reason"
            case promptTokens = "prompt_tokens"
            case completionTokens = "completion_tokens"
            case cachedTokens = "cached_tokens"
            case weightVersion = "weight_version"
            case e2eLatency = "e2e_latency"
            case outputTokenLogprobs = "output_token_logprobs"
            case outputTopLogprobs = "output_top_logprobs"
            case inputTokenLogprobs = "input_token_logprobs"
            case routedExperts = "routed_experts"
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(finishReason, forKey: .finishReason)
            try container.encode(promptTokens, forKey: .promptTokens)
            try container.encode(completionTokens, forKey: .completionTokens)
            try container.encode(cachedTokens, forKey: .cachedTokens)
            try container.encode(weightVersion, forKey: .weightVersion)
            try container.encodeIfPresent(e2eLatency, forKey: .e2eLatency)
            try container.encodeIfPresent(inputTokenLogprobs, forKey: .inputTokenLogprobs)
            try container.encodeIfPresent(outputTokenLogprobs, forKey: .outputTokenLogprobs)
            try container.encodeIfPresent(outputTopLogprobs, forKey: .outputTopLogprobs)
            try container.encodeIfPresent(routedExperts, forKey: .routedExperts)
        }
    }
}

/// SGLang's `routed_experts` encoding: the i32 values, little-endian, in base64.
public enum RoutedExpertsEncoding {
    public static func encode(_ values: [Int32]) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * 4)
        for value in values {
            let bits = UInt32(bitPattern: value)
            for shift in [0, 8, 16, 24] as [UInt32] { bytes.append(UInt8(truncatingIfNeeded: bits >> shift)) }
        }
        return Data(bytes).base64EncodedString()
    }

    /// The values of an encoded array; nil when the text is not base64 of whole i32 values.
    public static func decode(_ text: String) -> [Int32]? {
        guard let data = Data(base64Encoded: text), data.count % 4 == 0 else { return nil }
        let bytes = [UInt8](data)
        var values: [Int32] = []
        values.reserveCapacity(bytes.count / 4)
        for i in stride(from: 0, to: bytes.count, by: 4) {
            var bits = UInt32(bytes[i + 3])
            bits = bits << 8 | UInt32(bytes[i + 2])
            bits = bits << 8 | UInt32(bytes[i + 1])
            bits = bits << 8 | UInt32(bytes[i])
            values.append(Int32(bitPattern: bits))
        }
        return values
    }
}

/// `[logprob, token_id, text or null]`, SGLang's log-prob entry.
public struct TokenLogprobEntry: Codable, Sendable, Equatable {
    public var logprob: Float
    public var tokenID: Int
    public var text: String?

    public init(logprob: Float, tokenID: Int, text: String? = nil) {
        self.logprob = logprob
        self.tokenID = tokenID
        self.text = text
    }

    public init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        logprob = try container.decodeNil() ? -.infinity : try container.decode(Float.self)
        tokenID = try container.decode(Int.self)
        text = container.isAtEnd ? nil : try container.decodeIfPresent(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        // JSON has no infinities; a token the distribution cannot produce gets the most negative float.
        try container.encode(logprob.isFinite ? logprob : -.greatestFiniteMagnitude)
        try container.encode(tokenID)
        if let text { try container.encode(text) } else { try container.encodeNil() }
    }
}

/// `{"type": "stop", "matched": 2}`, `{"type": "stop", "matched": "\n"}`, `{"type": "length", "length": 16}`,
/// `{"type": "abort", "message": "..."}`.
public struct FinishReasonBody: Codable, Sendable, Equatable {
    public var type: String
    public var matchedToken: Int?
    public var matchedText: String?
    public var length: Int?
    public var message: String?

    init(_ reason: FinishReason) {
        switch reason {
        case .stopToken(let token): type = "stop"; matchedToken = Int(token)
        case .stopString(let text): type = "stop"; matchedText = text
        case .length(let count): type = "length"; length = count
        case .abort(let text): type = "abort"; message = text
        }
    }

    enum CodingKeys: String, CodingKey {
        case type, matched, length, message
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        type = try container.decode(String.self, forKey: .type)
        matchedToken = try? container.decodeIfPresent(Int.self, forKey: .matched)
        matchedText = try? container.decodeIfPresent(String.self, forKey: .matched)
        length = try container.decodeIfPresent(Int.self, forKey: .length)
        message = try container.decodeIfPresent(String.self, forKey: .message)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(type, forKey: .type)
        if let matchedToken { try container.encode(matchedToken, forKey: .matched) }
        if let matchedText { try container.encode(matchedText, forKey: .matched) }
        if let length { try container.encode(length, forKey: .length) }
        if let message { try container.encode(message, forKey: .message) }
    }
}

/// `POST /abort_request`.
public struct AbortRequestBody: Codable, Sendable {
    public var rid: String?
    public var abortAll: Bool?
    public var abortMessage: String?

    public init(rid: String? = nil, abortAll: Bool? = nil) {
        self.rid = rid
        self.abortAll = abortAll
    }

    enum CodingKeys: String, CodingKey {
        case rid
        case abortAll = "abort_all"
        case abortMessage = "abort_message"
    }
}

/// `POST /update_weights_from_disk`.
public struct UpdateWeightsFromDiskBody: Codable, Sendable {
    public var modelPath: String
    public var loadFormat: String?
    public var weightVersion: String?
    public var abortAllRequests: Bool?

    public init(modelPath: String, weightVersion: String? = nil) {
        self.modelPath = modelPath
        self.weightVersion = weightVersion
    }

    enum CodingKeys: String, CodingKey {
        case modelPath = "model_path"
        case loadFormat = "load_format"
        case weightVersion = "weight_version"
        case abortAllRequests = "abort_all_requests"
    }
}

/// Answer of the weight and memory endpoints.
public struct SuccessBody: Codable, Sendable {
    public var success: Bool
    public var message: String
    public var weightVersion: String?

    enum CodingKeys: String, CodingKey {
        case success, message
        case weightVersion = "weight_version"
    }
}

/// `POST /release_memory_occupation`, `/resume_memory_occupation`: `tags` are accepted (weights stay).
public struct MemoryOccupationBody: Codable, Sendable {
    public var tags: [String]?
}

/// `GET /get_model_info`.
public struct ModelInfoBody: Codable, Sendable {
    public var modelPath: String
    public var tokenizerPath: String?
    public var isGeneration: Bool
    public var weightVersion: String
    public var hasImageUnderstanding: Bool
    /// Not in SGLang's answer: what a client needs to make valid random token ids.
    public var vocabSize: Int
    public var contextLength: Int

    enum CodingKeys: String, CodingKey {
        case modelPath = "model_path"
        case tokenizerPath = "tokenizer_path"
        case isGeneration = "is_generation"
        case weightVersion = "weight_version"
        case hasImageUnderstanding = "has_image_understanding"
        case vocabSize = "vocab_size"
        case contextLength = "context_length"
    }
}

/// `GET /get_server_info`: the server's arguments and the engine's state.
public struct ServerInfoBody: Codable, Sendable {
    public var modelPath: String
    public var servedModelName: String
    public var host: String
    public var port: Int
    public var contextLength: Int
    public var maxTotalTokens: Int
    public var maxRunningRequests: Int
    public var maxQueuedRequests: Int
    public var chunkedPrefillSize: Int
    public var pageSize: Int
    public var disableRadixCache: Bool
    public var weightVersion: String
    public var version: String
    public var internalStates: [InternalState]

    public struct InternalState: Codable, Sendable {
        public var numRunningReqs: Int
        public var numWaitingReqs: Int
        public var totalBlocks: Int
        public var freeBlocks: Int
        public var cachedBlocks: Int
        public var peakUsedBlocks: Int
        public var memoryReleased: Bool
        public var generatedTokens: Int
        public var prefilledTokens: Int
        public var cachedPromptTokens: Int
        public var preemptions: Int
        public var steps: Int

        enum CodingKeys: String, CodingKey {
            case numRunningReqs = "num_running_reqs"
            case numWaitingReqs = "num_waiting_reqs"
            case totalBlocks = "total_blocks"
            case freeBlocks = "free_blocks"
            case cachedBlocks = "cached_blocks"
            case peakUsedBlocks = "peak_used_blocks"
            case memoryReleased = "memory_released"
            case generatedTokens = "generated_tokens"
            case prefilledTokens = "prefilled_tokens"
            case cachedPromptTokens = "cached_prompt_tokens"
            case preemptions
            case steps
        }
    }

    enum CodingKeys: String, CodingKey {
        case modelPath = "model_path"
        case servedModelName = "served_model_name"
        case host, port
        case contextLength = "context_length"
        case maxTotalTokens = "max_total_tokens"
        case maxRunningRequests = "max_running_requests"
        case maxQueuedRequests = "max_queued_requests"
        case chunkedPrefillSize = "chunked_prefill_size"
        case pageSize = "page_size"
        case disableRadixCache = "disable_radix_cache"
        case weightVersion = "weight_version"
        case version
        case internalStates = "internal_states"
    }
}

/// `GET /v1/loads` (what slime polls until an engine is idle) and `GET /get_load`.
public struct LoadsBody: Codable, Sendable {
    public var loads: [Load]

    public struct Load: Codable, Sendable {
        public var dpRank: Int
        public var numRunningReqs: Int
        public var numWaitingReqs: Int
        public var numTotalReqs: Int
        public var numUsedTokens: Int
        public var maxTotalNumTokens: Int

        enum CodingKeys: String, CodingKey {
            case dpRank = "dp_rank"
            case numRunningReqs = "num_running_reqs"
            case numWaitingReqs = "num_waiting_reqs"
            case numTotalReqs = "num_total_reqs"
            case numUsedTokens = "num_used_tokens"
            case maxTotalNumTokens = "max_total_num_tokens"
        }
    }
}

extension CodingKey where Self: CaseIterable & RawRepresentable, RawValue == String {
    static var allStrings: [String] { allCases.map(\.rawValue) }
}

extension GenerateRequestBody.CodingKeys: CaseIterable {}
