#if canImport(Glibc)
import Glibc
#endif

/// Mixture-of-experts on the CPU: routing, dispatch by a counting sort over experts, grouped products (one
/// GEMM per expert over its contiguous rows), and combine.
extension CPUBackend {
    // MARK: Routing

    public func route(logits: Tensor, correctionBias: Tensor?, parameters: RoutingParameters) throws -> (weights: Tensor, experts: Tensor) {
        let (tokens, expertCount) = try routingShape(logits, correctionBias, parameters, "route")
        let k = parameters.topK
        let weights = Tensor(uninitialized: [tokens, k]), experts = Tensor(zeros: [tokens, k], dtype: .i32)
        let (pl, pw, pe) = (logits.floats.baseAddress!, weights.floats.baseAddress!, experts.int32s.baseAddress!)
        let bias = correctionBias.map { Array($0.floats) }
        Parallel.forRanges(count: tokens, threads: tokens * expertCount < 1 << 14 ? 1 : threads) { range in
            var scores = [Float](repeating: 0, count: expertCount)
            for t in range {
                Self.routingScores(pl + t * expertCount, count: expertCount, scoring: parameters.scoring, into: &scores)
                let chosen = Self.chooseExperts(scores: scores, bias: bias, parameters: parameters)
                var gates = chosen.map { scores[$0] }
                if parameters.normalize {
                    let denominator = gates.reduce(0, +) + parameters.normalizationEpsilon
                    gates = gates.map { $0 / denominator }
                }
                for j in 0..<k {
                    pw[t * k + j] = gates[j] * parameters.scale
                    pe[t * k + j] = Int32(chosen[j])
                }
            }
        }
        return (weights, experts)
    }

    public func routeBackward(dWeights: Tensor, logits: Tensor, experts: Tensor, parameters: RoutingParameters) throws -> Tensor {
        let (tokens, expertCount) = try routingShape(logits, nil, parameters, "routeBackward")
        let k = parameters.topK
        try requireFloat32(dWeights, "routeBackward")
        guard dWeights.shape == [tokens, k], experts.shape == [tokens, k], experts.dtype == .i32 else {
            throw KiteTensorError.shapeMismatch(operation: "routeBackward", detail: "dWeights \(dWeights.shape), experts \(experts) for logits \(logits.shape) and top-k \(k)")
        }
        let dLogits = Tensor(zeros: [tokens, expertCount])
        let (pl, pd, pe, po) = (logits.floats.baseAddress!, dWeights.floats.baseAddress!, experts.int32s.baseAddress!, dLogits.floats.baseAddress!)
        for i in 0..<(tokens * k) where pe[i] < 0 || Int(pe[i]) >= expertCount {
            throw KiteTensorError.indexOutOfRange(operation: "routeBackward", index: Int(pe[i]), limit: expertCount, position: i)
        }
        Parallel.forRanges(count: tokens, threads: tokens * expertCount < 1 << 14 ? 1 : threads) { range in
            var scores = [Float](repeating: 0, count: expertCount)
            for t in range {
                Self.routingScores(pl + t * expertCount, count: expertCount, scoring: parameters.scoring, into: &scores)
                let chosen = (0..<k).map { Int(pe[t * k + $0]) }
                let upstream = (0..<k).map { pd[t * k + $0] * parameters.scale }
                // d/d(score of choice j), through the optional renormalisation w_j = u_j / (sum u + eps).
                var dScores = upstream
                if parameters.normalize {
                    let u = chosen.map { scores[$0] }
                    let denominator = u.reduce(0, +) + parameters.normalizationEpsilon
                    let weighted = zip(upstream, u).map { $0 * $1 }.reduce(0, +)
                    dScores = upstream.map { $0 / denominator - weighted / (denominator * denominator) }
                }
                let row = po + t * expertCount
                switch parameters.scoring {
                case .sigmoid:
                    for (j, e) in chosen.enumerated() { row[e] += dScores[j] * scores[e] * (1 - scores[e]) }
                case .softmax:
                    // d softmax: s_e * (g_e - sum_c g_c s_c), with g nonzero at the chosen experts only.
                    var dot: Float = 0
                    for (j, e) in chosen.enumerated() { dot += dScores[j] * scores[e] }
                    for e in 0..<expertCount { row[e] = -scores[e] * dot }
                    for (j, e) in chosen.enumerated() { row[e] += scores[e] * dScores[j] }
                }
            }
        }
        return dLogits
    }

    public func routeWeights(logits: Tensor, experts: Tensor, parameters: RoutingParameters) throws -> Tensor {
        let (tokens, expertCount) = try routingShape(logits, nil, parameters, "routeWeights")
        let k = parameters.topK
        try requireHost(experts, "routeWeights")
        guard experts.dtype == .i32, experts.shape == [tokens, k] else {
            throw KiteTensorError.shapeMismatch(operation: "routeWeights", detail: "experts \(experts) for logits \(logits.shape), expected i32 [\(tokens), \(k)]")
        }
        try parameters.validateExperts(UnsafeBufferPointer(experts.int32s), experts: expertCount, operation: "routeWeights")
        let weights = Tensor(uninitialized: [tokens, k])
        let (pl, pw, pe) = (logits.floats.baseAddress!, weights.floats.baseAddress!, experts.int32s.baseAddress!)
        Parallel.forRanges(count: tokens, threads: tokens * expertCount < 1 << 14 ? 1 : threads) { range in
            var scores = [Float](repeating: 0, count: expertCount)
            for t in range {
                Self.routingScores(pl + t * expertCount, count: expertCount, scoring: parameters.scoring, into: &scores)
                // The same arithmetic, in the same order, as `route` after its choice.
                var gates = (0..<k).map { scores[Int(pe[t * k + $0])] }
                if parameters.normalize {
                    let denominator = gates.reduce(0, +) + parameters.normalizationEpsilon
                    gates = gates.map { $0 / denominator }
                }
                for j in 0..<k { pw[t * k + j] = gates[j] * parameters.scale }
            }
        }
        return weights
    }

    func routingShape(_ logits: Tensor, _ bias: Tensor?, _ parameters: RoutingParameters, _ operation: String) throws -> (tokens: Int, experts: Int) {
        try requireFloat32(logits, operation)
        guard logits.rank == 2 else { throw KiteTensorError.shapeMismatch(operation: operation, detail: "logits \(logits.shape), expected [tokens, experts]") }
        let experts = logits.shape[1]
        try parameters.validate(experts: experts, operation: operation)
        if let bias {
            try requireFloat32(bias, operation)
            guard bias.shape == [experts] else { throw KiteTensorError.shapeMismatch(operation: operation, detail: "correction bias \(bias.shape) for \(experts) experts") }
        }
        return (logits.shape[0], experts)
    }

    /// Softmax of the row, or the sigmoid of each logit, in fp32.
    static func routingScores(_ logits: UnsafePointer<Float>, count: Int, scoring: RoutingParameters.Scoring, into scores: inout [Float]) {
        switch scoring {
        case .sigmoid:
            for e in 0..<count { scores[e] = 1 / (1 + expf(-logits[e])) }
        case .softmax:
            var maximum = -Float.infinity
            for e in 0..<count { maximum = max(maximum, logits[e]) }
            var sum: Float = 0
            for e in 0..<count {
                scores[e] = expf(logits[e] - maximum)
                sum += scores[e]
            }
            for e in 0..<count { scores[e] /= sum }
        }
    }

    /// The chosen experts in descending order of their (biased) score; ties go to the lower index.
    static func chooseExperts(scores: [Float], bias: [Float]?, parameters: RoutingParameters) -> [Int] {
        let count = scores.count
        let choice = bias.map { bias in (0..<count).map { scores[$0] + bias[$0] } } ?? scores
        var eligible = [Bool](repeating: true, count: count)
        if parameters.groups > 1 {
            let size = count / parameters.groups
            let groupScores = (0..<parameters.groups).map { g -> Float in
                let members = choice[(g * size)..<((g + 1) * size)]
                switch parameters.groupScore {
                case .max: return members.max() ?? 0
                case .sumOfTopTwo:
                    let best = top(Array(members), 2)
                    return best.reduce(0) { $0 + members[members.startIndex + $1] }
                }
            }
            let kept = Set(top(groupScores, parameters.topGroups))
            for e in 0..<count where !kept.contains(e / size) { eligible[e] = false }
        }
        let masked = (0..<count).map { eligible[$0] ? choice[$0] : -Float.infinity }
        return top(masked, parameters.topK)
    }

    /// Indices of the `k` largest values, largest first, ties to the lower index.
    static func top(_ values: [Float], _ k: Int) -> [Int] {
        var chosen: [Int] = []
        chosen.reserveCapacity(k)
        var taken = [Bool](repeating: false, count: values.count)
        for _ in 0..<min(k, values.count) {
            var best = -1
            for i in values.indices where !taken[i] && (best < 0 || values[i] > values[best]) { best = i }
            taken[best] = true
            chosen.append(best)
        }
        return chosen
    }

    // MARK: Dispatch and combine

    public func dispatch(_ x: Tensor, experts: Tensor, expertCount: Int) throws -> (rows: Tensor, plan: ExpertDispatch) {
        try requireFloat32(x, "dispatch")
        try requireHost(experts, "dispatch")
        guard x.rank == 2, experts.dtype == .i32, experts.rank == 2, experts.shape[0] == x.shape[0], expertCount >= 1 else {
            throw KiteTensorError.shapeMismatch(operation: "dispatch", detail: "input \(x.shape), experts \(experts), \(expertCount) experts; expected [T, D], i32 [T, k]")
        }
        let (tokens, k, width) = (x.shape[0], experts.shape[1], x.shape[1])
        let (counts, positionList, assignmentList) = try ExpertDispatch.sortByExpert(Array(experts.int32s), expertCount: expertCount)
        let assignments = Tensor(int32: assignmentList), positions = Tensor(int32: positionList)
        let pa = assignments.int32s
        let rows = Tensor(uninitialized: [tokens * k, width])
        let (px, pr) = (x.floats.baseAddress!, rows.floats.baseAddress!)
        Parallel.forRanges(count: tokens * k, threads: rows.count < 1 << 16 ? 1 : threads) { range in
            for p in range { (pr + p * width).update(from: px + (Int(pa[p]) / k) * width, count: width) }
        }
        let plan = ExpertDispatch(tokenCount: tokens, topK: k, expertCount: expertCount, tokensPerExpert: counts, assignments: assignments, positions: positions)
        return (rows, plan)
    }

    public func combine(_ rows: Tensor, weights: Tensor?, plan: ExpertDispatch) throws -> Tensor {
        try requireFloat32(rows, "combine")
        let (tokens, k) = (plan.tokenCount, plan.topK)
        guard rows.rank == 2, rows.shape[0] == plan.rowCount else {
            throw KiteTensorError.shapeMismatch(operation: "combine", detail: "rows \(rows.shape) for \(plan.rowCount) dispatched rows")
        }
        if let weights {
            try requireFloat32(weights, "combine")
            guard weights.shape == [tokens, k] else { throw KiteTensorError.shapeMismatch(operation: "combine", detail: "weights \(weights.shape), expected [\(tokens), \(k)]") }
        }
        let width = rows.shape[1]
        let output = Tensor(zeros: [tokens, width])
        let (pr, po, positions) = (rows.floats.baseAddress!, output.floats.baseAddress!, plan.positions.int32s)
        let pw = weights?.floats.baseAddress
        Parallel.forRanges(count: tokens, threads: output.count < 1 << 15 ? 1 : threads) { range in
            for t in range {
                let target = po + t * width
                for j in 0..<k {
                    let source = pr + Int(positions[t * k + j]) * width
                    let w = pw?[t * k + j] ?? 1
                    for i in 0..<width { target[i] += w * source[i] }
                }
            }
        }
        return output
    }

    public func combineBackward(dOutput: Tensor, rows: Tensor, weights: Tensor, plan: ExpertDispatch) throws -> (dRows: Tensor, dWeights: Tensor) {
        for (name, tensor) in [("dOutput", dOutput), ("rows", rows), ("weights", weights)] {
            try requireFloat32(tensor, "combineBackward")
            guard tensor.rank == 2 else { throw KiteTensorError.shapeMismatch(operation: "combineBackward", detail: "\(name) \(tensor.shape), expected rank 2") }
        }
        let (tokens, k, width) = (plan.tokenCount, plan.topK, rows.shape[1])
        guard dOutput.shape == [tokens, width], rows.shape[0] == plan.rowCount, weights.shape == [tokens, k] else {
            throw KiteTensorError.shapeMismatch(operation: "combineBackward", detail: "dOutput \(dOutput.shape), rows \(rows.shape), weights \(weights.shape) for \(tokens) tokens of \(k) experts")
        }
        let dRows = Tensor(uninitialized: rows.shape), dWeights = Tensor(uninitialized: [tokens, k])
        let (pd, pr, pw, pdr, pdw) = (dOutput.floats.baseAddress!, rows.floats.baseAddress!, weights.floats.baseAddress!, dRows.floats.baseAddress!, dWeights.floats.baseAddress!)
        let positions = plan.positions.int32s
        Parallel.forRanges(count: tokens, threads: rows.count < 1 << 15 ? 1 : threads) { range in
            for t in range {
                let upstream = pd + t * width
                for j in 0..<k {
                    let p = Int(positions[t * k + j])
                    let (row, target, w) = (pr + p * width, pdr + p * width, pw[t * k + j])
                    var dot: Float = 0
                    for i in 0..<width {
                        dot += upstream[i] * row[i]
                        target[i] = w * upstream[i]
                    }
                    pdw[t * k + j] = dot
                }
            }
        }
        return (dRows, dWeights)
    }

    // MARK: Grouped products

    public func groupedMatmul(_ x: Tensor, weights: [Tensor], groupSizes: [Int], transposeWeights: Bool) throws -> Tensor {
        try requireFloat32(x, "groupedMatmul")
        let (n, k, m) = try groupedShape(x, weights, groupSizes, transposeWeights, "groupedMatmul")
        let output = Tensor(uninitialized: [n, m])
        let (px, po) = (x.floats.baseAddress!, output.floats.baseAddress!)
        let offsets = groupSizes.reduce(into: [0]) { $0.append($0.last! + $1) }
        try runGroups(groupSizes, work: { 2 * $0 * m * k }) { group, threads in
            let rows = groupSizes[group]
            let pw = UnsafePointer(weights[group].floats.baseAddress!)
            GEMM.sgemm(transposeA: false, transposeB: transposeWeights, m: rows, n: m, k: k, alpha: 1,
                       a: px + offsets[group] * k, lda: k, b: pw, ldb: transposeWeights ? k : m,
                       beta: 0, c: po + offsets[group] * m, ldc: m, threads: threads)
        }
        return output
    }

    public func groupedMatmulWeightGradient(dOutput: Tensor, input: Tensor, groupSizes: [Int], weightGradients: [Tensor]) throws {
        try requireFloat32(dOutput, "groupedMatmulWeightGradient")
        try requireFloat32(input, "groupedMatmulWeightGradient")
        let (n, k, m) = try groupedShape(input, weightGradients, groupSizes, true, "groupedMatmulWeightGradient")
        guard dOutput.shape == [n, m] else {
            throw KiteTensorError.shapeMismatch(operation: "groupedMatmulWeightGradient", detail: "dOutput \(dOutput.shape), expected [\(n), \(m)]")
        }
        let (pd, px) = (dOutput.floats.baseAddress!, input.floats.baseAddress!)
        let offsets = groupSizes.reduce(into: [0]) { $0.append($0.last! + $1) }
        try runGroups(groupSizes, work: { 2 * $0 * m * k }) { group, threads in
            GEMM.sgemm(transposeA: true, transposeB: false, m: m, n: k, k: groupSizes[group], alpha: 1,
                       a: pd + offsets[group] * m, lda: m, b: px + offsets[group] * k, ldb: k,
                       beta: 1, c: weightGradients[group].floats.baseAddress!, ldc: k, threads: threads)
        }
    }

    /// Rows, inner and output widths of a grouped product; checks every weight's shape and, for non-empty
    /// groups, its dtype.
    func groupedShape(_ x: Tensor, _ weights: [Tensor], _ sizes: [Int], _ transposed: Bool, _ operation: String) throws -> (n: Int, k: Int, m: Int) {
        let shape = try OperationShapes.groupedProduct(x, weights, sizes, transposed: transposed, operation: operation)
        for (group, weight) in weights.enumerated() where sizes[group] > 0 { try requireFloat32(weight, operation) }
        return shape
    }

    /// Runs `body(group, threads)` for every non-empty group: large groups one after another with every
    /// thread each, many small ones side by side with a thread each.
    func runGroups(_ sizes: [Int], work: (Int) -> Int, _ body: (Int, Int) -> Void) throws {
        let groups = sizes.indices.filter { sizes[$0] > 0 }
        guard !groups.isEmpty else { return }
        let largest = groups.map { work(sizes[$0]) }.max() ?? 0
        if threads == 1 || largest >= 8_000_000 || groups.count == 1 {
            for group in groups { body(group, threads) }
            return
        }
        // Balance by rows: each thread takes a contiguous run of groups holding about 1/threads of the rows.
        let total = groups.reduce(0) { $0 + sizes[$1] }
        var runs: [[Int]] = Array(repeating: [], count: threads)
        var accumulated = 0
        for group in groups {
            let run = min(threads - 1, accumulated * threads / max(total, 1))
            runs[run].append(group)
            accumulated += sizes[group]
        }
        Parallel.forEach(parts: threads) { part in
            for group in runs[part] { body(group, 1) }
        }
    }
}
