/// slime's `first_fit_pack`: samples in input order, each into the first bin with room for it, else a
/// new bin. A sample longer than the capacity sits alone in its own bin; nothing is truncated.
/// Returns bins of sample indices.
public func firstFitPack(lengths: [Int], capacity: Int) -> [[Int]] {
    var bins: [[Int]] = []
    var sums: [Int] = []
    for (index, length) in lengths.enumerated() {
        if let j = sums.firstIndex(where: { $0 + length <= capacity }) {
            bins[j].append(index)
            sums[j] += length
        } else {
            bins.append([index])
            sums.append(length)
        }
    }
    return bins
}

/// slime's `_split_bin_by_tokens`: the bin's samples, longest first (stable), each into the lighter
/// half (the first on a tie).
public func splitBinByTokens(_ bin: [Int], lengths: [Int]) -> [[Int]] {
    var halves: [[Int]] = [[], []]
    var sums = [0, 0]
    let order = bin.enumerated().sorted { a, b in
        lengths[a.element] != lengths[b.element] ? lengths[a.element] > lengths[b.element] : a.offset < b.offset
    }.map(\.element)
    for index in order {
        let h = sums[0] <= sums[1] ? 0 : 1
        halves[h].append(index)
        sums[h] += lengths[index]
    }
    return halves
}

/// slime's `expand_bins_by_splitting`: until there are `targetCount` bins, split the multi-sample bin
/// with the most tokens (ties: the later bin, as Python's `max` over (sum, position) picks) in two,
/// the left half staying in place and the right half appended. Stops when only singletons remain.
public func expandBinsBySplitting(_ bins: inout [[Int]], targetCount: Int, lengths: [Int]) {
    while bins.count < targetCount {
        var best: (sum: Int, position: Int)?
        for (position, bin) in bins.enumerated() where bin.count > 1 {
            let sum = bin.reduce(0) { $0 + lengths[$1] }
            if let current = best, (sum, position) <= (current.sum, current.position) { continue }
            best = (sum, position)
        }
        guard let best else { return }
        let halves = splitBinByTokens(bins[best.position], lengths: lengths)
        bins[best.position] = halves[0]
        bins.append(halves[1])
    }
}

/// How a step is cut into micro-batches.
public enum MicroBatching: Sendable, Equatable {
    /// `--use-dynamic-batch-size --max-tokens-per-gpu N`: first-fit packing with capacity N · cp_size.
    case dynamic(maxTokensPerGPU: Int)
    /// `--micro-batch-size N`: consecutive chunks of N samples.
    case fixed(microBatchSize: Int)
}

/// The parallel layout the schedule needs (slime's `train_parallel_config`).
public struct ParallelLayout: Sendable, Equatable {
    public var dataParallelSize: Int
    public var contextParallelSize: Int
    public var virtualPipelineSize: Int
    public var microbatchGroupSizePerVPStage: Int

    public init(dataParallelSize: Int = 1, contextParallelSize: Int = 1, virtualPipelineSize: Int = 1, microbatchGroupSizePerVPStage: Int = 1) {
        self.dataParallelSize = dataParallelSize
        self.contextParallelSize = contextParallelSize
        self.virtualPipelineSize = virtualPipelineSize
        self.microbatchGroupSizePerVPStage = microbatchGroupSizePerVPStage
    }
}

/// Which micro-batches go to which data-parallel rank, for every training step of a rollout
/// (slime's `build_dp_schedule` output).
public struct DPSchedule: Sendable, Equatable {
    /// Per rank: global sample indices, in the rank's local order (all steps, one after another).
    public var partitions: [[Int]]
    /// Per rank: its micro-batches as indices into its partition.
    public var microBatchIndices: [[[Int]]]
    /// Micro-batches per rank for each step (the same on every rank).
    public var numMicrobatches: [Int]
    /// Rollouts per step (the loss denominator in per-sample mode).
    public var globalBatchSizes: [Int]

    /// The global sample indices of the micro-batches rank `rank` runs in step `step`.
    public func microBatches(rank: Int, step: Int) -> [[Int]] {
        let first = numMicrobatches[..<step].reduce(0, +)
        return microBatchIndices[rank][first..<first + numMicrobatches[step]].map { local in local.map { partitions[rank][$0] } }
    }
}

/// `--global-batch-size` from the flags as slime derives it: with `--num-steps-per-rollout`,
/// `rollout_batch_size · n_samples_per_prompt // num_steps_per_rollout` (a given global batch size
/// must agree); otherwise the given global batch size.
public func globalBatchSize(rolloutBatchSize: Int, nSamplesPerPrompt: Int, numStepsPerRollout: Int?, globalBatchSize: Int?) throws(RLError) -> Int {
    if let steps = numStepsPerRollout {
        guard steps > 0 else { throw .invalidOption(name: "--num-steps-per-rollout", message: "must be > 0, got \(steps)") }
        let derived = rolloutBatchSize * nSamplesPerPrompt / steps
        if let globalBatchSize, globalBatchSize != derived {
            throw .invalidOption(name: "--global-batch-size", message: "\(globalBatchSize) is not rollout_batch_size \(rolloutBatchSize) * n_samples_per_prompt \(nSamplesPerPrompt) // num_steps_per_rollout \(steps) = \(derived)")
        }
        guard derived > 0 else { throw .invalidOption(name: "--num-steps-per-rollout", message: "\(steps) steps leave no sample per step") }
        return derived
    }
    guard let globalBatchSize else {
        throw .invalidOption(name: "--global-batch-size", message: "set it or --num-steps-per-rollout")
    }
    guard globalBatchSize > 0 else { throw .invalidOption(name: "--global-batch-size", message: "must be > 0, got \(globalBatchSize)") }
    return globalBatchSize
}

/// slime's `build_dp_schedule` (`slime/utils/dp_schedule.py`): pack first, distribute second.
/// 1. Samples are grouped by rollout id (first-occurrence order); each step takes `globalBatchSize`
///    rollouts with all their samples; trailing rollouts that do not fill a step are dropped.
/// 2. Each step is cut into micro-batches (first-fit with capacity `maxTokensPerGPU · cp`, or fixed
///    chunks; with `balanceByFlops`, Karmarkar-Karp on FLOPs into ⌈tokens / capacity⌉ unequal sets).
/// 3. The micro-batch count is raised to a multiple of `dp · (mb_group if vpp > 1)` by splitting bins
///    (dynamic) or rejected (fixed).
/// 4. Micro-batches go to ranks: with `balanceData`, Karmarkar-Karp with equal counts on their FLOPs
///    (`flops` must be given); else round-robin (rank r gets r, r + dp, ...).
public func buildDPSchedule(
    totalLengths: [Int], rolloutIds: [Int], globalBatchSize: Int, layout: ParallelLayout, batching: MicroBatching,
    balanceData: Bool = false, balanceByFlops: Bool = false, flops: FlopsModel? = nil
) throws(RLError) -> DPSchedule {
    guard totalLengths.count == rolloutIds.count else { throw .shapeMismatch(what: "rollout ids", expected: totalLengths.count, found: rolloutIds.count) }
    guard globalBatchSize > 0 else { throw .invalidOption(name: "--global-batch-size", message: "must be > 0, got \(globalBatchSize)") }
    let dp = layout.dataParallelSize
    guard dp > 0, layout.contextParallelSize > 0 else { throw .invalidOption(name: "parallel layout", message: "sizes must be > 0") }
    if (balanceData || balanceByFlops) && flops == nil {
        throw .invalidOption(name: balanceData ? "--balance-data" : "--balance-by-flops", message: "needs the model shape to estimate FLOPs")
    }
    var capacity: Int?
    if case .dynamic(let maxTokens) = batching {
        guard maxTokens > 0 else { throw .invalidOption(name: "--max-tokens-per-gpu", message: "must be > 0, got \(maxTokens)") }
        capacity = maxTokens * layout.contextParallelSize
    }
    if case .fixed(let size) = batching, size <= 0 {
        throw .invalidOption(name: "--micro-batch-size", message: "must be > 0, got \(size)")
    }
    let alignTo = dp * (layout.virtualPipelineSize > 1 ? layout.microbatchGroupSizePerVPStage : 1)

    var order: [Int] = []
    var samplesOf: [Int: [Int]] = [:]
    for (position, id) in rolloutIds.enumerated() {
        if samplesOf[id] == nil { order.append(id) }
        samplesOf[id, default: []].append(position)
    }
    let numSteps = order.count / globalBatchSize
    guard numSteps >= 1 else { throw .scheduling("\(order.count) rollouts are fewer than the global batch size \(globalBatchSize)") }

    var schedule = DPSchedule(partitions: Array(repeating: [], count: dp), microBatchIndices: Array(repeating: [], count: dp), numMicrobatches: [], globalBatchSizes: [])
    for step in 0..<numSteps {
        let sampleIndices = order[step * globalBatchSize..<(step + 1) * globalBatchSize].flatMap { samplesOf[$0] ?? [] }
        let lengths = sampleIndices.map { totalLengths[$0] }
        schedule.globalBatchSizes.append(globalBatchSize)
        guard sampleIndices.count >= dp else { throw .scheduling("step \(step): \(sampleIndices.count) samples < \(dp) data-parallel ranks") }

        var bins: [[Int]]
        switch batching {
        case .dynamic:
            let cap = capacity ?? 1
            if balanceByFlops, let flops {
                let total = lengths.reduce(0, +)
                let count = max(1, (total + cap - 1) / cap)
                if count >= lengths.count {
                    bins = lengths.indices.map { [$0] }
                } else {
                    bins = try balancedPartitions(weights: lengths.map { flops.forwardFlops(sequenceLength: $0) }, partitions: count, equalSize: false)
                }
            } else {
                bins = firstFitPack(lengths: lengths, capacity: cap)
            }
        case .fixed(let size):
            bins = stride(from: 0, to: lengths.count, by: size).map { Array($0..<min($0 + size, lengths.count)) }
        }

        let target = max((bins.count + alignTo - 1) / alignTo * alignTo, alignTo)
        if target != bins.count {
            guard case .dynamic = batching else {
                throw .scheduling("step \(step): \(bins.count) micro-batches of \(sampleIndices.count) samples is not a multiple of dp · mb_group = \(alignTo); make step size % (dp · micro_batch_size · mb_group) == 0")
            }
            expandBinsBySplitting(&bins, targetCount: target, lengths: lengths)
            guard bins.count == target else {
                throw .scheduling("step \(step): only \(bins.count) micro-batches after splitting every bin, need \(target) (\(sampleIndices.count) samples)")
            }
        }
        let perRank = bins.count / dp
        schedule.numMicrobatches.append(perRank)

        let rankBins: [[Int]]
        if balanceData, let flops {
            let sampleFlops = lengths.map { flops.forwardFlops(sequenceLength: $0) }
            let binFlops = bins.map { bin in bin.reduce(0.0) { $0 + sampleFlops[$1] } }
            rankBins = try balancedPartitions(weights: binFlops, partitions: dp, equalSize: true)
        } else {
            rankBins = (0..<dp).map { Array(stride(from: $0, to: bins.count, by: dp)) }
        }
        for rank in 0..<dp {
            for binIndex in rankBins[rank] {
                let locals = bins[binIndex]
                let start = schedule.partitions[rank].count
                schedule.partitions[rank].append(contentsOf: locals.map { sampleIndices[$0] })
                schedule.microBatchIndices[rank].append(Array(start..<start + locals.count))
            }
        }
    }
    return schedule
}
