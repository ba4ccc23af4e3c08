import KiteJSON
import KiteModels

/// How a sample's generation ended, after slime's `Sample.Status` (`slime/utils/types.py`).
public enum SampleStatus: String, Sendable, CaseIterable {
    case pending
    case completed
    case truncated
    case aborted
    /// A recoverable failure (tool error, parse error); the sample may hold partial output.
    case failed
}

/// One trajectory handed from rollout to training, after slime's `Sample` (`slime/utils/types.py`).
///
/// `tokens` holds the prompt followed by the response; the last `responseLength` of them are the
/// response (which, in multi-turn rollouts, includes tool/environment tokens with loss mask 0).
/// Per-response-token arrays (`lossMask`, `rolloutLogProbs`) have exactly `responseLength` entries.
public struct Sample: Sendable, Equatable {
    /// Global sample id, monotonic over a run.
    public var index: Int?
    /// The prompt group this sample belongs to (`n_samples_per_prompt` samples share it).
    public var groupIndex: Int?
    /// The rollout execution this sample came from; siblings of a fan-out share it. Nil: one rollout per sample.
    public var rolloutId: Int?
    /// The prompt: a string, or a list of chat messages.
    public var prompt: JSONValue
    /// Prompt token ids followed by response token ids.
    public var tokens: [Int]
    /// The decoded response text, which reward functions read.
    public var response: String
    /// How many trailing entries of `tokens` are the response.
    public var responseLength: Int
    /// The label from the data set (a string for math data; any JSON value).
    public var label: JSONValue?
    /// A number, or an object whose entry `--reward-key` selects.
    public var reward: JSONValue?
    /// 1 for tokens the policy is trained on, 0 for tool/environment tokens; nil means all ones.
    public var lossMask: [Int]?
    /// The engine's log-prob of every response token (0 for non-trainable tokens).
    public var rolloutLogProbs: [Double]?
    /// The experts the engine routed each token to (SGLang's `routed_experts`, slime's `rollout_routed_experts`):
    /// `[len(tokens) - 1, num_hidden_layers, topK]`, zeros in dense layers. `--use-rollout-routing-replay`
    /// trains with them.
    public var rolloutRoutedExperts: RoutedExperts?
    /// The policy weight version of every generate call that produced this sample.
    public var weightVersions: [String]
    /// Drop this sample from the loss: its loss mask becomes all zeros in training.
    public var removeSample: Bool
    public var status: SampleStatus
    public var metadata: JSONObject
    /// Keys of a serialised sample that Kite does not interpret, kept so a dump round-trips.
    public var extra: JSONObject

    public init(
        index: Int? = nil, groupIndex: Int? = nil, rolloutId: Int? = nil, prompt: JSONValue = "",
        tokens: [Int] = [], response: String = "", responseLength: Int = 0, label: JSONValue? = nil,
        reward: JSONValue? = nil, lossMask: [Int]? = nil, rolloutLogProbs: [Double]? = nil,
        weightVersions: [String] = [], removeSample: Bool = false, status: SampleStatus = .pending,
        metadata: JSONObject = JSONObject(), extra: JSONObject = JSONObject(), rolloutRoutedExperts: RoutedExperts? = nil
    ) {
        self.rolloutRoutedExperts = rolloutRoutedExperts
        self.index = index
        self.groupIndex = groupIndex
        self.rolloutId = rolloutId
        self.prompt = prompt
        self.tokens = tokens
        self.response = response
        self.responseLength = responseLength
        self.label = label
        self.reward = reward
        self.lossMask = lossMask
        self.rolloutLogProbs = rolloutLogProbs
        self.weightVersions = weightVersions
        self.removeSample = removeSample
        self.status = status
        self.metadata = metadata
        self.extra = extra
    }

    /// A name for error messages: the index when known.
    public var name: String { index.map { "#\($0)" } ?? "(no index)" }

    public var promptTokens: ArraySlice<Int> { tokens.dropLast(max(0, responseLength)) }
    public var responseTokens: ArraySlice<Int> { tokens.suffix(max(0, responseLength)) }

    /// The loss mask training uses: all ones when unset, all zeros when `removeSample`
    /// (slime's `_convert_samples_to_train_data`).
    public var effectiveLossMask: [Int] {
        if removeSample { return Array(repeating: 0, count: max(0, responseLength)) }
        return lossMask ?? Array(repeating: 1, count: max(0, responseLength))
    }

    /// The scalar reward, read with `--reward-key` when the reward is an object
    /// (slime's `Sample.get_reward_value`).
    public func rewardValue(key: String?) throws(RLError) -> Double {
        guard let reward else { throw RLError.invalidReward(sample: name, message: "no reward was computed") }
        if let key, !key.isEmpty {
            guard let object = reward.objectValue else {
                throw RLError.invalidReward(sample: name, message: "--reward-key \(key) needs an object reward, found \(reward.typeName)")
            }
            guard let value = object[key] else {
                throw RLError.invalidReward(sample: name, message: "reward object has no key '\(key)' (keys: \(object.keys.joined(separator: ", ")))")
            }
            return try Self.number(value, sample: name, what: "reward['\(key)']")
        }
        return try Self.number(reward, sample: name, what: "reward")
    }

    private static func number(_ value: JSONValue, sample: String, what: String) throws(RLError) -> Double {
        switch value {
        case .int(let v): return Double(v)
        case .double(let v): return v
        case .bool(let v): return v ? 1 : 0  // Python: True is 1
        default: throw RLError.invalidReward(sample: sample, message: "\(what) must be a number, found \(value.typeName)")
        }
    }

    /// Checks the invariants slime's `_validate_response_metadata_lengths` checks.
    public func validate() throws(RLError) {
        if responseLength < 0 || responseLength > tokens.count {
            throw .invalidSample(sample: name, field: "response_length", message: "\(responseLength) is outside [0, \(tokens.count)] (len(tokens))")
        }
        if let lossMask, lossMask.count != responseLength {
            throw .invalidSample(sample: name, field: "loss_mask", message: "length \(lossMask.count) != response_length \(responseLength)")
        }
        if let lossMask, let bad = lossMask.firstIndex(where: { $0 != 0 && $0 != 1 }) {
            throw .invalidSample(sample: name, field: "loss_mask", message: "entry \(bad) is \(lossMask[bad]), expected 0 or 1")
        }
        if let rolloutLogProbs, rolloutLogProbs.count != responseLength {
            throw .invalidSample(sample: name, field: "rollout_log_probs", message: "length \(rolloutLogProbs.count) != response_length \(responseLength)")
        }
    }
}

// MARK: - JSON, with slime's `Sample.to_dict` key names

extension Sample {
    static let knownKeys: Set<String> = [
        "index", "group_index", "rollout_id", "prompt", "tokens", "response", "response_length", "label",
        "reward", "loss_mask", "rollout_log_probs", "weight_versions", "remove_sample", "status", "metadata",
        "rollout_routed_experts",
    ]

    /// The sample as the JSON object slime's `Sample.to_dict` produces (keys not interpreted by Kite
    /// follow from `extra`).
    public var json: JSONValue {
        var object = JSONObject()
        object["group_index"] = groupIndex.map { .int($0) } ?? .null
        object["index"] = index.map { .int($0) } ?? .null
        object["rollout_id"] = rolloutId.map { .int($0) } ?? .null
        object["prompt"] = prompt
        object["tokens"] = .array(tokens.map { .int($0) })
        object["response"] = .string(response)
        object["response_length"] = .int(responseLength)
        object["label"] = label ?? .null
        object["reward"] = reward ?? .null
        object["loss_mask"] = lossMask.map { .array($0.map { .int($0) }) } ?? .null
        object["weight_versions"] = .array(weightVersions.map { .string($0) })
        object["rollout_log_probs"] = rolloutLogProbs.map { .array($0.map { .double($0) }) } ?? .null
        if let routed = rolloutRoutedExperts {
            // Nested [rows][layers][topK], as slime's to_dict gives the array.
            let (layers, k) = (routed.layerCount, routed.topK)
            object["rollout_routed_experts"] = .array((0..<routed.tokenCount).map { t in
                .array((0..<layers).map { l in .array(routed.values[((t * layers + l) * k)..<((t * layers + l + 1) * k)].map { .int(Int($0)) }) })
            })
        }
        object["remove_sample"] = .bool(removeSample)
        object["status"] = .string(status.rawValue)
        object["metadata"] = .object(metadata)
        for (key, value) in extra where object[key] == nil { object[key] = value }
        return .object(object)
    }

    private static func nonNull(_ value: JSONValue?) -> JSONValue? {
        guard let value, !value.isNull else { return Optional<JSONValue>.none }
        return value
    }

    /// Reads `rollout_routed_experts`: a nested array `[rows][layers][topK]` of expert indices, every row with
    /// the same number of layers and every layer the same top-k.
    static func routedExperts(_ value: JSONValue?, sample: String) throws(RLError) -> RoutedExperts? {
        guard let value, !value.isNull else { return nil }
        func failure(_ message: String) -> RLError { .invalidSample(sample: sample, field: "rollout_routed_experts", message: message) }
        guard let rows = value.arrayValue else { throw failure("expected an array [rows][layers][topK], found \(value.typeName)") }
        var layers: Int?, topK: Int?
        var values: [Int32] = []
        for (t, row) in rows.enumerated() {
            guard let rowLayers = row.arrayValue, rowLayers.count == (layers ?? rowLayers.count) else {
                throw failure("row \(t) is not an array of \(layers.map(String.init) ?? "some") layers")
            }
            layers = rowLayers.count
            for (l, layer) in rowLayers.enumerated() {
                guard let experts = layer.arrayValue, experts.count == (topK ?? experts.count), !experts.isEmpty else {
                    throw failure("row \(t) layer \(l) is not a non-empty array of \(topK.map(String.init) ?? "some") experts")
                }
                topK = experts.count
                for expert in experts {
                    guard let e = expert.intValue, let e32 = Int32(exactly: e) else { throw failure("row \(t) layer \(l) holds \(expert.typeName), expected an expert index") }
                    values.append(e32)
                }
            }
        }
        do {
            return try RoutedExperts(tokenCount: rows.count, layerCount: layers ?? 0, topK: topK ?? 1, values: values)
        } catch {
            throw failure(error.description)
        }
    }

    /// Reads a sample written by `json` (or by slime's `to_dict`, converted to JSON); `position` names
    /// the sample in errors when it has no index.
    public init(json: JSONValue, position: Int) throws(RLError) {
        guard let object = json.objectValue else {
            throw .invalidSample(sample: "at position \(position)", field: "", message: "expected an object, found \(json.typeName)")
        }
        var name = "at position \(position)"
        func field<T>(_ key: String, _ convert: (JSONValue) -> T?, _ expected: String) throws(RLError) -> T? {
            guard let value = object[key], !value.isNull else { return nil }
            guard let converted = convert(value) else {
                throw .invalidSample(sample: name, field: key, message: "expected \(expected), found \(value.typeName)")
            }
            return converted
        }
        func intArray(_ value: JSONValue) -> [Int]? {
            guard let array = value.arrayValue else { return nil }
            var out: [Int] = []
            out.reserveCapacity(array.count)
            for element in array {
                guard let v = element.intValue else { return nil }
                out.append(v)
            }
            return out
        }
        func doubleArray(_ value: JSONValue) -> [Double]? {
            guard let array = value.arrayValue else { return nil }
            var out: [Double] = []
            out.reserveCapacity(array.count)
            for element in array {
                guard let v = element.doubleValue else { return nil }
                out.append(v)
            }
            return out
        }
        let index = try field("index", { $0.intValue }, "an integer")
        if let index { name = "#\(index)" }
        let statusText = try field("status", { $0.stringValue }, "a string") ?? SampleStatus.pending.rawValue
        guard let status = SampleStatus(rawValue: statusText) else {
            throw .invalidSample(sample: name, field: "status", message: "'\(statusText)' is not one of \(SampleStatus.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let tokens = try field("tokens", intArray, "an array of integers") ?? []
        var extra = JSONObject()
        for (key, value) in object where !Self.knownKeys.contains(key) { extra[key] = value }
        self.init(
            index: index,
            groupIndex: try field("group_index", { $0.intValue }, "an integer"),
            rolloutId: try field("rollout_id", { $0.intValue }, "an integer"),
            prompt: object["prompt"] ?? "",
            tokens: tokens,
            response: try field("response", { $0.stringValue }, "a string") ?? "",
            responseLength: try field("response_length", { $0.intValue }, "an integer") ?? 0,
            label: Self.nonNull(object["label"]),
            reward: Self.nonNull(object["reward"]),
            lossMask: try field("loss_mask", intArray, "an array of integers"),
            rolloutLogProbs: try field("rollout_log_probs", doubleArray, "an array of numbers"),
            weightVersions: try field("weight_versions", { v in v.arrayValue.flatMap { a in
                let s = a.compactMap(\.stringValue)
                return s.count == a.count ? s : nil
            } }, "an array of strings") ?? [],
            removeSample: try field("remove_sample", { $0.boolValue }, "a boolean") ?? false,
            status: status,
            metadata: try field("metadata", { $0.objectValue }, "an object") ?? JSONObject(),
            extra: extra,
            rolloutRoutedExperts: try Self.routedExperts(object["rollout_routed_experts"], sample: name)
        )
        try validate()
    }
}
