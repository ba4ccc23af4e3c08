#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `--advantage-estimator`.
public enum AdvantageEstimator: String, Sendable, CaseIterable {
    case grpo
    case gspo
    case cispo
    case reinforcePlusPlus = "reinforce_plus_plus"
    case reinforcePlusPlusBaseline = "reinforce_plus_plus_baseline"
    /// REINFORCE leave-one-out (Ahmadian et al. 2024): each reward minus the mean of the other rewards of
    /// its group. Not one of slime's estimators; Kite adds it with slime's grouping and GRPO's token loss.
    case rloo

    /// Whether rewards are group-mean-centred before the estimator runs.
    public var usesGroupMean: Bool { self != .reinforcePlusPlus }
    /// Whether the group standard deviation divides the centred rewards.
    public var usesGroupStd: Bool { self == .grpo || self == .gspo || self == .cispo }
}

/// The reward flags of slime's `RolloutManager._post_process_rewards`.
public struct RewardNormalizationOptions: Sendable, Equatable {
    public var estimator: AdvantageEstimator = .grpo
    /// `--n-samples-per-prompt`
    public var nSamplesPerPrompt: Int = 1
    /// `--rollout-batch-size` (prompts per rollout)
    public var rolloutBatchSize: Int = 1
    /// Off with `--disable-rewards-normalization`.
    public var rewardsNormalization = true
    /// Off with `--disable-grpo-std-normalization`; slime also turns it off when `n_samples_per_prompt` is 1.
    public var grpoStdNormalization = true

    public init(estimator: AdvantageEstimator = .grpo, nSamplesPerPrompt: Int = 1, rolloutBatchSize: Int = 1, rewardsNormalization: Bool = true, grpoStdNormalization: Bool = true) {
        self.estimator = estimator
        self.nSamplesPerPrompt = nSamplesPerPrompt
        self.rolloutBatchSize = rolloutBatchSize
        self.rewardsNormalization = rewardsNormalization
        self.grpoStdNormalization = grpoStdNormalization
    }
}

/// The epsilon slime adds to the group standard deviation (outside the square root).
public let groupStdEpsilon = 1e-6

/// slime's `_post_process_rewards`: for grpo, gspo, cispo and reinforce_plus_plus_baseline, rewards are
/// viewed as groups of `n_samples_per_prompt` (only when there are exactly `rollout_batch_size · n` of
/// them; otherwise all rewards form one group), centred on the group mean, and for grpo/gspo/cispo
/// divided by `std + 1e-6` with the unbiased (N−1) standard deviation. Other estimators get the raw
/// rewards back. `rloo` (Kite's addition) subtracts the mean of the other samples of the group instead.
///
/// Kite computes in Double where slime uses float32. NaN guard: a group of one sample has no unbiased
/// standard deviation (torch returns NaN and slime then produces NaN advantages); Kite takes it as 0,
/// so the sample's advantage is 0.
public func normalizeGroupRewards(_ rawRewards: [Double], options: RewardNormalizationOptions) throws(RLError) -> [Double] {
    if let bad = rawRewards.firstIndex(where: { !$0.isFinite }) { throw .nonFinite(what: "rewards", position: bad) }
    guard options.rewardsNormalization, options.estimator.usesGroupMean, !rawRewards.isEmpty else { return rawRewards }
    guard options.nSamplesPerPrompt >= 1 else {
        throw .invalidOption(name: "--n-samples-per-prompt", message: "must be >= 1, got \(options.nSamplesPerPrompt)")
    }
    let groupSize = rawRewards.count == options.nSamplesPerPrompt * options.rolloutBatchSize ? options.nSamplesPerPrompt : rawRewards.count
    let divideByStd = options.estimator.usesGroupStd && options.grpoStdNormalization && options.nSamplesPerPrompt > 1
    // RLOO: r − mean(others) = (r − mean) · n / (n − 1); a group of one has no other sample: 0.
    let leaveOneOutScale = groupSize > 1 ? Double(groupSize) / Double(groupSize - 1) : 0
    var out = rawRewards
    var start = 0
    while start < rawRewards.count {
        let group = rawRewards[start..<start + groupSize]
        let mean = group.reduce(0, +) / Double(groupSize)
        for i in group.indices { out[i] = rawRewards[i] - mean }
        if options.estimator == .rloo {
            for i in group.indices { out[i] *= leaveOneOutScale }
        }
        if divideByStd {
            let std = unbiasedStd(out[start..<start + groupSize]) ?? 0
            for i in group.indices { out[i] /= std + groupStdEpsilon }
        }
        start += groupSize
    }
    return out
}

/// torch's default `std` (Bessel-corrected); nil for fewer than two values.
public func unbiasedStd<C: Collection>(_ values: C) -> Double? where C.Element == Double {
    guard values.count >= 2 else { return nil }
    let mean = values.reduce(0, +) / Double(values.count)
    let squares = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
    return sqrt(squares / Double(values.count - 1))
}
