#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The flags of slime's `compute_advantages_and_returns` (`slime/backends/megatron_utils/loss.py`).
public struct AdvantageOptions: Sendable, Equatable {
    public var estimator: AdvantageEstimator = .grpo
    /// `--kl-coef`: KL folded into the reward, for the REINFORCE++ estimators only (grpo ignores it).
    public var klCoef: Double = 0
    /// `--kl-loss-type`, which slime also uses for the in-reward KL.
    public var klType: KLType = .k1
    /// `--gamma`
    public var gamma: Double = 1
    /// `--normalize-advantages`: masked whitening over all tokens of the rollout.
    public var normalizeAdvantages = false

    public init(estimator: AdvantageEstimator = .grpo, klCoef: Double = 0, klType: KLType = .k1, gamma: Double = 1, normalizeAdvantages: Bool = false) {
        self.estimator = estimator
        self.klCoef = klCoef
        self.klType = klType
        self.gamma = gamma
        self.normalizeAdvantages = normalizeAdvantages
    }
}

/// slime's `get_grpo_returns`: every response token's return is its sample's (normalised) reward.
public func grpoReturns(rewards: [Double], responseLengths: [Int]) throws(RLError) -> [[Double]] {
    guard rewards.count == responseLengths.count else { throw .shapeMismatch(what: "rewards", expected: responseLengths.count, found: rewards.count) }
    return zip(rewards, responseLengths).map { [Double](repeating: $0, count: $1) }
}

/// slime's `get_reinforce_plus_plus_returns` (REINFORCE++, arXiv 2501.03262): token rewards
/// `−kl_coef · kl · mask`, plus the sample's reward at its last unmasked token, then discounted
/// returns `G_t = r_t + γ·G_{t+1}` (slime's `chunked_discounted_returns` computes the same recurrence).
/// A sample whose mask is all zeros is an error, as in slime.
public func reinforcePlusPlusReturns(rewards: [Double], kl: [[Double]], lossMasks: [[Int]], klCoef: Double, gamma: Double) throws(RLError) -> [[Double]] {
    guard rewards.count == kl.count else { throw .shapeMismatch(what: "kl (samples)", expected: rewards.count, found: kl.count) }
    guard rewards.count == lossMasks.count else { throw .shapeMismatch(what: "loss masks (samples)", expected: rewards.count, found: lossMasks.count) }
    var out: [[Double]] = []
    out.reserveCapacity(rewards.count)
    for i in rewards.indices {
        let mask = lossMasks[i], sampleKL = kl[i]
        guard mask.count == sampleKL.count else { throw .shapeMismatch(what: "loss mask of sample \(i)", expected: sampleKL.count, found: mask.count) }
        guard let last = mask.lastIndex(where: { $0 != 0 }) else {
            throw .invalidOption(name: "--advantage-estimator reinforce_plus_plus", message: "sample \(i) is fully masked")
        }
        var tokenRewards = zip(sampleKL, mask).map { -klCoef * ($0 * Double($1)) }
        tokenRewards[last] += rewards[i]
        var returns = tokenRewards
        var running = 0.0
        for t in stride(from: tokenRewards.count - 1, through: 0, by: -1) {
            running = tokenRewards[t] + gamma * running
            returns[t] = running
        }
        out.append(returns)
    }
    return out
}

/// slime's `get_reinforce_plus_plus_baseline_advantages`: the group-centred reward broadcast over the
/// response, minus `kl_coef · kl` per token (whitening follows separately).
public func reinforcePlusPlusBaselineAdvantages(rewards: [Double], kl: [[Double]], klCoef: Double) throws(RLError) -> [[Double]] {
    guard rewards.count == kl.count else { throw .shapeMismatch(what: "kl (samples)", expected: rewards.count, found: kl.count) }
    return zip(rewards, kl).map { reward, sampleKL in sampleKL.map { reward - klCoef * $0 } }
}

/// slime's `distributed_masked_whiten` over all tokens of the rollout (Kite sees the whole rollout, so
/// the all-reduce of slime is a plain sum): mean μ = Σ A·m / Σ m, variance (Σ A²·m / Σ m − μ²),
/// Bessel-corrected by N/(N−1) when N = Σ m ≥ 2, then `(A − μ) / sqrt(var + 1e-8)` for every token
/// (masked ones included); with `shiftMean` false the mean is added back. Σ m = 0 is an error.
public func maskedWhiten(_ values: [[Double]], masks: [[Int]], shiftMean: Bool = true, epsilon: Double = 1e-8) throws(RLError) -> [[Double]] {
    guard values.count == masks.count else { throw .shapeMismatch(what: "masks (samples)", expected: values.count, found: masks.count) }
    var sum = 0.0, sumSquares = 0.0, count = 0.0
    for (i, (sample, mask)) in zip(values, masks).enumerated() {
        guard sample.count == mask.count else { throw .shapeMismatch(what: "mask of sample \(i)", expected: sample.count, found: mask.count) }
        for (v, m) in zip(sample, mask) {
            sum += v * Double(m)
            sumSquares += v * v * Double(m)
            count += Double(m)
        }
    }
    guard count > 0 else { throw .invalidOption(name: "--normalize-advantages", message: "the loss masks of the whole rollout sum to zero") }
    let mean = sum / count
    var variance = sumSquares / count - mean * mean
    if count >= 2 { variance *= count / (count - 1) }
    let scale = 1 / sqrt(variance + epsilon)
    return values.map { sample in sample.map { v in
        let w = (v - mean) * scale
        return shiftMean ? w : w + mean
    } }
}

/// slime's `compute_advantages_and_returns` for one rollout: the in-reward KL (`--kl-coef` ≠ 0 with
/// log-probs: `compute_approx_kl(log_probs, ref_log_probs, --kl-loss-type)`, else zeros), the estimator,
/// then optional whitening (`--normalize-advantages`; slime requires it for the REINFORCE++ variants,
/// Kite leaves that to the caller). `rewards` are those of `normalizeGroupRewards`.
public func computeAdvantagesAndReturns(
    rewards: [Double], responseLengths: [Int], lossMasks: [[Int]], logProbs: [[Double]]? = nil,
    refLogProbs: [[Double]]? = nil, options: AdvantageOptions
) throws(RLError) -> (advantages: [[Double]], returns: [[Double]]) {
    guard rewards.count == responseLengths.count else { throw .shapeMismatch(what: "rewards", expected: responseLengths.count, found: rewards.count) }
    guard lossMasks.count == responseLengths.count else { throw .shapeMismatch(what: "loss masks (samples)", expected: responseLengths.count, found: lossMasks.count) }
    for (i, (mask, length)) in zip(lossMasks, responseLengths).enumerated() where mask.count != length {
        throw .shapeMismatch(what: "loss mask of sample \(i)", expected: length, found: mask.count)
    }
    if let bad = rewards.firstIndex(where: { !$0.isFinite }) { throw .nonFinite(what: "rewards", position: bad) }
    let kl: [[Double]]
    if options.klCoef != 0, let logProbs, let refLogProbs {
        kl = try approxKL(logProbs: logProbs, refLogProbs: refLogProbs, type: options.klType)
        for (i, (sample, length)) in zip(kl, responseLengths).enumerated() where sample.count != length {
            throw .shapeMismatch(what: "log-probs of sample \(i)", expected: length, found: sample.count)
        }
    } else {
        kl = responseLengths.map { [Double](repeating: 0, count: $0) }
    }
    var advantages: [[Double]]
    let returns: [[Double]]
    switch options.estimator {
    case .grpo, .gspo, .cispo, .rloo:
        returns = try grpoReturns(rewards: rewards, responseLengths: responseLengths)
        advantages = returns
    case .reinforcePlusPlus:
        returns = try reinforcePlusPlusReturns(rewards: rewards, kl: kl, lossMasks: lossMasks, klCoef: options.klCoef, gamma: options.gamma)
        advantages = returns
    case .reinforcePlusPlusBaseline:
        advantages = try reinforcePlusPlusBaselineAdvantages(rewards: rewards, kl: kl, klCoef: options.klCoef)
        returns = advantages
    }
    if options.normalizeAdvantages {
        advantages = try maskedWhiten(advantages, masks: lossMasks)
    }
    return (advantages, returns)
}
