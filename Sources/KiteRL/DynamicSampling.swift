import KiteJSON

/// A dynamic-sampling filter's verdict on one prompt group (slime's `DynamicFilterOutput`).
public struct DynamicFilterOutput: Sendable, Equatable {
    public var keep: Bool
    /// Why the group was dropped, logged as `rollout/dynamic_filter/drop_<reason>`.
    public var reason: String?
    /// Keep a rejected group when dropping it would leave too few groups to fill the rollout batch.
    public var keepWhenInsufficient: Bool

    public init(keep: Bool, reason: String? = nil, keepWhenInsufficient: Bool = false) {
        self.keep = keep
        self.reason = reason
        self.keepWhenInsufficient = keepWhenInsufficient
    }

    /// slime's `should_drop_dynamic_filter_output`.
    public func shouldDrop(remainingBatchSize: Int, targetDataSize: Int) -> Bool {
        if keep { return false }
        if keepWhenInsufficient && remainingBatchSize <= targetDataSize { return false }
        return true
    }
}

/// The filters of `--dynamic-sampling-filter-path`, under their slime dotted names.
public enum DynamicSamplingFilter: String, Sendable, CaseIterable {
    case nonzeroStd = "slime.rollout.filter_hub.dynamic_sampling_filters.check_reward_nonzero_std"
    case nonzeroStdWithFallback = "slime.rollout.filter_hub.dynamic_sampling_filters.check_reward_nonzero_std_with_fallback"

    /// The filter for a dotted path (slime's name) or its short name.
    public init?(path: String) {
        if let filter = DynamicSamplingFilter(rawValue: path) {
            self = filter
            return
        }
        switch path {
        case "check_reward_nonzero_std": self = .nonzeroStd
        case "check_reward_nonzero_std_with_fallback": self = .nonzeroStdWithFallback
        default: return nil
        }
    }

    public func callAsFunction(_ group: [Sample], rewardKey: String?) throws(RLError) -> DynamicFilterOutput {
        var output = try checkRewardNonzeroStd(group, rewardKey: rewardKey)
        if self == .nonzeroStdWithFallback { output.keepWhenInsufficient = true }
        return output
    }
}

/// The threshold of `check_reward_nonzero_std`.
public let nonzeroStdThreshold = 1e-6

/// slime's `check_reward_nonzero_std` over a group's rewards: keep the group iff the float64 unbiased
/// standard deviation of its rewards is > 1e-6. As in slime, a group of fewer than two samples has a
/// NaN standard deviation and is dropped. The drop reason is `zero_std_<first reward rounded to 0.1>`
/// (Python's `round(x, 1)` printed as a float; `integerRewards` prints it as an integer, as Python does
/// for integer rewards such as deepscaler's).
public func checkRewardNonzeroStd(rewards: [Double], integerRewards: Bool = false) -> DynamicFilterOutput {
    let std = unbiasedStd(rewards) ?? .nan
    let keep = std > nonzeroStdThreshold
    if keep { return DynamicFilterOutput(keep: true) }
    guard let first = rewards.first else { return DynamicFilterOutput(keep: false, reason: "zero_std_empty") }
    let rounded = integerRewards && first.isFinite ? PythonString.integerString(first.rounded()) : JSONValue.pythonRepr(pythonRound(first, digits: 1))
    return DynamicFilterOutput(keep: false, reason: "zero_std_\(rounded)")
}

/// `check_reward_nonzero_std` over a group of samples, reading rewards with `--reward-key`.
public func checkRewardNonzeroStd(_ group: [Sample], rewardKey: String?) throws(RLError) -> DynamicFilterOutput {
    var rewards: [Double] = []
    rewards.reserveCapacity(group.count)
    for sample in group { rewards.append(try sample.rewardValue(key: rewardKey)) }
    var integer = false
    if let first = group.first?.reward {
        let value = (rewardKey.flatMap { key in first[key] }) ?? first
        if case .int = value { integer = true }
        if case .bool = value { integer = true }
    }
    return checkRewardNonzeroStd(rewards: rewards, integerRewards: integer)
}

/// Python's `round(x, digits)` for display: round half to even on the decimal value.
func pythonRound(_ x: Double, digits: Int) -> Double {
    guard x.isFinite else { return x }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    return (x * scale).rounded(.toNearestOrEven) / scale
}
