/// What went wrong in the RL core, naming the sample, field or option involved and what was expected.
public enum RLError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A field of a serialised sample is missing, mistyped or inconsistent.
    case invalidSample(sample: String, field: String, message: String)
    /// Inputs to an algorithm disagree in shape: `what` names the array, `expected` and `found` its length.
    case shapeMismatch(what: String, expected: Int, found: Int)
    /// A value that must be finite is NaN or infinite.
    case nonFinite(what: String, position: Int)
    /// An option has a value the algorithm cannot use.
    case invalidOption(name: String, message: String)
    /// A sample's reward cannot be read as a number.
    case invalidReward(sample: String, message: String)
    /// A sample's label cannot be used by the reward function.
    case invalidLabel(rewardType: String, message: String)
    /// A batch cannot be scheduled as asked.
    case scheduling(String)

    public var description: String {
        switch self {
        case .invalidSample(let sample, let field, let message): "sample \(sample): field '\(field)': \(message)"
        case .shapeMismatch(let what, let expected, let found): "\(what): expected length \(expected), found \(found)"
        case .nonFinite(let what, let position): "\(what)[\(position)] is not finite"
        case .invalidOption(let name, let message): "option \(name): \(message)"
        case .invalidReward(let sample, let message): "sample \(sample): reward: \(message)"
        case .invalidLabel(let rewardType, let message): "--rm-type \(rewardType): label: \(message)"
        case .scheduling(let message): "batch schedule: \(message)"
        }
    }
}
