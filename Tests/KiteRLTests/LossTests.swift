import Foundation
import KiteJSON
import Testing

@testable import KiteRL

/// Losses against slime's own `policy_loss_function` / `loss_function` / `compute_approx_kl` /
/// `compute_policy_loss` run by scripts/reference/rl_core.py (torch autograd for the gradients), against
/// values computed by hand, and against finite differences.
struct LossTests {
    static func options(_ json: JSONValue) throws -> LossOptions {
        var o = LossOptions()
        if let v = json["advantage_estimator"]?.stringValue {
            o.advantageEstimator = try #require(AdvantageEstimator(rawValue: v))
        }
        if let v = json["eps_clip"]?.doubleValue { o.epsClip = v }
        if let v = json["eps_clip_high"]?.doubleValue { o.epsClipHigh = v }
        if let v = json["eps_clip_c"]?.doubleValue { o.epsClipC = v }
        if let v = json["use_kl_loss"]?.boolValue { o.useKLLoss = v }
        if let v = json["kl_loss_coef"]?.doubleValue { o.klLossCoef = v }
        if let v = json["kl_loss_type"]?.stringValue { o.klLossType = try #require(KLType(rawValue: v)) }
        if let v = json["use_unbiased_kl"]?.boolValue { o.useUnbiasedKL = v }
        if let v = json["entropy_coef"]?.doubleValue { o.entropyCoef = v }
        if let v = json["use_tis"]?.boolValue { o.useTIS = v }
        if let v = json["tis_clip"]?.doubleValue { o.tisClip = v }
        if let v = json["tis_clip_low"]?.doubleValue { o.tisClipLow = v }
        if let v = json["calculate_per_token_loss"]?.boolValue { o.calculatePerTokenLoss = v }
        return o
    }

    static func input(_ json: JSONValue) throws -> PackedLossInput {
        func optional(_ key: String) throws -> [Double]? {
            guard let v = json[key], !v.isNull else { return nil }
            return try v.doubles()
        }
        return PackedLossInput(
            responseLengths: try json.get("response_lengths").ints(), logProbs: try json.get("log_probs").doubles(),
            oldLogProbs: try json.get("old_log_probs").doubles(), refLogProbs: try optional("ref_log_probs"),
            rolloutLogProbs: try optional("rollout_log_probs"), entropy: try json.get("entropy").doubles(),
            advantages: try json.get("advantages").doubles(), lossMask: try json.get("loss_mask").doubles(),
            sampleDenominators: try json.get("sample_denominators").ints())
    }

    static func normalization(_ json: JSONValue) throws -> LossNormalization {
        if try json.get("kind").string() == "per_token" { return .perToken(totalTokens: try json.get("total_tokens").int()) }
        return .perSample(globalBatchSize: try json.get("global_batch_size").int())
    }

    @Test func microBatchLossAndGradientsMatchSlime() throws {
        let cases = try Fixtures.load("losses.json").get("microbatches").array()
        #expect(cases.count >= 70)
        for c in cases {
            let name = try c.get("name").string()
            let tolerance = try c.get("tolerance").double()
            let result = try policyLoss(Self.input(c.get("input")), options: Self.options(c.get("options")), normalization: Self.normalization(c.get("normalization")))
            let expected = try c.get("expected")
            #expect(close(result.loss, try expected.get("loss").double(), tolerance: tolerance), "\(name): loss \(result.loss)")
            #expect(close(result.dLogProbs, try expected.get("d_log_probs").doubles(), tolerance: tolerance), "\(name): d loss / d logp")
            #expect(close(result.dEntropy, try expected.get("d_entropy").doubles(), tolerance: tolerance), "\(name): d loss / d entropy")
            let metrics = Dictionary(uniqueKeysWithValues: result.metrics.entries.map { ($0.name, $0.value) })
            let expectedMetrics = try #require(expected.get("metrics").objectValue)
            #expect(Set(metrics.keys) == Set(expectedMetrics.keys), "\(name): metric names \(metrics.keys.sorted())")
            for (key, value) in expectedMetrics {
                #expect(close(metrics[key] ?? .nan, try value.double(), tolerance: tolerance), "\(name): metric \(key)")
            }
        }
    }

    @Test func klEstimatorsMatchSlime() throws {
        // slime's compute_approx_kl casts to float32; the tolerance covers that.
        for c in try Fixtures.load("losses.json").get("kl").array() {
            let type = try #require(KLType(rawValue: try c.get("type").string()))
            let unbiased = c["unbiased"]?.boolValue == true
            let lp = try c.get("log_probs").doubles(), ref = try c.get("ref_log_probs").doubles(), old = try c.get("old_log_probs").doubles()
            let values = try c.get("values").doubles(), gradients = try c.get("gradients").doubles()
            for i in lp.indices {
                let kl = approxKL(logProb: lp[i], refLogProb: ref[i], type: type, importanceLogRatio: unbiased ? lp[i] - old[i] : nil)
                #expect(close(kl.value, values[i], tolerance: 2e-6), "\(type) unbiased=\(unbiased) value at \(i): \(kl.value) vs \(values[i])")
                // The gradient of k3 with the IS ratio cancels two terms of size |value| in float32.
                #expect(close(kl.gradient, gradients[i], tolerance: 2e-6 * max(1, abs(kl.value))), "\(type) unbiased=\(unbiased) gradient at \(i): \(kl.gradient) vs \(gradients[i])")
            }
        }
    }

    @Test func clippedTokenLossMatchesSlime() throws {
        let cases = try Fixtures.load("losses.json").get("policy_tokens").array()
        #expect(cases.count == 72)
        for c in cases {
            let ratio = try c.get("ratio").double(), a = try c.get("advantage").double()
            let epsC = c["eps_clip_c"]?.doubleValue
            // The fixture feeds ratio through -log: use the same float path.
            let r = exp(-(-log(ratio)))
            let term = ppoClippedLoss(ratio: r, advantage: a, epsClip: 0.2, epsClipHigh: 0.28, epsClipC: epsC)
            #expect(close(term.loss, try c.get("loss").double(), tolerance: 1e-12), "r=\(ratio) A=\(a) c=\(String(describing: epsC))")
            #expect(term.clipped == c["clipped"]?.boolValue, "clipfrac r=\(ratio) A=\(a)")
            #expect(close(term.dLossDRatio, try c.get("d_ratio").double(), tolerance: 1e-12), "d/dratio r=\(ratio) A=\(a) c=\(String(describing: epsC)): \(term.dLossDRatio)")
        }
    }

    @Test func clippedLossByHand() {
        // ratio 1.5, A = 1: l1 = −1.5, l2 = −1.28: the clipped surrogate wins, no gradient.
        var t = ppoClippedLoss(ratio: 1.5, advantage: 1, epsClip: 0.2, epsClipHigh: 0.28, epsClipC: nil)
        #expect(t == PolicyLossTerm(loss: -1.28, clipped: true, dLossDRatio: 0))
        // ratio 0.5, A = 1: l1 = −0.5 > l2 = −0.8: unclipped, d/dratio = −A.
        t = ppoClippedLoss(ratio: 0.5, advantage: 1, epsClip: 0.2, epsClipHigh: 0.28, epsClipC: nil)
        #expect(t == PolicyLossTerm(loss: -0.5, clipped: false, dLossDRatio: -1))
        // ratio 4, A = −1: l1 = 4 > l2 = 1.28; dual clip c = 3 caps it at 3 (no gradient).
        t = ppoClippedLoss(ratio: 4, advantage: -1, epsClip: 0.2, epsClipHigh: 0.28, epsClipC: nil)
        #expect(t == PolicyLossTerm(loss: 4, clipped: false, dLossDRatio: 1))
        t = ppoClippedLoss(ratio: 4, advantage: -1, epsClip: 0.2, epsClipHigh: 0.28, epsClipC: 3)
        #expect(t == PolicyLossTerm(loss: 3, clipped: false, dLossDRatio: 0))
        // Dual clip never touches positive advantages.
        t = ppoClippedLoss(ratio: 4, advantage: 1, epsClip: 0.2, epsClipHigh: 0.28, epsClipC: 3)
        #expect(t == PolicyLossTerm(loss: -1.28, clipped: true, dLossDRatio: 0))
        // Inside the clip range l1 == l2: torch's maximum gives half the gradient to each side, both −A.
        t = ppoClippedLoss(ratio: 1, advantage: 2, epsClip: 0.2, epsClipHigh: 0.28, epsClipC: nil)
        #expect(t == PolicyLossTerm(loss: -2, clipped: false, dLossDRatio: -2))
    }

    @Test func klByHand() {
        // Δ = logp − ref = 0.5.
        #expect(approxKL(logProb: -1, refLogProb: -1.5, type: .k1) == KLTerm(value: 0.5, gradient: 1))
        #expect(approxKL(logProb: -1, refLogProb: -1.5, type: .k2) == KLTerm(value: 0.125, gradient: 0.5))
        let k3 = approxKL(logProb: -1, refLogProb: -1.5, type: .k3)
        #expect(abs(k3.value - (exp(-0.5) - 1 + 0.5)) < 1e-15 && abs(k3.gradient - (1 - exp(-0.5))) < 1e-15)
        // Δ = −3: exp(3) − 1 − 3 = 16.08 > 10: low_var_kl clamps, k3 does not.
        #expect(approxKL(logProb: -4, refLogProb: -1, type: .lowVarKL) == KLTerm(value: 10, gradient: 0))
        #expect(abs(approxKL(logProb: -4, refLogProb: -1, type: .k3).value - (exp(3.0) - 4)) < 1e-12)
        // Identical policies: every estimator is 0.
        for type in KLType.allCases { #expect(approxKL(logProb: -0.7, refLogProb: -0.7, type: type).value == 0) }
    }

    @Test func truncatedImportanceSamplingByHand() {
        let w = truncatedImportanceWeight(oldLogProb: log(3.0), rolloutLogProb: 0, clipLow: 0, clip: 2)
        #expect(w.weight == 2 && w.clipped && abs(w.ratio - 3) < 1e-12 && abs(w.absDeviation - 2) < 1e-12)
        let low = truncatedImportanceWeight(oldLogProb: log(0.25), rolloutLogProb: 0, clipLow: 0.5, clip: 2)
        #expect(low.weight == 0.5 && low.clipped)
        let inside = truncatedImportanceWeight(oldLogProb: 0.1, rolloutLogProb: 0.1, clipLow: 0, clip: 2)
        #expect(inside.weight == 1 && !inside.clipped && inside.absDeviation == 0)
    }

    @Test func gspoUsesTheSequenceMeanRatioByHand() throws {
        // One sequence of two tokens, both masked in; logp − old = 0.1 and 0.3: the sequence log-ratio is 0.2.
        var options = LossOptions()
        options.advantageEstimator = .gspo
        options.epsClip = 0.5
        let input = PackedLossInput(responseLengths: [2], logProbs: [-1.0, -2.0], oldLogProbs: [-1.1, -2.3], entropy: [0, 0], advantages: [1, 1], lossMask: [1, 1], sampleDenominators: [2])
        let result = try policyLoss(input, options: options, normalization: .perSample(globalBatchSize: 1))
        let ratio = exp(0.2)
        #expect(abs(result.loss - (-ratio)) < 1e-12)  // mean over tokens of −ratio·A
        #expect(abs(result.metrics.ppoKL - (-0.2)) < 1e-12)
        // d/dlogp_t of −ratio = −ratio · (1/2) for each token.
        #expect(close(result.dLogProbs, [-ratio / 2, -ratio / 2], tolerance: 1e-12))
    }

    @Test func perSampleLossIsMeanOfSampleMeansByHand() throws {
        // Two samples, A = 1 and −1, on-policy (ratio 1): loss = (mean(−1) + mean(1)) / B with B = 2 → 0;
        // sample 0 has one masked-out token which does not count.
        let input = PackedLossInput(responseLengths: [3, 1], logProbs: [-1, -1, -1, -2], oldLogProbs: [-1, -1, -1, -2], entropy: [1, 2, 3, 4], advantages: [1, 1, 1, -1], lossMask: [1, 0, 1, 1], sampleDenominators: [2, 1])
        var options = LossOptions()
        options.entropyCoef = 0.1
        let r = try policyLoss(input, options: options, normalization: .perSample(globalBatchSize: 2))
        // pg = ((−1 −1)/2 + 1/1) / 2 = 0; entropy = ((1 + 3)/2 + 4) / 2 = 3.
        #expect(abs(r.metrics.pgLoss) < 1e-15 && abs(r.metrics.entropyLoss - 3) < 1e-15)
        #expect(abs(r.loss - (-0.3)) < 1e-15)
        #expect(close(r.dLogProbs, [-0.25, 0, -0.25, 0.5], tolerance: 1e-15))
        #expect(close(r.dEntropy, [-0.025, 0, -0.025, -0.05], tolerance: 1e-15))
        // Per-token: Σ m·x / N with N = 3 tokens.
        let t = try policyLoss(input, options: options, normalization: .perToken(totalTokens: 3))
        #expect(abs(t.metrics.pgLoss - (-1.0 / 3)) < 1e-15)
    }

    @Test func cispoStopsTheGradientThroughTheRatioByHand() throws {
        // CISPO: −sg(clamp(ratio, 1 − 1, 1 + 0.28))·A·logp; ratio e^0.5 = 1.65 is clamped to 1.28.
        var options = LossOptions()
        options.advantageEstimator = .cispo
        options.epsClip = 1
        options.epsClipHigh = 0.28
        let input = PackedLossInput(responseLengths: [1], logProbs: [-1], oldLogProbs: [-1.5], entropy: [0], advantages: [2], lossMask: [1], sampleDenominators: [1])
        let r = try policyLoss(input, options: options, normalization: .perSample(globalBatchSize: 1))
        #expect(abs(r.loss - 2.56) < 1e-12 && r.dLogProbs == [-2.56] && r.metrics.pgClipfrac == 1)
    }

    @Test func emptyResponsesContributeNothing() throws {
        let empty = PackedLossInput(responseLengths: [0, 0], logProbs: [], oldLogProbs: [], entropy: [], advantages: [], lossMask: [], sampleDenominators: [0, 0])
        let r = try policyLoss(empty, options: LossOptions(), normalization: .perSample(globalBatchSize: 4))
        #expect(r.loss == 0 && r.dLogProbs.isEmpty && r.metrics.pgClipfrac == 0)
        // A fully masked sample: clamped denominator, zero contribution, zero gradient.
        let masked = PackedLossInput(responseLengths: [2], logProbs: [-1, -1], oldLogProbs: [-2, -2], entropy: [1, 1], advantages: [3, 3], lossMask: [0, 0], sampleDenominators: [0])
        let m = try policyLoss(masked, options: LossOptions(), normalization: .perSample(globalBatchSize: 1))
        #expect(m.loss == 0 && m.dLogProbs == [0, 0])
    }

    @Test func nonFiniteInputsAndBadOptionsAreRejected() {
        let bad = PackedLossInput(responseLengths: [2], logProbs: [-1, .nan], oldLogProbs: [-1, -1], entropy: [0, 0], advantages: [1, 1], lossMask: [1, 1], sampleDenominators: [2])
        #expect(throws: RLError.nonFinite(what: "log_probs", position: 1)) { try policyLoss(bad, options: LossOptions(), normalization: .perSample(globalBatchSize: 1)) }
        let ok = PackedLossInput(responseLengths: [2], logProbs: [-1, -1], oldLogProbs: [-1, -1], entropy: [0, 0], advantages: [1, 1], lossMask: [1, 1], sampleDenominators: [2])
        var options = LossOptions()
        options.epsClipC = 1.0
        #expect(throws: RLError.self) { try policyLoss(ok, options: options, normalization: .perSample(globalBatchSize: 1)) }
        options = LossOptions()
        options.useKLLoss = true
        #expect(throws: RLError.self) { try policyLoss(ok, options: options, normalization: .perSample(globalBatchSize: 1)) }
        let short = PackedLossInput(responseLengths: [3], logProbs: [-1, -1], oldLogProbs: [-1, -1], entropy: [0, 0], advantages: [1, 1], lossMask: [1, 1], sampleDenominators: [2])
        #expect(throws: RLError.shapeMismatch(what: "log_probs", expected: 3, found: 2)) { try policyLoss(short, options: LossOptions(), normalization: .perSample(globalBatchSize: 1)) }
    }

    /// Central differences of the loss against the analytic gradients, for every option combination.
    @Test(arguments: ["ppo", "dual", "gspo", "kl_unbiased", "tis_per_token"])
    func gradientsMatchFiniteDifferences(_ variant: String) throws {
        var generator = SplitMix(seed: 42)
        let lengths = [4, 0, 7, 3]
        let n = lengths.reduce(0, +)
        let logp = (0..<n).map { _ in -generator.uniform(0.1, 2.5) }
        var input = PackedLossInput(
            responseLengths: lengths, logProbs: logp, oldLogProbs: logp.map { $0 + generator.uniform(-0.4, 0.4) },
            refLogProbs: logp.map { $0 + generator.uniform(-0.8, 0.8) }, rolloutLogProbs: logp.map { $0 + generator.uniform(-0.6, 0.6) },
            entropy: (0..<n).map { _ in generator.uniform(0, 3) }, advantages: (0..<n).map { _ in generator.uniform(-2, 2) },
            lossMask: (0..<n).map { $0 % 5 == 2 ? 0 : 1 }, sampleDenominators: [3, 0, 6, 3])
        var options = LossOptions()
        options.entropyCoef = 0.02
        options.useKLLoss = true
        options.klLossCoef = 0.3
        options.klLossType = .lowVarKL
        switch variant {
        case "dual": options.epsClipC = 2
        case "gspo": options.advantageEstimator = .gspo; options.epsClip = 0.05
        case "kl_unbiased": options.useUnbiasedKL = true; options.klLossType = .k3
        case "tis_per_token": options.useTIS = true; options.tisClip = 1.3; options.calculatePerTokenLoss = true
        default: break
        }
        let normalization: LossNormalization = options.calculatePerTokenLoss ? .perToken(totalTokens: 11) : .perSample(globalBatchSize: 5)
        let analytic = try policyLoss(input, options: options, normalization: normalization)
        let h = 1e-6
        for t in 0..<n {
            var plus = input, minus = input
            plus.logProbs[t] += h
            minus.logProbs[t] -= h
            let numeric = (try policyLoss(plus, options: options, normalization: normalization).loss - policyLoss(minus, options: options, normalization: normalization).loss) / (2 * h)
            #expect(abs(numeric - analytic.dLogProbs[t]) < 1e-7, "\(variant): d/dlogp[\(t)] numeric \(numeric) analytic \(analytic.dLogProbs[t])")
            plus = input
            minus = input
            plus.entropy[t] += h
            minus.entropy[t] -= h
            let numericEntropy = (try policyLoss(plus, options: options, normalization: normalization).loss - policyLoss(minus, options: options, normalization: normalization).loss) / (2 * h)
            #expect(abs(numericEntropy - analytic.dEntropy[t]) < 1e-8, "\(variant): d/dentropy[\(t)]")
        }
        input.logProbs = input.oldLogProbs
        // On-policy (ratio ≡ 1, first step): ppo_kl is exactly 0, as slime's CI asserts.
        #expect(try policyLoss(input, options: options, normalization: normalization).metrics.ppoKL == 0)
    }
}

/// A small deterministic generator for test data.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform(_ low: Double, _ high: Double) -> Double {
        low + (high - low) * Double(next() >> 11) / Double(1 << 53)
    }
    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }
}
