import Foundation
import KiteJSON
import Testing

@testable import KiteRL

/// Packing and balancing against slime's own `build_dp_schedule`, `karmarkar_karp`, `first_fit_pack`,
/// `expand_bins_by_splitting` and `calculate_fwd_flops` (scripts/reference/rl_core.py), and the loss's
/// independence of packing and of the number of data-parallel ranks.
struct ScheduleTests {
    static func flopsModel(_ json: JSONValue) throws -> FlopsModel {
        var moe: FlopsModel.MoE?
        if let experts = json["num_experts"], !experts.isNull {
            moe = FlopsModel.MoE(
                ffnHiddenSize: try json.get("moe_ffn_hidden_size").int(), routerTopK: try json.get("moe_router_topk").int(),
                sharedExpertIntermediateSize: json["moe_shared_expert_intermediate_size"]?.intValue ?? 0,
                layerIsMoE: try json["moe_layer_freq"].map { try $0.ints().map { $0 > 0 } })
        }
        return FlopsModel(
            hiddenSize: try json.get("hidden_size").int(), numAttentionHeads: try json.get("num_attention_heads").int(),
            numQueryGroups: try json.get("num_query_groups").int(), kvChannels: try json.get("kv_channels").int(),
            ffnHiddenSize: try json.get("ffn_hidden_size").int(), numLayers: try json.get("num_layers").int(),
            vocabSize: try json.get("vocab_size").int(), moe: moe)
    }

    @Test func dpScheduleMatchesSlime() throws {
        let cases = try Fixtures.load("schedules.json").get("dp_schedules").array()
        #expect(cases.count == 33)
        for c in cases {
            let name = try c.get("name").string()
            let config = try c.get("config")
            let batching: MicroBatching = config["dynamic"]?.boolValue == true
                ? .dynamic(maxTokensPerGPU: try config.get("max_tokens").int()) : .fixed(microBatchSize: try config.get("mbs").int())
            let layout = ParallelLayout(
                dataParallelSize: try config.get("dp").int(), contextParallelSize: config["cp"]?.intValue ?? 1,
                virtualPipelineSize: config["vpp"]?.intValue ?? 1, microbatchGroupSizePerVPStage: config["mb_group"]?.intValue ?? 1)
            let expected = try c.get("expected")
            let run = {
                try buildDPSchedule(
                    totalLengths: try c.get("total_lengths").ints(), rolloutIds: try c.get("rollout_ids").ints(),
                    globalBatchSize: try c.get("global_batch_size").int(), layout: layout, batching: batching,
                    balanceData: config["balance"]?.boolValue == true, balanceByFlops: config["by_flops"]?.boolValue == true,
                    flops: try Self.flopsModel(c.get("model")))
            }
            if expected["error"] != nil {
                #expect(throws: RLError.self, "\(name) should be rejected as slime rejects it") { try run() }
                continue
            }
            let schedule = try run()
            #expect(schedule.partitions == (try expected.get("partitions").array().map { try $0.ints() }), "\(name): partitions")
            #expect(schedule.microBatchIndices == (try expected.get("micro_batch_indices").array().map { try $0.array().map { try $0.ints() } }), "\(name): micro-batch indices")
            #expect(schedule.numMicrobatches == (try expected.get("num_microbatches").ints()), "\(name): micro-batch counts")
            #expect(schedule.globalBatchSizes == (try expected.get("global_batch_sizes").ints()), "\(name): global batch sizes")
        }
    }

    @Test func karmarkarKarpMatchesSlime() throws {
        for c in try Fixtures.load("schedules.json").get("karmarkar_karp").array() {
            let weights = try c.get("weights").ints().map(Double.init)
            let k = try c.get("k").int(), equal = c["equal_size"]?.boolValue == true
            let sets = try karmarkarKarp(weights: weights, partitions: k, equalSize: equal)
            #expect(sets == (try c.get("karmarkar_karp").array().map { try $0.ints() }), "KK \(weights) k=\(k) equal=\(equal)")
            if let balanced = c["balanced"], !balanced.isNull {
                #expect(try balancedPartitions(weights: weights, partitions: k, equalSize: equal) == (try balanced.array().map { try $0.ints() }))
            }
        }
    }

    @Test func firstFitAndSplittingMatchSlime() throws {
        for c in try Fixtures.load("schedules.json").get("first_fit").array() {
            let lengths = try c.get("lengths").ints()
            var bins = firstFitPack(lengths: lengths, capacity: try c.get("capacity").int())
            #expect(bins == (try c.get("bins").array().map { try $0.ints() }))
            expandBinsBySplitting(&bins, targetCount: try c.get("target").int(), lengths: lengths)
            #expect(bins == (try c.get("expanded").array().map { try $0.ints() }))
        }
    }

    @Test func flopsMatchSlime() throws {
        for c in try Fixtures.load("schedules.json").get("flops").array() {
            let model = try Self.flopsModel(c.get("model"))
            for (length, flops) in zip(try c.get("lengths").ints(), try c.get("flops").doubles()) {
                #expect(model.forwardFlops(sequenceLength: length) == flops, "length \(length)")
            }
        }
    }

    @Test func firstFitByHand() {
        // Capacity 10: [6, 5, 4, 11, 3] → bins {6, 4}, {5, 3}, {11} (alone, never truncated).
        #expect(firstFitPack(lengths: [6, 5, 4, 11, 3], capacity: 10) == [[0, 2], [1, 4], [3]])
        #expect(firstFitPack(lengths: [], capacity: 10) == [])
    }

    @Test func globalBatchSizeFollowsSlime() throws {
        #expect(try globalBatchSize(rolloutBatchSize: 128, nSamplesPerPrompt: 8, numStepsPerRollout: 4, globalBatchSize: nil) == 256)
        #expect(try globalBatchSize(rolloutBatchSize: 128, nSamplesPerPrompt: 8, numStepsPerRollout: 4, globalBatchSize: 256) == 256)
        #expect(throws: RLError.self) { try globalBatchSize(rolloutBatchSize: 128, nSamplesPerPrompt: 8, numStepsPerRollout: 4, globalBatchSize: 100) }
        #expect(try globalBatchSize(rolloutBatchSize: 4, nSamplesPerPrompt: 2, numStepsPerRollout: nil, globalBatchSize: 8) == 8)
        #expect(throws: RLError.self) { try globalBatchSize(rolloutBatchSize: 4, nSamplesPerPrompt: 2, numStepsPerRollout: nil, globalBatchSize: nil) }
    }

    /// The step loss and its per-token gradients are the same whether a step runs as one micro-batch or
    /// is packed by any schedule over 1, 2 or 4 simulated data-parallel ranks.
    @Test(arguments: [false, true])
    func lossIsIndependentOfPackingAndRanks(perToken: Bool) throws {
        var g = SplitMix(seed: 7)
        let sampleCount = 24
        let promptLengths = (0..<sampleCount).map { _ in g.int(3...20) }
        let responseLengths = (0..<sampleCount).map { i in i == 5 ? 0 : g.int(1...40) }
        // Samples 0 and 1, and 10, 11, 12, share rollouts (fan-out); the rest are one rollout each.
        let rolloutIds = (0..<sampleCount).map { i in [0: 0, 1: 0, 10: 9, 11: 9, 12: 9][i] ?? i }
        let masks = responseLengths.map { n in (0..<n).map { _ in g.uniform(0, 1) < 0.15 ? 0 : 1 } }
        let denominators = try rolloutMaskSums(rolloutIds: rolloutIds, lossMasks: masks)
        struct Token { var logp, old, ref, rollout, entropy, advantage: Double }
        let tokens = responseLengths.map { n in (0..<n).map { _ -> Token in
            let logp = -g.uniform(0.05, 3)
            return Token(logp: logp, old: logp + g.uniform(-0.3, 0.3), ref: logp + g.uniform(-1, 1), rollout: logp + g.uniform(-0.5, 0.5), entropy: g.uniform(0, 3), advantage: 0)
        } }
        let advantages = (0..<sampleCount).map { _ in g.uniform(-2, 2) }
        let rolloutCount = Set(rolloutIds).count
        var options = LossOptions()
        options.epsClipHigh = 0.28
        options.epsClipC = 3
        options.useKLLoss = true
        options.klLossCoef = 0.05
        options.klLossType = .lowVarKL
        options.entropyCoef = 0.01
        options.useTIS = true
        options.calculatePerTokenLoss = perToken
        let normalization = LossNormalization.forStep(lossMasks: masks, globalBatchSize: rolloutCount, perToken: perToken)

        func input(_ samples: [Int]) -> PackedLossInput {
            let t = samples.flatMap { tokens[$0] }
            return PackedLossInput(
                responseLengths: samples.map { responseLengths[$0] }, logProbs: t.map(\.logp), oldLogProbs: t.map(\.old),
                refLogProbs: t.map(\.ref), rolloutLogProbs: t.map(\.rollout), entropy: t.map(\.entropy),
                advantages: samples.flatMap { [Double](repeating: advantages[$0], count: responseLengths[$0]) },
                lossMask: samples.flatMap { masks[$0].map(Double.init) }, sampleDenominators: samples.map { denominators[$0] })
        }
        func scatter(_ samples: [Int], _ values: [Double], into out: inout [[Double]]) {
            var offset = 0
            for s in samples {
                for t in 0..<responseLengths[s] { out[s][t] += values[offset + t] }
                offset += responseLengths[s]
            }
        }
        for estimator in [AdvantageEstimator.grpo, .gspo] {
            options.advantageEstimator = estimator
            let all = Array(0..<sampleCount)
            let whole = try policyLoss(input(all), options: options, normalization: normalization)
            var reference = responseLengths.map { [Double](repeating: 0, count: $0) }
            scatter(all, whole.dLogProbs, into: &reference)

            let flops = FlopsModel(hiddenSize: 32, numAttentionHeads: 4, numQueryGroups: 2, kvChannels: 8, ffnHiddenSize: 64, numLayers: 2, vocabSize: 100)
            let batchings: [MicroBatching] = [.dynamic(maxTokensPerGPU: 40), .dynamic(maxTokensPerGPU: 100), .dynamic(maxTokensPerGPU: 1000), .fixed(microBatchSize: 1), .fixed(microBatchSize: 3)]
            for dp in [1, 2, 4] {
                for batching in batchings {
                    for balance in [false, true] {
                        let schedule: DPSchedule
                        do {
                            schedule = try buildDPSchedule(
                                totalLengths: zip(promptLengths, responseLengths).map(+), rolloutIds: rolloutIds, globalBatchSize: rolloutCount,
                                layout: ParallelLayout(dataParallelSize: dp), batching: batching, balanceData: balance, flops: flops)
                        } catch {
                            // Fixed micro-batches that do not divide among the ranks are rejected, as in slime.
                            if case .fixed = batching { continue }
                            throw error
                        }
                        var total = 0.0
                        var metrics = LossMetrics()
                        var gradients = responseLengths.map { [Double](repeating: 0, count: $0) }
                        var seen: [Int] = []
                        for rank in 0..<dp {
                            for microBatch in schedule.microBatches(rank: rank, step: 0) {
                                let r = try policyLoss(input(microBatch), options: options, normalization: normalization)
                                total += r.loss
                                metrics.accumulate(r.metrics)
                                scatter(microBatch, r.dLogProbs, into: &gradients)
                                seen += microBatch
                            }
                        }
                        let label = "\(estimator) dp=\(dp) \(batching) balance=\(balance) perToken=\(perToken)"
                        #expect(seen.sorted() == all, "\(label): every sample exactly once")
                        #expect(abs(total - whole.loss) < 1e-12, "\(label): loss \(total) vs \(whole.loss)")
                        #expect(abs(metrics.pgClipfrac - whole.metrics.pgClipfrac) < 1e-12 && abs((metrics.klLoss ?? 0) - (whole.metrics.klLoss ?? 0)) < 1e-12, "\(label): metrics")
                        let maxDiff = zip(gradients.joined(), reference.joined()).map { abs($0 - $1) }.max() ?? 0
                        #expect(maxDiff < 1e-12, "\(label): gradient differs by \(maxDiff)")
                    }
                }
            }
        }
    }
}
