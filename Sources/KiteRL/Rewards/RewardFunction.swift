import KiteJSON

/// Scores finished samples. Implementations: the rule-based `RewardHub` types, a remote reward model
/// (`--rm-url`), a supervised subprocess (`--custom-rm-cmd`), and the synthetic tasks' checkers.
public protocol RewardFunction: Sendable {
    /// One reward per sample, in order (a number, or an object read with `--reward-key`). With `--group-rm`
    /// the samples are one prompt's group; otherwise any batch.
    func rewards(for samples: [Sample]) async throws -> [JSONValue]
}

/// A `RewardHub` rule (`--rm-type deepscaler|dapo|math|f1|gpqa`, or `metadata.rm_type` per sample).
public struct RuleReward: RewardFunction {
    public let rmType: String

    public init(rmType: String) throws(RLError) {
        let base = rmType.hasPrefix("boxed_") ? String(rmType.dropFirst(6)) : rmType
        guard RewardType(rawValue: base) != nil || SyntheticTask(rawValue: base) != nil else {
            let known = RewardType.allCases.map(\.rawValue) + SyntheticTask.allCases.map(\.rawValue)
            throw .invalidOption(name: "--rm-type", message: "unknown reward type '\(rmType)'; known: \(known.joined(separator: ", ")), remote_rm")
        }
        self.rmType = rmType
    }

    public func rewards(for samples: [Sample]) async throws -> [JSONValue] {
        try samples.map { sample in
            if let task = SyntheticTask(rawValue: sample.metadata["rm_type"]?.stringValue ?? rmType) {
                return .double(task.reward(response: sample.response, label: sample.label, prompt: sample.prompt.stringValue ?? sample.prompt.serialized()))
            }
            return try RewardHub.reward(for: sample, rmType: rmType)
        }
    }
}
