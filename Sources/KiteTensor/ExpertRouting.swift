/// How a mixture-of-experts router turns a row of logits into `topK` experts and their gate weights.
///
/// The three routers Kite reads from Hugging Face checkpoints are settings of this one procedure:
/// - Qwen3-MoE (and Mixtral): `softmax`, no groups, `normalize` = `norm_topk_prob`, scale 1.
/// - DeepSeek-V2: `softmax`, `greedy` or group-limited with each group scored by its best expert (`max`),
///   no normalisation, scale `routed_scaling_factor`.
/// - DeepSeek-V3/R1: `sigmoid`; the expert choice adds `e_score_correction_bias` to the scores, groups are
///   scored by the sum of their two best (biased) scores, `topGroups` groups stay eligible; the gate weights
///   are the unbiased scores of the chosen experts, renormalised (`+ 1e-20`) and times `routed_scaling_factor`.
public struct RoutingParameters: Sendable, Equatable {
    public enum Scoring: String, Sendable {
        case softmax, sigmoid
    }

    /// How a group of experts is scored when only `topGroups` groups may be chosen from.
    public enum GroupScore: String, Sendable {
        /// The group's best expert score (DeepSeek-V2 `group_limited_greedy`).
        case max
        /// The sum of the group's two best scores (DeepSeek-V3).
        case sumOfTopTwo
    }

    public var scoring: Scoring
    /// Experts per token.
    public var topK: Int
    /// Expert groups (`n_group`); 1 puts every expert in one group.
    public var groups: Int
    /// Groups a token may choose experts from (`topk_group`).
    public var topGroups: Int
    public var groupScore: GroupScore
    /// Divide the chosen scores by their sum (plus `normalizationEpsilon`).
    public var normalize: Bool
    public var normalizationEpsilon: Float
    /// Multiplies the final gate weights (`routed_scaling_factor`).
    public var scale: Float

    public init(
        scoring: Scoring, topK: Int, groups: Int = 1, topGroups: Int = 1, groupScore: GroupScore = .max, normalize: Bool,
        normalizationEpsilon: Float = 0, scale: Float = 1
    ) {
        self.scoring = scoring
        self.topK = topK
        self.groups = groups
        self.topGroups = topGroups
        self.groupScore = groupScore
        self.normalize = normalize
        self.normalizationEpsilon = normalizationEpsilon
        self.scale = scale
    }

    /// Checks the parameters against `experts` experts; `operation` names the caller in the error.
    public func validate(experts: Int, operation: String) throws(KiteTensorError) {
        guard topK >= 1, groups >= 1, topGroups >= 1, topGroups <= groups, experts % groups == 0 else {
            throw .invalidArgument(operation: operation, detail: "top-k \(topK), \(groups) groups (\(topGroups) chosen) for \(experts) experts: need top-k >= 1 and groups dividing the experts")
        }
        guard topK <= topGroups * (experts / groups) else {
            throw .invalidArgument(operation: operation, detail: "top-k \(topK) exceeds the \(topGroups * (experts / groups)) experts of \(topGroups) groups")
        }
        if groups > 1 && groupScore == .sumOfTopTwo && experts / groups < 2 {
            throw .invalidArgument(operation: operation, detail: "groups of one expert cannot be scored by their two best experts")
        }
    }
}

extension RoutingParameters {
    /// Checks experts given to `routeWeights` (row-major `[tokens, topK]`): every index in `0 ..< experts`
    /// and no index twice in a row. The first offence throws, naming its flat position.
    public func validateExperts(_ chosen: UnsafeBufferPointer<Int32>, experts: Int, operation: String) throws(KiteTensorError) {
        let k = topK
        for position in chosen.indices {
            let e = chosen[position]
            guard e >= 0 && Int(e) < experts else {
                throw .indexOutOfRange(operation: operation, index: Int(e), limit: experts, position: position)
            }
            let rowStart = position - position % k
            for earlier in rowStart..<position where chosen[earlier] == e {
                throw .invalidArgument(
                    operation: operation,
                    detail: "token \(position / k) names expert \(e) twice (positions \(earlier) and \(position)); a token's \(k) experts must be distinct")
            }
        }
    }
}

/// Where `dispatch` sent each (token, choice) pair: the rows of the dispatched tensor are the token rows
/// sorted by expert (stably, so by token within an expert), and `combine` uses this to bring them back.
///
/// With expert parallelism, dispatch and combine become all-to-all exchanges that produce and consume the
/// same grouped layout; the expert computation between them does not change.
public struct ExpertDispatch: @unchecked Sendable {
    public let tokenCount: Int
    public let topK: Int
    public let expertCount: Int
    /// Rows each expert receives, in expert order: the group sizes of the grouped products.
    public let tokensPerExpert: [Int]
    /// i32 `[T * k]` on the backend's device: dispatched row `p` is choice `assignments[p] = t * k + j`.
    public let assignments: Tensor
    /// i32 `[T * k]` on the backend's device: choice `t * k + j` went to dispatched row `positions[t * k + j]`.
    public let positions: Tensor

    public init(tokenCount: Int, topK: Int, expertCount: Int, tokensPerExpert: [Int], assignments: Tensor, positions: Tensor) {
        self.tokenCount = tokenCount
        self.topK = topK
        self.expertCount = expertCount
        self.tokensPerExpert = tokensPerExpert
        self.assignments = assignments
        self.positions = positions
    }

    /// Number of dispatched rows, `T * k`.
    public var rowCount: Int { tokenCount * topK }
}

extension ExpertDispatch {
    /// The host half of `dispatch`: a stable counting sort of the (token, choice) pairs `choices` (i32 `[T * k]`,
    /// token-major) by expert. Returns the rows each expert receives, `positions[t * k + j]` (the dispatched row
    /// of choice j of token t) and `assignments[p]` (the choice dispatched row p holds); an expert outside
    /// `0 ..< expertCount` is an error naming its position.
    public static func sortByExpert(_ choices: [Int32], expertCount: Int) throws(KiteTensorError) -> (counts: [Int], positions: [Int32], assignments: [Int32]) {
        var counts = [Int](repeating: 0, count: expertCount)
        for (position, e) in choices.enumerated() {
            guard e >= 0 && Int(e) < expertCount else {
                throw .indexOutOfRange(operation: "dispatch", index: Int(e), limit: expertCount, position: position)
            }
            counts[Int(e)] += 1
        }
        var next = [Int](repeating: 0, count: expertCount)
        for e in 1..<max(expertCount, 1) { next[e] = next[e - 1] + counts[e - 1] }
        var positions = [Int32](repeating: 0, count: choices.count), assignments = [Int32](repeating: 0, count: choices.count)
        for (choice, e) in choices.enumerated() {
            positions[choice] = Int32(next[Int(e)])
            assignments[next[Int(e)]] = Int32(choice)
            next[Int(e)] += 1
        }
        return (counts, positions, assignments)
    }
}
