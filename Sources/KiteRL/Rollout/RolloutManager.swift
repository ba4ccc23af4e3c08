import KiteEngine
import KiteJSON
import KiteModels
import KiteTensor

/// slime's rollout flags.
public struct RolloutOptions: Sendable, Equatable {
    /// `--rollout-batch-size`: prompt groups per rollout.
    public var rolloutBatchSize: Int
    /// `--n-samples-per-prompt`
    public var samplesPerPrompt = 1
    /// `--over-sampling-batch-size`: prompts launched at a time; nil means `rolloutBatchSize`.
    public var overSamplingBatchSize: Int?
    /// `--dynamic-sampling-filter-path`
    public var dynamicFilter: DynamicSamplingFilter?
    /// `--partial-rollout`: samples cut short when enough groups passed are continued next rollout.
    public var partialRollout = false
    /// `--sglang-server-concurrency`: samples in flight at most.
    public var concurrency = 512
    /// `--rollout-temperature`, `--rollout-top-p`, `--rollout-top-k`
    public var temperature = 1.0
    public var topP = 1.0
    public var topK = -1
    /// `--rollout-max-response-len`
    public var maxResponseLength = 1024
    /// `--rollout-stop`, `--rollout-stop-token-ids`
    public var stop: [String] = []
    public var stopTokenIDs: [Int32] = []
    /// `--reward-key`
    public var rewardKey: String?
    /// `--rollout-seed`: every group's sampling seed derives from it, the rollout id and the group index.
    public var seed: UInt64 = 42
    /// `--use-rollout-routing-replay`: ask the engine for the experts it routed each token to (SGLang's
    /// `return_routed_experts`) and keep them in `Sample.rolloutRoutedExperts`.
    public var returnRoutedExperts = false

    public init(rolloutBatchSize: Int) {
        self.rolloutBatchSize = rolloutBatchSize
    }

    public func validate() throws(RLError) {
        guard rolloutBatchSize > 0 else { throw .invalidOption(name: "--rollout-batch-size", message: "must be > 0, got \(rolloutBatchSize)") }
        guard samplesPerPrompt > 0 else { throw .invalidOption(name: "--n-samples-per-prompt", message: "must be > 0, got \(samplesPerPrompt)") }
        if let over = overSamplingBatchSize, over <= 0 { throw .invalidOption(name: "--over-sampling-batch-size", message: "must be > 0, got \(over)") }
        guard concurrency > 0 else { throw .invalidOption(name: "--sglang-server-concurrency", message: "must be > 0, got \(concurrency)") }
        guard temperature > 0 else { throw .invalidOption(name: "--rollout-temperature", message: "must be > 0 for RL rollouts, got \(temperature)") }
        guard maxResponseLength > 0 else { throw .invalidOption(name: "--rollout-max-response-len", message: "must be > 0, got \(maxResponseLength)") }
    }
}

/// One rollout's accepted groups and what it cost.
public struct RolloutResult: Sendable {
    public var groups: [[Sample]]
    public var metrics: [(name: String, value: Double)]
}

/// Produces a rollout: launches prompt groups on the engine, scores them, applies the dynamic-sampling filter
/// and keeps launching until `rolloutBatchSize` groups pass, then aborts the rest (slime's
/// `generate_rollout_async`).
///
/// Accepted groups are the first passing ones *in launch order*, not in completion order, and every group's
/// sampling seed is fixed by (seed, rollout id, group index): the same run gives the same rollout however the
/// engine batches or schedules, which is what lets a resumed run continue exactly.
public final class RolloutManager: @unchecked Sendable {
    public let engine: any RolloutEngine
    public let dataset: PromptDataset
    public let reward: any RewardFunction
    public let options: RolloutOptions
    public private(set) var nextSampleIndex = 0
    public private(set) var nextGroupIndex = 0
    /// Partially generated groups carried to the next rollout (`--partial-rollout`).
    public private(set) var carried: [PendingGroup] = []

    /// A group not yet accepted: fresh (no samples), cut short (partial samples), or finished after the
    /// target was met (complete samples with rewards), as `--partial-rollout` carries them.
    public struct PendingGroup: Sendable {
        var record: PromptRecord
        var groupIndex: Int
        var samples: [Sample]
        var complete = false
    }

    public init(engine: any RolloutEngine, dataset: PromptDataset, reward: any RewardFunction, options: RolloutOptions) throws(RLError) {
        try options.validate()
        self.engine = engine
        self.dataset = dataset
        self.reward = reward
        self.options = options
    }

    /// What a checkpoint saves: the counters and the groups carried to the next rollout.
    public var state: JSONValue {
        [
            "next_sample_index": .int(nextSampleIndex), "next_group_index": .int(nextGroupIndex),
            "carried": .array(carried.map { group in
                ["record": group.record.json, "group_index": .int(group.groupIndex), "samples": .array(group.samples.map(\.json)), "complete": .bool(group.complete)]
            }),
        ]
    }

    public func restore(state: JSONValue, source: String) throws(RLError) {
        guard let sampleIndex = state["next_sample_index"]?.intValue, let groupIndex = state["next_group_index"]?.intValue else {
            throw .invalidSample(sample: source, field: "rollout_manager", message: "expected next_sample_index and next_group_index")
        }
        nextSampleIndex = sampleIndex
        nextGroupIndex = groupIndex
        carried = []
        for (position, group) in (state["carried"]?.arrayValue ?? []).enumerated() {
            guard let record = group["record"], let index = group["group_index"]?.intValue else {
                throw .invalidSample(sample: source, field: "carried[\(position)]", message: "expected record and group_index")
            }
            var samples: [Sample] = []
            for (i, sample) in (group["samples"]?.arrayValue ?? []).enumerated() { samples.append(try Sample(json: sample, position: i)) }
            carried.append(PendingGroup(record: try PromptRecord(json: record, source: source), groupIndex: index, samples: samples, complete: group["complete"]?.boolValue ?? false))
        }
    }

    private enum Outcome: Sendable {
        case finished([Sample], PendingGroup)
        case aborted(PendingGroup)
    }

    /// Samples record the weight version the engine reports for them, so the trainer can check it.
    public func generate(rolloutID: Int) async throws -> RolloutResult {
        let start = Self.now()
        let target = options.rolloutBatchSize
        let n = options.samplesPerPrompt
        let overSampling = options.overSamplingBatchSize ?? target
        let groupLimit = max(1, options.concurrency / n)
        var queue: [PendingGroup] = carried
        carried = []
        var launched = 0, dropped = 0, resolved = 0
        var outcomes: [Int: Outcome] = [:]
        var accepted: [[Sample]] = []
        var prefix = 0
        var inFlight: [Int: String] = [:]
        var generatedTokens = 0
        var droppedReasons: [String: Int] = [:]
        let requestPrefix = "rollout\(rolloutID)-"

        try await withThrowingTaskGroup(of: (Int, Outcome).self) { tasks in
            func launch(_ pending: PendingGroup, position: Int) {
                let requestID = requestPrefix + String(pending.groupIndex)
                inFlight[position] = requestID
                let engine = engine, reward = reward, options = options
                let seed = options.seed &+ UInt64(rolloutID) &* 1_000_003 &+ UInt64(pending.groupIndex) &* 7919
                tasks.addTask {
                    let outcome = try await Self.runGroup(pending, requestID: requestID, seed: seed, engine: engine, reward: reward, options: options)
                    return (position, outcome)
                }
            }
            func refill() {
                // Keep enough groups launched that the target can still be met after the drops so far.
                while launched - dropped + queue.count < target {
                    for record in dataset.next(overSampling) {
                        queue.append(PendingGroup(record: record, groupIndex: nextGroupIndex, samples: []))
                        nextGroupIndex += 1
                    }
                }
                while inFlight.count < groupLimit, !queue.isEmpty, accepted.count < target {
                    let pending = queue.removeFirst()
                    launch(pending, position: launched)
                    launched += 1
                }
            }
            refill()
            while accepted.count < target, let (position, outcome) = try await tasks.next() {
                inFlight[position] = nil
                outcomes[position] = outcome
                resolved += 1
                if case .finished(let samples, _) = outcome {
                    generatedTokens += samples.reduce(0) { $0 + $1.responseLength }
                    let verdict = try options.dynamicFilter.map { try $0(samples, rewardKey: options.rewardKey) }
                    if let verdict, !verdict.keep {
                        dropped += 1
                        droppedReasons[verdict.reason ?? "filtered", default: 0] += 1
                    }
                }
                // Accept in launch order: the prefix of resolved groups decides.
                while prefix < launched, let outcome = outcomes[prefix], accepted.count < target {
                    if case .finished(let samples, _) = outcome {
                        let keep = try options.dynamicFilter.map { try $0(samples, rewardKey: options.rewardKey).keep } ?? true
                        if keep { accepted.append(samples) }
                    }
                    prefix += 1
                }
                if accepted.count < target {
                    // Without a bound, a reward that never varies within a group would over-sample forever.
                    let bound = max(64 * target, 2 * dataset.records.count)
                    if dropped >= bound && accepted.count < target {
                        let reasons = droppedReasons.map { "\($0.value) \($0.key)" }.sorted().joined(separator: ", ")
                        throw RLError.scheduling(
                            "dynamic sampling dropped \(dropped) groups (\(reasons)) and kept only \(accepted.count) of the \(target) needed: "
                            + "the rewards within a group nearly always agree; check the reward function (--rm-type, --custom-rm-cmd) and the labels")
                    }
                    refill()
                }
            }
            // Enough groups passed: abort what is still running and collect it.
            for requestID in inFlight.values { await engine.abort(requestID: requestID) }
            var leftover: [Int: PendingGroup] = [:]
            while let (position, outcome) = try await tasks.next() {
                switch outcome {
                case .aborted(let pending): leftover[position] = pending
                case .finished(_, let pending): leftover[position] = pending
                }
            }
            // Groups resolved but beyond the accepted prefix were not used either.
            for position in prefix..<launched where leftover[position] == nil {
                if let outcome = outcomes[position] {
                    switch outcome {
                    case .aborted(let pending): leftover[position] = pending
                    case .finished(_, let pending): leftover[position] = pending
                    }
                }
            }
            if options.partialRollout {
                carried = leftover.keys.sorted().compactMap { leftover[$0] } + queue
            }
        }
        guard accepted.count == target else {
            throw RLError.scheduling("rollout \(rolloutID): only \(accepted.count) of \(target) groups passed the filter")
        }
        var groups = accepted
        for g in groups.indices {
            for s in groups[g].indices {
                groups[g][s].index = nextSampleIndex
                nextSampleIndex += 1
            }
        }
        return RolloutResult(groups: groups, metrics: Self.metrics(groups: groups, launched: launched, dropped: dropped, resolved: resolved, generatedTokens: generatedTokens, seconds: Self.now() - start, rewardKey: options.rewardKey))
    }

    /// One group: generate (continuing partial samples), then score.
    private static func runGroup(
        _ pending: PendingGroup, requestID: String, seed: UInt64, engine: any RolloutEngine,
        reward: any RewardFunction, options: RolloutOptions
    ) async throws -> Outcome {
        if pending.complete { return .finished(pending.samples, pending) }
        var sampling = SamplingParameters()
        sampling.temperature = options.temperature
        sampling.topP = options.topP
        sampling.topK = options.topK
        sampling.maxNewTokens = options.maxResponseLength
        sampling.stop = options.stop
        sampling.stopTokenIDs = options.stopTokenIDs
        sampling.seed = seed
        let prompt = pending.record.promptTokens
        var outputs: [(tokens: [Int32], logprobs: [Float], text: String, reason: FinishReason, versions: [String], routed: RoutedExperts?)]
        if pending.samples.isEmpty {
            // A fresh group: one request for all samples, so the engine prefills the prompt once.
            sampling.n = options.samplesPerPrompt
            let results = try await engine.generate(GenerationRequest(
                id: requestID, promptTokens: prompt, sampling: sampling, returnLogprob: true, returnRoutedExperts: options.returnRoutedExperts))
            outputs = results.map { ($0.outputTokens, $0.outputLogprobs, $0.text, $0.finishReason, [$0.weightVersion], $0.routedExperts) }
        } else {
            // A group cut short last rollout: continue each sample from where it stopped.
            outputs = []
            for (index, partial) in pending.samples.enumerated() {
                let done = Array(partial.responseTokens.map(Int32.init))
                var continuation = sampling
                continuation.n = 1
                continuation.seed = seed &+ UInt64(index)
                continuation.maxNewTokens = max(0, options.maxResponseLength - done.count)
                let result = try await engine.generate(GenerationRequest(
                    id: requestID + "-\(index)", promptTokens: prompt + done, sampling: continuation, returnLogprob: true,
                    returnRoutedExperts: options.returnRoutedExperts))[0]
                // The continuation's prompt is the whole sample so far: its routed experts cover every token.
                outputs.append((done + result.outputTokens, (partial.rolloutLogProbs ?? []).map(Float.init) + result.outputLogprobs,
                                partial.response + result.text, result.finishReason, partial.weightVersions + [result.weightVersion], result.routedExperts))
            }
        }
        let samples = outputs.map { output in
            Sample(
                groupIndex: pending.groupIndex, prompt: pending.record.prompt,
                tokens: (prompt + output.tokens).map(Int.init), response: output.text, responseLength: output.tokens.count,
                label: pending.record.label, rolloutLogProbs: output.logprobs.map(Double.init), weightVersions: output.versions,
                status: { () -> SampleStatus in
                    switch output.reason {
                    case .length: return .truncated
                    case .abort: return .aborted
                    default: return .completed
                    }
                }(),
                metadata: pending.record.metadata, rolloutRoutedExperts: output.routed)
        }
        if samples.contains(where: { $0.status == .aborted }) {
            var partial = pending
            partial.samples = samples
            return .aborted(partial)
        }
        var scored = samples
        let scores = try await reward.rewards(for: scored)
        guard scores.count == scored.count else {
            throw RLError.invalidReward(sample: "group \(pending.groupIndex)", message: "the reward function returned \(scores.count) rewards for \(scored.count) samples")
        }
        for i in scored.indices { scored[i].reward = scores[i] }
        var finished = pending
        finished.samples = scored
        finished.complete = true
        return .finished(scored, finished)
    }

    static func metrics(groups: [[Sample]], launched: Int, dropped: Int, resolved: Int, generatedTokens: Int, seconds: Double, rewardKey: String?) -> [(name: String, value: Double)] {
        let samples = groups.flatMap { $0 }
        let rewards = samples.compactMap { try? $0.rewardValue(key: rewardKey) }
        let lengths = samples.map { Double($0.responseLength) }
        let mean = rewards.isEmpty ? 0 : rewards.reduce(0, +) / Double(rewards.count)
        let variance = rewards.isEmpty ? 0 : rewards.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(rewards.count)
        return [
            ("rollout/reward_mean", mean),
            ("rollout/reward_std", variance.squareRoot()),
            ("rollout/pass_rate", rewards.isEmpty ? 0 : Double(rewards.filter { $0 > 0 }.count) / Double(rewards.count)),
            ("rollout/response_length_mean", lengths.isEmpty ? 0 : lengths.reduce(0, +) / Double(lengths.count)),
            ("rollout/response_length_max", lengths.max() ?? 0),
            ("rollout/truncated_ratio", samples.isEmpty ? 0 : Double(samples.filter { $0.status == .truncated }.count) / Double(samples.count)),
            ("rollout/filter_drop_ratio", resolved == 0 ? 0 : Double(dropped) / Double(resolved)),
            ("rollout/groups_launched", Double(launched)),
            ("rollout/tokens_per_second", seconds > 0 ? Double(generatedTokens) / seconds : 0),
            ("rollout/seconds", seconds),
        ]
    }

    static func now() -> Double { MonotonicClock.seconds() }
}
