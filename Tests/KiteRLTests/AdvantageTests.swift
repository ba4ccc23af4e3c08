import Foundation
import KiteJSON
import Testing

@testable import KiteRL

/// Group normalisation and advantage estimators against slime (scripts/reference/rl_core.py: slime's
/// `get_grpo_returns`, `get_reinforce_plus_plus_returns`, `get_reinforce_plus_plus_baseline_advantages`,
/// `distributed_masked_whiten`, `compute_approx_kl`, and a float32 mirror of `_post_process_rewards`),
/// and by hand.
struct AdvantageTests {
    @Test func groupNormalizationMatchesSlime() throws {
        for c in try Fixtures.load("advantages.json").get("group_normalization").array() {
            let options = RewardNormalizationOptions(
                estimator: try #require(AdvantageEstimator(rawValue: try c.get("estimator").string())),
                nSamplesPerPrompt: try c.get("n_samples_per_prompt").int(), rolloutBatchSize: try c.get("rollout_batch_size").int(),
                rewardsNormalization: c["rewards_normalization"]?.boolValue == true, grpoStdNormalization: c["grpo_std_normalization"]?.boolValue == true)
            let out = try normalizeGroupRewards(try c.get("raw").doubles(), options: options)
            // slime computes in float32; Kite in float64.
            #expect(close(out, try c.get("expected").doubles(), tolerance: 2e-6), "\(options): \(out)")
        }
    }

    @Test func estimatorsMatchSlime() throws {
        for c in try Fixtures.load("advantages.json").get("estimators").array() {
            let options = AdvantageOptions(
                estimator: try #require(AdvantageEstimator(rawValue: try c.get("estimator").string())), klCoef: try c.get("kl_coef").double(),
                klType: try #require(KLType(rawValue: try c.get("kl_type").string())), gamma: try c.get("gamma").double(),
                normalizeAdvantages: c["normalize_advantages"]?.boolValue == true)
            let result = try computeAdvantagesAndReturns(
                rewards: try c.get("rewards").doubles(), responseLengths: try c.get("response_lengths").ints(),
                lossMasks: try c.get("loss_masks").array().map { try $0.ints() }, logProbs: try c.get("log_probs").array().map { try $0.doubles() },
                refLogProbs: try c.get("ref_log_probs").array().map { try $0.doubles() }, options: options)
            let expectedAdvantages = try c.get("advantages").array().map { try $0.doubles() }
            let expectedReturns = try c.get("returns").array().map { try $0.doubles() }
            // compute_approx_kl and the whitening statistics run in float32 in slime.
            #expect(close(Array(result.advantages.joined()), Array(expectedAdvantages.joined()), tolerance: 5e-6), "\(options) advantages")
            #expect(close(Array(result.returns.joined()), Array(expectedReturns.joined()), tolerance: 5e-6), "\(options) returns")
        }
    }

    @Test func grpoByHand() throws {
        // Group [1, 0, 0, 1]: mean 0.5, unbiased std = sqrt(1/3); advantage ±0.5 / (0.57735 + 1e-6).
        let options = RewardNormalizationOptions(estimator: .grpo, nSamplesPerPrompt: 4, rolloutBatchSize: 1)
        let out = try normalizeGroupRewards([1, 0, 0, 1], options: options)
        let a = 0.5 / (sqrt(1.0 / 3) + 1e-6)
        #expect(close(out, [a, -a, -a, a], tolerance: 1e-15))
        // Dr. GRPO: no std division.
        var dr = options
        dr.grpoStdNormalization = false
        #expect(try normalizeGroupRewards([1, 0, 0, 1], options: dr) == [0.5, -0.5, -0.5, 0.5])
        // Every token of a response carries its sample's advantage.
        #expect(try grpoReturns(rewards: [0.5, -1], responseLengths: [3, 0]) == [[0.5, 0.5, 0.5], []])
    }

    @Test func rlooSubtractsTheMeanOfTheOtherSamplesByHand() throws {
        // Group [1, 0, 0, 1]: sample 0's baseline is mean(0, 0, 1) = 1/3 → 2/3; sample 1's is 2/3 → −2/3.
        let out = try normalizeGroupRewards([1, 0, 0, 1, 3, 3, 3, 3], options: RewardNormalizationOptions(estimator: .rloo, nSamplesPerPrompt: 4, rolloutBatchSize: 2))
        let third: Double = 2.0 / 3
        let expected: [Double] = [third, -third, -third, third, 0, 0, 0, 0]
        #expect(close(out, expected, tolerance: 1e-15))
        #expect(try normalizeGroupRewards([5], options: RewardNormalizationOptions(estimator: .rloo, nSamplesPerPrompt: 1, rolloutBatchSize: 1)) == [0])
    }

    @Test func groupsWhoseRewardsAllAgreeGetZeroAdvantage() throws {
        let options = RewardNormalizationOptions(estimator: .grpo, nSamplesPerPrompt: 3, rolloutBatchSize: 2)
        #expect(try normalizeGroupRewards([1, 1, 1, 0, 0, 0], options: options) == [0, 0, 0, 0, 0, 0])
    }

    @Test func singleSampleGroupsAreGuarded() throws {
        // n = 1: slime turns std normalisation off; centring leaves 0.
        #expect(try normalizeGroupRewards([0.7, 0.2], options: RewardNormalizationOptions(estimator: .grpo, nSamplesPerPrompt: 1, rolloutBatchSize: 2)) == [0, 0])
        // A lone sample that falls back to one global group: torch's std is NaN there; Kite gives 0, not NaN.
        let lone = try normalizeGroupRewards([0.7], options: RewardNormalizationOptions(estimator: .grpo, nSamplesPerPrompt: 4, rolloutBatchSize: 2))
        #expect(lone == [0])
        #expect(throws: RLError.nonFinite(what: "rewards", position: 1)) {
            try normalizeGroupRewards([1, .nan], options: RewardNormalizationOptions(estimator: .grpo, nSamplesPerPrompt: 2, rolloutBatchSize: 1))
        }
        #expect(try normalizeGroupRewards([], options: RewardNormalizationOptions(estimator: .grpo, nSamplesPerPrompt: 2)) == [])
    }

    @Test func reinforcePlusPlusByHand() throws {
        // Rewards land on the last unmasked token; γ = 0.5 discounts them backwards; masked tokens' KL is ignored.
        let r = try reinforcePlusPlusReturns(rewards: [1], kl: [[0.2, 0.4, 0.6]], lossMasks: [[1, 1, 0]], klCoef: 0.5, gamma: 0.5)
        // token rewards: [−0.1, −0.2 + 1, 0] → returns: [−0.1 + 0.5·0.8, 0.8, 0]
        #expect(close(r[0], [0.3, 0.8, 0], tolerance: 1e-15))
        #expect(throws: RLError.self) { try reinforcePlusPlusReturns(rewards: [1], kl: [[0]], lossMasks: [[0]], klCoef: 0, gamma: 1) }
        let baseline = try reinforcePlusPlusBaselineAdvantages(rewards: [0.5], kl: [[0.2, -0.2]], klCoef: 0.5)
        #expect(close(baseline[0], [0.4, 0.6], tolerance: 1e-15))
    }

    @Test func whiteningByHand() throws {
        // Masked values [1, 3] (the 100 is masked out): mean 2, unbiased var 2 → (x − 2)/sqrt(2 + 1e-8).
        let w = try maskedWhiten([[1, 100], [3]], masks: [[1, 0], [1]])
        let s = 1 / sqrt(2 + 1e-8)
        #expect(close(w[0], [-s, 98 * s], tolerance: 1e-12) && close(w[1], [s], tolerance: 1e-12))
        #expect(throws: RLError.self) { try maskedWhiten([[1]], masks: [[0]]) }
    }

    @Test func dynamicSamplingFilterKeepsGroupsWithSpread() throws {
        #expect(checkRewardNonzeroStd(rewards: [1, 0, 1]).keep)
        #expect(checkRewardNonzeroStd(rewards: [1, 1, 1]) == DynamicFilterOutput(keep: false, reason: "zero_std_1.0"))
        #expect(checkRewardNonzeroStd(rewards: [-1, -1]) == DynamicFilterOutput(keep: false, reason: "zero_std_-1.0"))
        // float64: a spread of 1e-7 in the rewards is std 7e-8 ≤ 1e-6: dropped.
        #expect(!checkRewardNonzeroStd(rewards: [0.5, 0.5 + 1e-7]).keep)
        #expect(checkRewardNonzeroStd(rewards: [0.5, 0.5 + 1e-5]).keep)
        // One sample: NaN std in slime, dropped.
        #expect(!checkRewardNonzeroStd(rewards: [1]).keep)
        let group = [Sample(index: 0, reward: 1), Sample(index: 1, reward: 1)]
        let filter = try #require(DynamicSamplingFilter(path: "slime.rollout.filter_hub.dynamic_sampling_filters.check_reward_nonzero_std"))
        #expect(try filter(group, rewardKey: nil) == DynamicFilterOutput(keep: false, reason: "zero_std_1"))
        let dapo: [Sample] = [Sample(index: 0, reward: ["score": 1.0, "acc": true]), Sample(index: 1, reward: ["score": -1.0, "acc": false])]
        #expect(try filter(dapo, rewardKey: "score").keep)
        let fallback = try #require(DynamicSamplingFilter(path: "check_reward_nonzero_std_with_fallback"))
        let out = try fallback(group, rewardKey: nil)
        #expect(out.keepWhenInsufficient && !out.shouldDrop(remainingBatchSize: 3, targetDataSize: 4) && out.shouldDrop(remainingBatchSize: 5, targetDataSize: 4))
        #expect(DynamicSamplingFilter(path: "slime.nope") == nil)
    }
}
