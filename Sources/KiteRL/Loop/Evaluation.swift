import KiteEngine
import KiteJSON
import KiteTensor

extension TrainingRun {
    /// `--eval-prompt-data`: samples every prompt `--n-samples-per-eval-prompt` times and reports the mean
    /// reward, pass@1 and pass@n (unbiased estimator), a sample counting as passed when its reward is > 0.
    func evaluate(rolloutID: Int) async throws {
        guard let rolloutEngine, let reward else { return }
        let options = configuration.evaluation
        for (name, records) in evaluationSets {
            var sampling = SamplingParameters()
            sampling.temperature = options.temperature
            sampling.topP = options.topP
            sampling.maxNewTokens = options.maxResponseLength
            sampling.stop = configuration.rollout.stop
            sampling.stopTokenIDs = configuration.rollout.stopTokenIDs
            sampling.n = options.samplesPerPrompt
            let parameters = sampling
            let seed = configuration.rollout.seed
            let groups = try await withThrowingTaskGroup(of: (Int, [Sample]).self) { group in
                for record in records {
                    group.addTask {
                        var request = parameters
                        request.seed = seed &+ 0x5EED &+ UInt64(record.index) &* 7919
                        let results = try await rolloutEngine.generate(GenerationRequest(id: "eval-\(name)-\(rolloutID)-\(record.index)", promptTokens: record.promptTokens, sampling: request))
                        var samples = results.map { result in
                            Sample(groupIndex: record.index, prompt: record.prompt, tokens: (record.promptTokens + result.outputTokens).map(Int.init),
                                   response: result.text, responseLength: result.outputTokens.count, label: record.label, metadata: record.metadata)
                        }
                        let scores = try await reward.rewards(for: samples)
                        for i in samples.indices { samples[i].reward = scores[i] }
                        return (record.index, samples)
                    }
                }
                var collected: [(Int, [Sample])] = []
                for try await entry in group { collected.append(entry) }
                return collected.sorted { $0.0 < $1.0 }.map(\.1)
            }
            let rewards = try groups.map { try $0.map { try $0.rewardValue(key: configuration.rollout.rewardKey) } }
            let n = options.samplesPerPrompt
            let flat = rewards.flatMap { $0 }
            var metrics: [(name: String, value: Double)] = [
                ("eval/\(name)/reward_mean", flat.reduce(0, +) / Double(max(flat.count, 1))),
                ("eval/\(name)/pass@1", Self.passAtK(rewards, k: 1)),
                ("eval/\(name)/response_length_mean", Double(groups.flatMap { $0 }.reduce(0) { $0 + $1.responseLength }) / Double(max(flat.count, 1))),
            ]
            if n > 1 { metrics.append(("eval/\(name)/pass@\(n)", Self.passAtK(rewards, k: n))) }
            logger.record(kind: "eval", rolloutID: rolloutID, step: trainer.stepCount, metrics: metrics)
            logger.say("eval \(name) at rollout \(rolloutID): " + metrics.map { "\($0.name.split(separator: "/").last ?? "") \(NumberFormatting.fixed($0.value, 3))" }.joined(separator: ", "))
        }
    }

    /// Mean over prompts of 1 - C(n - c, k) / C(n, k), with c the samples whose reward is > 0.
    static func passAtK(_ rewards: [[Double]], k: Int) -> Double {
        guard !rewards.isEmpty else { return 0 }
        var total = 0.0
        for group in rewards {
            let n = group.count, c = group.filter { $0 > 0 }.count
            guard n >= k else { continue }
            if n - c < k {
                total += 1
                continue
            }
            var failAll = 1.0
            for i in 0..<k { failAll *= Double(n - c - i) / Double(n - i) }
            total += 1 - failAll
        }
        return total / Double(rewards.count)
    }
}
