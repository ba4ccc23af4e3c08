import KiteJSON
import KiteTensor

/// One prompt of a data set, ready for rollout.
public struct PromptRecord: Sendable, Equatable {
    /// Position in the data file (0-based line of a valid record).
    public var index: Int
    /// The prompt as the data set gives it: a string, or a list of chat messages.
    public var prompt: JSONValue
    /// What the engine sees: the prompt rendered (chat template) and tokenised.
    public var promptTokens: [Int32]
    public var promptText: String
    public var label: JSONValue?
    public var metadata: JSONObject
    public var tools: JSONValue?

    public init(index: Int, prompt: JSONValue, promptTokens: [Int32], promptText: String, label: JSONValue? = nil, metadata: JSONObject = JSONObject(), tools: JSONValue? = nil) {
        self.index = index
        self.prompt = prompt
        self.promptTokens = promptTokens
        self.promptText = promptText
        self.label = label
        self.metadata = metadata
        self.tools = tools
    }
}

/// Where the data set's reader stands: which epoch, how far into it. Saved in checkpoints so a resumed run
/// sees exactly the prompts an uninterrupted run would.
public struct DataPosition: Sendable, Equatable {
    public var epoch: Int
    public var offset: Int

    public init(epoch: Int = 0, offset: Int = 0) {
        self.epoch = epoch
        self.offset = offset
    }

    public var json: JSONValue { ["epoch": .int(epoch), "offset": .int(offset)] }

    public init(json: JSONValue, source: String) throws(RLError) {
        guard let epoch = json["epoch"]?.intValue, let offset = json["offset"]?.intValue, epoch >= 0, offset >= 0 else {
            throw .invalidSample(sample: source, field: "data_position", message: "expected {\"epoch\": n, \"offset\": n}")
        }
        self.epoch = epoch
        self.offset = offset
    }
}

/// Prompts served in epochs, optionally shuffled (`--rollout-shuffle`) with a per-epoch permutation from
/// `--rollout-seed`, so the order depends only on the seed and the epoch.
public final class PromptDataset: @unchecked Sendable {
    public let records: [PromptRecord]
    public let shuffle: Bool
    public let seed: UInt64
    public private(set) var position = DataPosition()
    private var order: [Int] = []

    public init(records: [PromptRecord], shuffle: Bool, seed: UInt64) throws(RLError) {
        guard !records.isEmpty else { throw .invalidOption(name: "--prompt-data", message: "the data set has no prompts") }
        self.records = records
        self.shuffle = shuffle
        self.seed = seed
        order = permutation(epoch: 0)
    }

    private func permutation(epoch: Int) -> [Int] {
        var indices = Array(records.indices)
        guard shuffle else { return indices }
        var generator = SeededGenerator(seed: seed &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15)
        indices.shuffle(using: &generator)
        return indices
    }

    /// The next `count` prompts, crossing into the next epoch (reshuffled) when this one ends.
    public func next(_ count: Int) -> [PromptRecord] {
        var batch: [PromptRecord] = []
        while batch.count < count {
            if position.offset >= order.count {
                position = DataPosition(epoch: position.epoch + 1, offset: 0)
                order = permutation(epoch: position.epoch)
            }
            batch.append(records[order[position.offset]])
            position.offset += 1
        }
        return batch
    }

    /// Continues from a saved position.
    public func restore(_ saved: DataPosition) {
        position = saved
        order = permutation(epoch: saved.epoch)
    }
}

extension PromptRecord {
    /// The record as JSON, for checkpoints that carry unfinished groups.
    public var json: JSONValue {
        var object: JSONObject = [
            "index": .int(index), "prompt": prompt, "prompt_tokens": .array(promptTokens.map { .int(Int($0)) }),
            "prompt_text": .string(promptText), "metadata": .object(metadata),
        ]
        if let label { object["label"] = label }
        if let tools { object["tools"] = tools }
        return .object(object)
    }

    public init(json: JSONValue, source: String) throws(RLError) {
        guard let index = json["index"]?.intValue, let prompt = json["prompt"], let tokens = json["prompt_tokens"]?.arrayValue,
            let text = json["prompt_text"]?.stringValue
        else {
            throw .invalidSample(sample: source, field: "prompt record", message: "expected index, prompt, prompt_tokens and prompt_text")
        }
        var ids: [Int32] = []
        for token in tokens {
            guard let id = token.intValue, let narrow = Int32(exactly: id) else {
                throw .invalidSample(sample: source, field: "prompt_tokens", message: "expected token ids")
            }
            ids.append(narrow)
        }
        self.init(index: index, prompt: prompt, promptTokens: ids, promptText: text, label: json["label"], metadata: json["metadata"]?.objectValue ?? JSONObject(), tools: json["tools"])
    }
}
