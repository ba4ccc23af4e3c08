#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The KL estimator of `--kl-loss-type` (slime's `compute_approx_kl`, after Schulman's
/// "Approximating KL divergence").
public enum KLType: String, Sendable, CaseIterable {
    case k1
    case k2
    case k3
    /// k3 clamped to [-10, 10].
    case lowVarKL = "low_var_kl"
}

/// One token's KL estimate and its derivative with respect to the current log-prob.
public struct KLTerm: Sendable, Equatable {
    public var value: Double
    /// d value / d logProb (the reference and old log-probs are constants).
    public var gradient: Double
}

/// slime's `compute_approx_kl` for one token, with `logRatio = logProb - refLogProb`:
/// k1 = logRatio; k2 = logRatio² / 2; k3 and low_var_kl = exp(-logRatio) - 1 + logRatio.
/// With `importanceLogRatio` (`--use-unbiased-kl`, DeepSeek-V3.2) the estimate is multiplied by
/// `exp(importanceLogRatio)` where `importanceLogRatio = logProb - oldLogProb`, which also depends on
/// the current log-prob. low_var_kl is clamped to [-10, 10] last; at or beyond the bounds the gradient
/// is 0 (torch's clamp passes the gradient only strictly inside its bounds).
public func approxKL(logProb: Double, refLogProb: Double, type: KLType, importanceLogRatio: Double? = nil) -> KLTerm {
    let logRatio = logProb - refLogProb
    var value: Double
    var gradient: Double
    switch type {
    case .k1:
        value = logRatio
        gradient = 1
    case .k2:
        value = logRatio * logRatio / 2
        gradient = logRatio
    case .k3, .lowVarKL:
        let negative = -logRatio
        let e = exp(negative)
        value = e - 1 - negative
        gradient = 1 - e
    }
    if let importanceLogRatio {
        let weight = exp(importanceLogRatio)
        gradient = weight * (value + gradient)
        value = weight * value
    }
    if type == .lowVarKL {
        if value >= 10 {
            value = 10
            gradient = 0
        } else if value <= -10 {
            value = -10
            gradient = 0
        }
    }
    return KLTerm(value: value, gradient: gradient)
}

/// Per-token KL of every sample (`compute_approx_kl` over a list), as used for the in-reward KL of
/// the REINFORCE++ estimators (`--kl-coef`).
public func approxKL(logProbs: [[Double]], refLogProbs: [[Double]], type: KLType) throws(RLError) -> [[Double]] {
    guard logProbs.count == refLogProbs.count else {
        throw .shapeMismatch(what: "ref log-probs (samples)", expected: logProbs.count, found: refLogProbs.count)
    }
    var out: [[Double]] = []
    out.reserveCapacity(logProbs.count)
    for (i, (lp, ref)) in zip(logProbs, refLogProbs).enumerated() {
        guard lp.count == ref.count else { throw .shapeMismatch(what: "ref log-probs of sample \(i)", expected: lp.count, found: ref.count) }
        out.append(zip(lp, ref).map { approxKL(logProb: $0, refLogProb: $1, type: type).value })
    }
    return out
}
