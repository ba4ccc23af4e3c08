#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One token's policy-gradient loss, whether it was clipped, and its derivative with respect to the
/// importance ratio.
public struct PolicyLossTerm: Sendable, Equatable {
    public var loss: Double
    /// slime's clip fraction indicator: the clipped surrogate exceeded the unclipped one.
    public var clipped: Bool
    /// d loss / d ratio, with torch's conventions: a tie of `maximum`/`minimum` sends half the gradient
    /// to each side; `clamp` passes the gradient only strictly inside its bounds.
    public var dLossDRatio: Double
}

/// slime's `compute_policy_loss` for one token, given the importance ratio `exp(logp - logp_old)`:
/// `l1 = -ratio·A`, `l2 = -clamp(ratio, 1 - epsClip, 1 + epsClipHigh)·A`, `l = max(l1, l2)`; with dual
/// clip (`epsClipC`, which must be > 1) `l = min(-epsClipC·A, l)` where `A < 0`.
public func ppoClippedLoss(ratio: Double, advantage a: Double, epsClip: Double, epsClipHigh: Double, epsClipC: Double?) -> PolicyLossTerm {
    let low = 1 - epsClip, high = 1 + epsClipHigh
    let clampedRatio = min(max(ratio, low), high)
    let l1 = -ratio * a, d1 = -a
    let l2 = -clampedRatio * a
    let d2 = (ratio > low && ratio < high) ? -a : 0
    var loss: Double, gradient: Double
    if l1 > l2 {
        loss = l1; gradient = d1
    } else if l2 > l1 {
        loss = l2; gradient = d2
    } else {
        loss = l1; gradient = (d1 + d2) / 2
    }
    let clipped = l2 > l1
    if let epsClipC, a < 0 {
        let l3 = -epsClipC * a
        if l3 < loss {
            loss = l3; gradient = 0
        } else if l3 == loss {
            gradient /= 2
        }
    }
    return PolicyLossTerm(loss: loss, clipped: clipped, dLossDRatio: gradient)
}

/// slime's `compute_cispo_loss` for one token (MiniMax-M1): `-sg(clamp(ratio, 1 - epsClip, 1 + epsClipHigh))·A·logp`.
/// Returns the loss and d loss / d logp (the clamped ratio is a constant), and whether the ratio was clamped.
public func cispoLoss(ratio: Double, logProb: Double, advantage a: Double, epsClip: Double, epsClipHigh: Double) -> (loss: Double, clipped: Bool, dLossDLogProb: Double) {
    let truncated = min(max(ratio, 1 - epsClip), 1 + epsClipHigh)
    return (-truncated * a * logProb, truncated != ratio, -truncated * a)
}

/// One token's truncated importance-sampling weight (slime's `vanilla_tis_function`):
/// `w = clamp(exp(logp_old - logp_rollout), tisClipLow, tisClip)`, with the metrics slime logs.
/// The weight multiplies the token's policy loss and is a constant for the gradient.
public struct TISWeight: Sendable, Equatable {
    public var weight: Double
    /// The unclamped ratio (`tis` metric).
    public var ratio: Double
    /// `|ratio - 1|` (`tis_abs` metric).
    public var absDeviation: Double
    /// `weight != ratio` (`tis_clipfrac` metric).
    public var clipped: Bool
}

public func truncatedImportanceWeight(oldLogProb: Double, rolloutLogProb: Double, clipLow: Double, clip: Double) -> TISWeight {
    let ratio = exp(oldLogProb - rolloutLogProb)
    let weight = min(max(ratio, clipLow), clip)
    return TISWeight(weight: weight, ratio: ratio, absDeviation: abs(ratio - 1), clipped: weight != ratio)
}
