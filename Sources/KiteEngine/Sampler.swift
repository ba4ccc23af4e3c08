import KiteTensor
#if canImport(Glibc)
import Glibc
#endif

/// Picks the next token from one row of logits and reports its log-prob.
///
/// The log-prob is taken under `log_softmax(logits / T)` over the whole vocabulary, before top-k/top-p/min-p
/// truncation (what an RL trainer recomputes), using the same `SoftmaxStatistics` as the trainer's fused
/// head. Greedy requests (T = 0) report log-probs at T = 1.
enum Sampler {
    struct Choice {
        var token: Int32
        var logprob: Float
        var alternatives: [TokenLogprob]
    }

    static func sample(
        logits row: UnsafePointer<Float>, vocabularySize: Int, parameters: SamplingParameters,
        generator: inout SeededGenerator, topLogprobs: Int
    ) -> Choice {
        let greedy = parameters.temperature == 0
        let temperature = Float(greedy ? 1 : parameters.temperature)
        let logSumExp = SoftmaxStatistics.compute(row, count: vocabularySize, temperature: temperature).logSumExp
        let token: Int32
        if greedy {
            token = argmax(row, count: vocabularySize)
        } else {
            token = draw(row, count: vocabularySize, temperature: temperature, logSumExp: logSumExp, parameters: parameters, generator: &generator)
        }
        let logprob = row[Int(token)] / temperature - logSumExp
        var alternatives: [TokenLogprob] = []
        if topLogprobs > 0 {
            alternatives = largest(row, count: vocabularySize, k: topLogprobs).map {
                TokenLogprob(token: $0, logprob: row[Int($0)] / temperature - logSumExp)
            }
        }
        return Choice(token: token, logprob: logprob, alternatives: alternatives)
    }

    /// The first index of the largest logit.
    static func argmax(_ row: UnsafePointer<Float>, count: Int) -> Int32 {
        var best = 0
        for j in 1..<count where row[j] > row[best] { best = j }
        return Int32(best)
    }

    /// Indices of the `k` largest logits, largest first (ties: lower index first).
    static func largest(_ row: UnsafePointer<Float>, count: Int, k: Int) -> [Int32] {
        let k = min(k, count)
        var heap: [Int32] = []
        heap.reserveCapacity(k + 1)
        // A small sorted buffer is fast for the k (<= a few hundred) that requests ask for.
        for j in 0..<count {
            let value = row[j]
            if heap.count == k, let last = heap.last, !(value > row[Int(last)]) { continue }
            var position = heap.count
            while position > 0 && value > row[Int(heap[position - 1])] { position -= 1 }
            heap.insert(Int32(j), at: position)
            if heap.count > k { heap.removeLast() }
        }
        return heap
    }

    /// Samples from `softmax(row / T)` restricted by top-k, then top-p, then min-p, renormalised.
    static func draw(
        _ row: UnsafePointer<Float>, count: Int, temperature: Float, logSumExp: Float,
        parameters: SamplingParameters, generator: inout SeededGenerator
    ) -> Int32 {
        let truncates = (parameters.topK > 0 && parameters.topK < count) || parameters.topP < 1 || parameters.minP > 0
        let u = generator.nextUnitDouble()
        if !truncates {
            // Inverse CDF over the full distribution, accumulated in fp64.
            var total = 0.0
            for j in 0..<count { total += Double(expf(row[j] / temperature - logSumExp)) }
            let target = u * total
            var cumulative = 0.0
            for j in 0..<count {
                cumulative += Double(expf(row[j] / temperature - logSumExp))
                if cumulative > target { return Int32(j) }
            }
            return argmax(row, count: count)
        }
        var candidates: [Int32]
        if parameters.topK > 0 && parameters.topK < count {
            candidates = largest(row, count: count, k: parameters.topK)
        } else {
            candidates = (0..<Int32(count)).sorted { row[Int($0)] > row[Int($1)] || (row[Int($0)] == row[Int($1)] && $0 < $1) }
        }
        var probabilities = candidates.map { Double(expf(row[Int($0)] / temperature - logSumExp)) }
        if parameters.topP < 1 {
            // Keep the smallest prefix whose mass reaches top_p (of the renormalised top-k mass).
            let mass = probabilities.reduce(0, +)
            var cumulative = 0.0
            var keep = probabilities.count
            for (i, p) in probabilities.enumerated() {
                cumulative += p
                if cumulative >= parameters.topP * mass {
                    keep = i + 1
                    break
                }
            }
            candidates.removeSubrange(keep...)
            probabilities.removeSubrange(keep...)
        }
        if parameters.minP > 0, let top = probabilities.first {
            let threshold = parameters.minP * top
            let keep = probabilities.firstIndex { $0 < threshold } ?? probabilities.count
            candidates.removeSubrange(max(keep, 1)...)
            probabilities.removeSubrange(max(keep, 1)...)
        }
        let target = u * probabilities.reduce(0, +)
        var cumulative = 0.0
        for (i, p) in probabilities.enumerated() {
            cumulative += p
            if cumulative > target { return candidates[i] }
        }
        return candidates[0]
    }
}
