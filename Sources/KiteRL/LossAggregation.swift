#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The loss flags of slime's `policy_loss_function`, with slime's defaults.
public struct LossOptions: Sendable, Equatable {
    /// gspo replaces the token ratio by the sequence's geometric-mean ratio; cispo uses the CISPO loss.
    public var advantageEstimator: AdvantageEstimator = .grpo
    /// `--eps-clip`
    public var epsClip: Double = 0.2
    /// `--eps-clip-high`; nil means `epsClip`.
    public var epsClipHigh: Double? = nil
    /// `--eps-clip-c` (dual clip); must be > 1.
    public var epsClipC: Double? = nil
    /// `--use-kl-loss`, `--kl-loss-coef`, `--kl-loss-type`, `--use-unbiased-kl`
    public var useKLLoss = false
    public var klLossCoef: Double = 0
    public var klLossType: KLType = .k1
    public var useUnbiasedKL = false
    /// `--entropy-coef`
    public var entropyCoef: Double = 0
    /// `--use-tis`, `--tis-clip`, `--tis-clip-low`
    public var useTIS = false
    public var tisClip: Double = 2
    public var tisClipLow: Double = 0
    /// `--calculate-per-token-loss`
    public var calculatePerTokenLoss = false

    public init() {}

    public var effectiveEpsClipHigh: Double { epsClipHigh ?? epsClip }

    /// The checks slime makes of these flags.
    public func validate() throws(RLError) {
        if let c = epsClipC, !(c > 1) {
            throw .invalidOption(name: "--eps-clip-c", message: "the dual-clip bound must be > 1, got \(c)")
        }
        if !epsClip.isFinite || epsClip < 0 { throw .invalidOption(name: "--eps-clip", message: "must be finite and >= 0, got \(epsClip)") }
        if !effectiveEpsClipHigh.isFinite || effectiveEpsClipHigh < 0 {
            throw .invalidOption(name: "--eps-clip-high", message: "must be finite and >= 0, got \(effectiveEpsClipHigh)")
        }
        if useTIS && tisClipLow > tisClip {
            throw .invalidOption(name: "--tis-clip-low", message: "\(tisClipLow) exceeds --tis-clip \(tisClip)")
        }
    }
}

/// The step-level denominator that makes a micro-batch's loss its exact share of the step's loss,
/// whatever the packing (slime's `get_sum_of_sample_mean` plus Megatron's scaling in `loss_function`).
public enum LossNormalization: Sendable, Equatable {
    /// Default: each sample's masked token sum is divided by its own denominator (`rollout_mask_sums`,
    /// clamped to ≥ 1), and the step sum by the step's global batch size (rollouts in the step).
    case perSample(globalBatchSize: Int)
    /// `--calculate-per-token-loss`: masked token sums divided by the step's token count, which slime
    /// counts as Σ over the step's samples of max(Σ mask, 1).
    case perToken(totalTokens: Int)

    /// The normalisation for a step made of the samples whose loss masks are given.
    public static func forStep(lossMasks: [[Int]], globalBatchSize: Int, perToken: Bool) -> LossNormalization {
        if perToken {
            return .perToken(totalTokens: lossMasks.reduce(0) { $0 + max($1.reduce(0, +), 1) })
        }
        return .perSample(globalBatchSize: globalBatchSize)
    }
}

/// One micro-batch of samples packed back to back: every per-token array holds the samples' response
/// tokens in order, `responseLengths` says where each sample ends.
public struct PackedLossInput: Sendable {
    public var responseLengths: [Int]
    /// Current policy log-probs (the model's output; gradients are taken with respect to these).
    public var logProbs: [Double]
    /// Log-probs of the policy that generated the data as recomputed by the trainer (slime's `log_probs`).
    public var oldLogProbs: [Double]
    /// Reference-model log-probs; required with `useKLLoss`.
    public var refLogProbs: [Double]?
    /// The engine's log-probs; required with `useTIS`, and used for the mismatch metric when present.
    public var rolloutLogProbs: [Double]?
    /// Per-token entropy of the current policy (the model's output; gradients are taken).
    public var entropy: [Double]
    public var advantages: [Double]
    public var lossMask: [Double]
    /// Per-sample denominators in per-sample mode: slime's `rollout_mask_sums`.
    public var sampleDenominators: [Int]

    public init(
        responseLengths: [Int], logProbs: [Double], oldLogProbs: [Double], refLogProbs: [Double]? = nil,
        rolloutLogProbs: [Double]? = nil, entropy: [Double], advantages: [Double], lossMask: [Double],
        sampleDenominators: [Int]
    ) {
        self.responseLengths = responseLengths
        self.logProbs = logProbs
        self.oldLogProbs = oldLogProbs
        self.refLogProbs = refLogProbs
        self.rolloutLogProbs = rolloutLogProbs
        self.entropy = entropy
        self.advantages = advantages
        self.lossMask = lossMask
        self.sampleDenominators = sampleDenominators
    }

    public var tokenCount: Int { logProbs.count }

    func validate(options: LossOptions) throws(RLError) {
        let n = responseLengths.reduce(0, +)
        if let bad = responseLengths.firstIndex(where: { $0 < 0 }) {
            throw .invalidOption(name: "response_lengths", message: "sample \(bad) has negative length \(responseLengths[bad])")
        }
        guard sampleDenominators.count == responseLengths.count else {
            throw .shapeMismatch(what: "sample denominators", expected: responseLengths.count, found: sampleDenominators.count)
        }
        let arrays: [(String, [Double]?)] = [
            ("log_probs", logProbs), ("old_log_probs", oldLogProbs), ("ref_log_probs", refLogProbs),
            ("rollout_log_probs", rolloutLogProbs), ("entropy", entropy), ("advantages", advantages), ("loss_mask", lossMask),
        ]
        for (name, array) in arrays {
            guard let array else { continue }
            guard array.count == n else { throw .shapeMismatch(what: name, expected: n, found: array.count) }
            if let bad = array.firstIndex(where: { !$0.isFinite }) { throw .nonFinite(what: name, position: bad) }
        }
        if options.useKLLoss && refLogProbs == nil {
            throw .invalidOption(name: "--use-kl-loss", message: "needs reference log-probs")
        }
        if options.useTIS && rolloutLogProbs == nil {
            throw .invalidOption(name: "--use-tis", message: "needs rollout log-probs from the engine")
        }
    }
}

/// The step metrics slime's `policy_loss_function` reports, as this micro-batch's contribution:
/// summing them over every micro-batch of the step (on every rank) gives the step's value.
public struct LossMetrics: Sendable, Equatable {
    public var loss: Double = 0
    public var pgLoss: Double = 0
    public var entropyLoss: Double = 0
    public var pgClipfrac: Double = 0
    public var ppoKL: Double = 0
    public var klLoss: Double? = nil
    public var trainRolloutLogprobAbsDiff: Double? = nil
    public var ois: Double? = nil
    public var tis: Double? = nil
    public var tisClipfrac: Double? = nil
    public var tisAbs: Double? = nil

    public init() {}

    /// The metrics under slime's names (`train/<name>`), in slime's order.
    public var entries: [(name: String, value: Double)] {
        var out: [(String, Double)] = [("loss", loss), ("pg_loss", pgLoss), ("entropy_loss", entropyLoss), ("pg_clipfrac", pgClipfrac), ("ppo_kl", ppoKL)]
        if let trainRolloutLogprobAbsDiff { out.append(("train_rollout_logprob_abs_diff", trainRolloutLogprobAbsDiff)) }
        if let klLoss { out.append(("kl_loss", klLoss)) }
        if let ois { out.append(("ois", ois)) }
        if let tis { out.append(("tis", tis)) }
        if let tisClipfrac { out.append(("tis_clipfrac", tisClipfrac)) }
        if let tisAbs { out.append(("tis_abs", tisAbs)) }
        return out
    }

    /// Adds another micro-batch's contribution.
    public mutating func accumulate(_ other: LossMetrics) {
        func add(_ a: Double?, _ b: Double?) -> Double? { a == nil && b == nil ? nil : (a ?? 0) + (b ?? 0) }
        loss += other.loss
        pgLoss += other.pgLoss
        entropyLoss += other.entropyLoss
        pgClipfrac += other.pgClipfrac
        ppoKL += other.ppoKL
        klLoss = add(klLoss, other.klLoss)
        trainRolloutLogprobAbsDiff = add(trainRolloutLogprobAbsDiff, other.trainRolloutLogprobAbsDiff)
        ois = add(ois, other.ois)
        tis = add(tis, other.tis)
        tisClipfrac = add(tisClipfrac, other.tisClipfrac)
        tisAbs = add(tisAbs, other.tisAbs)
    }
}

/// A micro-batch's share of the step loss and its gradients.
public struct LossResult: Sendable {
    /// This micro-batch's contribution to the step loss (the step loss is the sum over micro-batches
    /// and data-parallel ranks; ranks all-reduce gradients with a sum, not a mean).
    public var loss: Double
    public var metrics: LossMetrics
    /// d stepLoss / d logProbs, per token of the micro-batch (Double; the backward casts as it needs).
    public var dLogProbs: [Double]
    /// d stepLoss / d entropy, per token (zero when `entropyCoef` is 0).
    public var dEntropy: [Double]
}

/// slime's `policy_loss_function` over one packed micro-batch, reduced with `get_sum_of_sample_mean`
/// and scaled as `loss_function` and Megatron scale it, so the micro-batch results add up to the step's
/// loss: `loss = pg_loss − entropy_coef·entropy + kl_loss_coef·kl` (KL only with `--use-kl-loss`), each
/// term reduced by `normalization`. TIS weights multiply the per-token policy loss; GSPO uses the
/// sequence-mean log-ratio for every token of a sequence. Computed in Double throughout.
public func policyLoss(_ input: PackedLossInput, options: LossOptions, normalization: LossNormalization) throws(RLError) -> LossResult {
    try options.validate()
    try input.validate(options: options)
    let n = input.tokenCount
    let epsClipHigh = options.effectiveEpsClipHigh

    // The reducer weight of every token: its share of the step mean.
    var weight = [Double](repeating: 0, count: n)
    var offsets: [Int] = []
    offsets.reserveCapacity(input.responseLengths.count + 1)
    offsets.append(0)
    for length in input.responseLengths { offsets.append(offsets[offsets.count - 1] + length) }
    switch normalization {
    case .perSample(let globalBatchSize):
        guard globalBatchSize > 0 else { throw .invalidOption(name: "--global-batch-size", message: "must be > 0, got \(globalBatchSize)") }
        for i in input.responseLengths.indices {
            let scale = 1 / (Double(max(input.sampleDenominators[i], 1)) * Double(globalBatchSize))
            for t in offsets[i]..<offsets[i + 1] { weight[t] = input.lossMask[t] * scale }
        }
    case .perToken(let totalTokens):
        guard totalTokens > 0 else { throw .invalidOption(name: "total tokens", message: "must be > 0, got \(totalTokens)") }
        let scale = 1 / Double(totalTokens)
        for t in 0..<n { weight[t] = input.lossMask[t] * scale }
    }

    // ppo_kl = logp_old − logp, per token or (GSPO) per sequence.
    var ppoKL = [Double](repeating: 0, count: n)
    if options.advantageEstimator == .gspo {
        for i in input.responseLengths.indices {
            var sum = 0.0, maskSum = 0.0
            for t in offsets[i]..<offsets[i + 1] {
                sum += (input.oldLogProbs[t] - input.logProbs[t]) * input.lossMask[t]
                maskSum += input.lossMask[t]
            }
            let value = sum / max(maskSum, 1)
            for t in offsets[i]..<offsets[i + 1] { ppoKL[t] = value }
        }
    } else {
        for t in 0..<n { ppoKL[t] = input.oldLogProbs[t] - input.logProbs[t] }
    }

    var metrics = LossMetrics()
    var dLogProbs = [Double](repeating: 0, count: n)
    // d pgLoss / d ratio per token (already times the reducer weight and TIS weight); GSPO folds it per sequence.
    var dRatio = [Double](repeating: 0, count: n)
    var pgLoss = 0.0, clipfrac = 0.0, ppoKLMetric = 0.0
    var tisSum = 0.0, tisClipSum = 0.0, tisAbsSum = 0.0, oisSum = 0.0
    for t in 0..<n {
        let w = weight[t]
        let ratio = exp(-ppoKL[t])
        var tokenLoss: Double, clipped: Bool, gradient: Double
        if options.advantageEstimator == .cispo {
            let term = cispoLoss(ratio: ratio, logProb: input.logProbs[t], advantage: input.advantages[t], epsClip: options.epsClip, epsClipHigh: epsClipHigh)
            tokenLoss = term.loss; clipped = term.clipped; gradient = term.dLossDLogProb
        } else {
            let term = ppoClippedLoss(ratio: ratio, advantage: input.advantages[t], epsClip: options.epsClip, epsClipHigh: epsClipHigh, epsClipC: options.epsClipC)
            tokenLoss = term.loss; clipped = term.clipped; gradient = term.dLossDRatio
        }
        if options.useTIS, let rollout = input.rolloutLogProbs {
            let tis = truncatedImportanceWeight(oldLogProb: input.oldLogProbs[t], rolloutLogProb: rollout[t], clipLow: options.tisClipLow, clip: options.tisClip)
            tokenLoss *= tis.weight
            gradient *= tis.weight
            tisSum += tis.ratio * w
            tisClipSum += (tis.clipped ? 1 : 0) * w
            tisAbsSum += tis.absDeviation * w
            oisSum += ratio * w
        }
        pgLoss += tokenLoss * w
        clipfrac += (clipped ? 1 : 0) * w
        ppoKLMetric += ppoKL[t] * w
        if options.advantageEstimator == .cispo {
            dLogProbs[t] += gradient * w
        } else {
            dRatio[t] = gradient * w * ratio
        }
    }
    if options.advantageEstimator == .gspo {
        // ratio_i = exp(Σ_t (logp − logp_old)·m / max(Σm, 1)): d ratio_i / d logp_t = ratio_i · m_t / max(Σm, 1).
        for i in input.responseLengths.indices {
            var total = 0.0, maskSum = 0.0
            for t in offsets[i]..<offsets[i + 1] {
                total += dRatio[t]
                maskSum += input.lossMask[t]
            }
            let scale = total / max(maskSum, 1)
            for t in offsets[i]..<offsets[i + 1] { dLogProbs[t] += scale * input.lossMask[t] }
        }
    } else if options.advantageEstimator != .cispo {
        for t in 0..<n { dLogProbs[t] += dRatio[t] }
    }

    var entropyLoss = 0.0
    var dEntropy = [Double](repeating: 0, count: n)
    for t in 0..<n {
        entropyLoss += input.entropy[t] * weight[t]
        dEntropy[t] = -options.entropyCoef * weight[t]
    }
    var loss = pgLoss - options.entropyCoef * entropyLoss

    if options.useKLLoss, let ref = input.refLogProbs {
        var klLoss = 0.0
        for t in 0..<n {
            let importance = options.useUnbiasedKL ? input.logProbs[t] - input.oldLogProbs[t] : nil
            let kl = approxKL(logProb: input.logProbs[t], refLogProb: ref[t], type: options.klLossType, importanceLogRatio: importance)
            klLoss += kl.value * weight[t]
            dLogProbs[t] += options.klLossCoef * kl.gradient * weight[t]
        }
        loss += options.klLossCoef * klLoss
        metrics.klLoss = klLoss
    }

    if let rollout = input.rolloutLogProbs {
        var diff = 0.0
        for t in 0..<n { diff += abs(input.oldLogProbs[t] - rollout[t]) * weight[t] }
        metrics.trainRolloutLogprobAbsDiff = diff
    }
    if options.useTIS {
        metrics.ois = oisSum
        metrics.tis = tisSum
        metrics.tisClipfrac = tisClipSum
        metrics.tisAbs = tisAbsSum
    }
    metrics.loss = loss
    metrics.pgLoss = pgLoss
    metrics.entropyLoss = entropyLoss
    metrics.pgClipfrac = clipfrac
    metrics.ppoKL = ppoKLMetric
    return LossResult(loss: loss, metrics: metrics, dLogProbs: dLogProbs, dEntropy: dEntropy)
}
