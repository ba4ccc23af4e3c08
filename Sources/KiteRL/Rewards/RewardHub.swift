import KiteJSON

/// The rule-based reward functions of `--rm-type` (slime's `rm_hub.async_rm`). `remote_rm`, custom
/// reward functions and `ifbench` are not here.
public enum RewardType: String, Sendable, CaseIterable {
    case deepscaler
    case dapo
    case math
    case f1
    case gpqa
}

public enum RewardHub {
    /// The reward of a sample as slime's `async_rm` computes it: the sample's `metadata.rm_type` overrides
    /// `--rm-type`; a `boxed_` prefix first replaces the response by the content of its last `\boxed{}`.
    /// deepscaler and math give 0/1 integers, dapo `{"score", "acc", "pred"}`, f1 and gpqa floats.
    public static func reward(for sample: Sample, rmType: String?) throws(RLError) -> JSONValue {
        let fromMetadata = sample.metadata["rm_type"].flatMap { pythonTruthy($0) ? pythonStr($0) : nil }
        let name = PythonString.strip(fromMetadata ?? rmType ?? "")
        return try reward(rmType: name, response: sample.response, label: sample.label, metadata: sample.metadata)
    }

    public static func reward(rmType: String, response: String, label: JSONValue?, metadata: JSONObject = JSONObject()) throws(RLError) -> JSONValue {
        var name = rmType
        var response = response
        if name.hasPrefix("boxed_") {
            response = MathAnswer.extractAnswer(response) ?? ""
            name = String(name.dropFirst("boxed_".count))
        }
        guard !name.isEmpty else { throw .invalidOption(name: "--rm-type", message: "no reward type given (set --rm-type or metadata.rm_type)") }
        guard let type = RewardType(rawValue: name) else {
            throw .invalidOption(name: "--rm-type", message: "'\(name)' is not a rule-based reward Kite implements (\(RewardType.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        switch type {
        case .deepscaler:
            return .int(try deepscalerReward(response: response, label: label))
        case .dapo:
            return try DAPOReward.score(response: response, label: label)
        case .math:
            guard pythonTruthy(label), let label else { return .int(0) }
            return .int(MathAnswer.gradeVerl(solution: response, groundTruth: pythonStr(label)) ? 1 : 0)
        case .f1:
            guard case .string(let truth)? = label else {
                throw .invalidLabel(rewardType: "f1", message: "expected a string, found \(label?.typeName ?? "nothing")")
            }
            let f1 = f1Score(prediction: response, groundTruth: truth).f1
            return f1 == 0 ? .int(0) : .double(f1)
        case .gpqa:
            return .double(gpqaReward(response: response, label: label, metadata: metadata))
        }
    }
}
