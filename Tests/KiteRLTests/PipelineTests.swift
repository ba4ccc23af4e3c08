import Foundation
import KiteJSON
import Testing

@testable import KiteRL

/// The pure pieces chained as the loop chains them: rewards → group normalisation → advantages →
/// dynamic filter → schedule → loss.
struct PipelineTests {
    @Test func aGRPOStepFromSamplesPushesTowardsCorrectAnswers() throws {
        let answers = [["4", "5", "4", "four"], ["7", "7", "7", "7"]]  // group 2: all agree
        var samples: [Sample] = []
        for (group, responses) in answers.enumerated() {
            for (k, answer) in responses.enumerated() {
                let index = group * 4 + k
                samples.append(Sample(
                    index: index, groupIndex: group, prompt: "q", tokens: [1, 2, 3] + [Int](repeating: 9, count: 2 + k),
                    response: "<think>...</think> \\boxed{\(answer)}", responseLength: 2 + k, label: group == 0 ? "4" : "7",
                    rolloutLogProbs: [Double](repeating: -0.5, count: 2 + k), status: .completed))
            }
        }
        for i in samples.indices { samples[i].reward = try RewardHub.reward(for: samples[i], rmType: "deepscaler") }
        #expect(samples.map { try? $0.rewardValue(key: nil) } == [1, 0, 1, 0, 1, 1, 1, 1])

        // Dynamic sampling drops the group whose rewards all agree.
        let kept = try [0, 1].filter { g in try checkRewardNonzeroStd(samples.filter { $0.groupIndex == g }, rewardKey: nil).keep }
        #expect(kept == [0])
        let batch = samples.filter { $0.groupIndex == 0 }

        let raw = try batch.map { try $0.rewardValue(key: nil) }
        let rewards = try normalizeGroupRewards(raw, options: RewardNormalizationOptions(estimator: .grpo, nSamplesPerPrompt: 4, rolloutBatchSize: 1))
        let masks = batch.map(\.effectiveLossMask)
        let (advantages, _) = try computeAdvantagesAndReturns(rewards: rewards, responseLengths: batch.map(\.responseLength), lossMasks: masks, options: AdvantageOptions())
        let ids = assignRolloutIds(batch.map(\.rolloutId))
        let denominators = try rolloutMaskSums(rolloutIds: ids, lossMasks: masks)
        let schedule = try buildDPSchedule(totalLengths: batch.map(\.tokens.count), rolloutIds: ids, globalBatchSize: 4, layout: ParallelLayout(dataParallelSize: 2), batching: .dynamic(maxTokensPerGPU: 8))
        let normalization = LossNormalization.forStep(lossMasks: masks, globalBatchSize: 4, perToken: false)
        var gradient = batch.map { [Double](repeating: 0, count: $0.responseLength) }
        for rank in 0..<2 {
            for microBatch in schedule.microBatches(rank: rank, step: 0) {
                let logp = microBatch.flatMap { batch[$0].rolloutLogProbs ?? [] }
                let input = PackedLossInput(
                    responseLengths: microBatch.map { batch[$0].responseLength }, logProbs: logp, oldLogProbs: logp,
                    rolloutLogProbs: logp, entropy: logp.map { _ in 1 }, advantages: microBatch.flatMap { advantages[$0] },
                    lossMask: microBatch.flatMap { masks[$0].map(Double.init) }, sampleDenominators: microBatch.map { denominators[$0] })
                let result = try policyLoss(input, options: LossOptions(), normalization: normalization)
                var offset = 0
                for s in microBatch {
                    for t in 0..<batch[s].responseLength { gradient[s][t] = result.dLogProbs[offset + t] }
                    offset += batch[s].responseLength
                }
            }
        }
        // Gradient descent raises the log-probs of correct answers and lowers those of wrong ones.
        for (s, sample) in batch.enumerated() {
            let correct = try sample.rewardValue(key: nil) == 1
            #expect(gradient[s].allSatisfy { correct ? $0 < 0 : $0 > 0 }, "sample \(s)")
        }
    }
}
