#if canImport(Glibc)
import Glibc
#endif

/// How one row of logits becomes a token: the parameters of `Backend.sampleTokens`.
///
/// The definition, which every backend implements (`reference` is the CPU's):
/// - Temperature 0 is greedy: the first index of the largest logit, with its log-prob at T = 1.
/// - Otherwise `p = softmax(z / T)` over the whole vocabulary, and the log-prob reported is
///   `z[token] / T - logSumExp(z / T)`, before any truncation (what an RL trainer recomputes).
/// - Truncation keeps the candidates `S`: the `topK` largest logits (ties at the k-th value all kept), then of
///   those the fewest largest whose mass reaches `topP` of theirs (ties at the boundary kept), then those with
///   `p >= minP * max(p)`. Without truncation `S` is the whole vocabulary.
/// - The token is the first `j` of `S`, in vocabulary order, whose cumulative mass exceeds
///   `uniform * mass(S)` (masses in fp64). The caller draws `uniform` from the sequence's own seeded
///   generator, so a seed fixes the tokens on every backend.
///
/// The candidate set and the distribution over it are those of the engine's host `Sampler`; only the order in
/// which the cumulative mass is walked (vocabulary order here, probability order there) differs, which maps
/// the same `uniform` to another token of the same distribution.
public struct TokenSampling: Sendable, Equatable {
    public var temperature: Float
    /// 0 or a value of at least the vocabulary size keeps every token.
    public var topK: Int
    public var topP: Double
    public var minP: Double
    /// Uniform in [0, 1); unused by greedy rows.
    public var uniform: Double

    public init(temperature: Float, topK: Int = 0, topP: Double = 1, minP: Double = 0, uniform: Double = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.uniform = uniform
    }

    public var isGreedy: Bool { temperature == 0 }

    /// Whether anything beyond temperature restricts the candidates.
    public func truncates(vocabularySize: Int) -> Bool {
        (topK > 0 && topK < vocabularySize) || topP < 1 || minP > 0
    }

    /// The definition above on one host row of fp32 logits.
    public func reference(_ row: UnsafePointer<Float>, count: Int) -> SampledToken {
        let temperature = isGreedy ? 1 : self.temperature
        let logSumExp = SoftmaxStatistics.compute(row, count: count, temperature: temperature).logSumExp
        var best = 0
        for j in 1..<max(count, 1) where row[j] > row[best] { best = j }
        guard !isGreedy else { return SampledToken(token: Int32(best), logprob: row[best] / temperature - logSumExp) }
        let probability = { (j: Int) in Double(expf(row[j] / temperature - logSumExp)) }
        var inSet = [Bool](repeating: true, count: count)
        if truncates(vocabularySize: count) {
            let order = (0..<count).sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }
            var threshold = -Float.infinity
            if topK > 0 && topK < count { threshold = row[order[topK - 1]] }
            if topP < 1 {
                let mass = order.prefix { row[$0] >= threshold }.reduce(0.0) { $0 + probability($1) }
                var cumulative = 0.0
                for j in order where row[j] >= threshold {
                    cumulative += probability(j)
                    if cumulative >= topP * mass {
                        threshold = row[j]
                        break
                    }
                }
            }
            let floor = minP > 0 ? minP * probability(best) : 0
            for j in 0..<count { inSet[j] = row[j] >= threshold && probability(j) >= floor }
        }
        var mass = 0.0
        for j in 0..<count where inSet[j] { mass += probability(j) }
        let target = uniform * mass
        var cumulative = 0.0, token = best
        for j in 0..<count where inSet[j] {
            cumulative += probability(j)
            if cumulative > target {
                token = j
                break
            }
        }
        return SampledToken(token: Int32(token), logprob: row[token] / temperature - logSumExp)
    }
}

/// A sampled token and its log-prob (see `TokenSampling`).
public struct SampledToken: Sendable, Equatable {
    public var token: Int32
    public var logprob: Float

    public init(token: Int32, logprob: Float) {
        self.token = token
        self.logprob = logprob
    }
}

/// Sampling results of `Backend.sampleTokensDeferred` that the host has not read yet.
public protocol DeferredSamples: AnyObject {
    /// The sampled tokens, i32 `[rows]` on the backend's device, in row order.
    var tokens: Tensor { get }
    /// Waits until the sampling is done (not the work queued after it) and returns each row's token and
    /// log-prob.
    func results() throws -> [SampledToken]
}

/// Samples the host already has: what `sampleTokensDeferred` returns on backends that sample at once.
public final class ReadySamples: DeferredSamples {
    public let tokens: Tensor
    private let values: [SampledToken]

    public init(_ values: [SampledToken], tokens: Tensor) {
        self.values = values
        self.tokens = tokens
    }

    public func results() throws -> [SampledToken] { values }
}
