import Foundation
import Testing
@testable import KiteTensor

/// The column ops of latent attention and the mixture-of-experts ops on the CPU reference, against direct
/// implementations of their definitions (exact for the copies; 1e-6 relative for products) and their
/// backwards against central finite differences (as in `OperationTests`, 2e-3 relative).
struct ExpertOperationTests {
    let backend = CPUBackend(threads: 2)

    // MARK: Columns

    @Test func splitAndConcatenateAreInversesAndBroadcastSumsBack() throws {
        var random = SeededRandom(seed: 21)
        let x = random.tensor([3, 2, 7])
        let parts = try backend.splitColumns(x, widths: [4, 3], summingGroups: nil)
        #expect(parts.map(\.shape) == [[3, 2, 4], [3, 2, 3]])
        #expect(try backend.concatenateColumns(parts).toFloats() == x.toFloats())
        let xv = x.toFloats()
        #expect(parts[1].toFloats() == (0..<6).flatMap { row in (4..<7).map { xv[row * 7 + $0] } })

        // A [3, 1, 2] part broadcast over the 2 heads of a [3, 2, 5] part; its gradient sums the heads back.
        let shared = random.tensor([3, 1, 2])
        let joined = try backend.concatenateColumns([parts[0].reshaped([3, 2, 4]), shared])
        #expect(joined.shape == [3, 2, 6])
        let jv = joined.toFloats(), sv = shared.toFloats()
        for t in 0..<3 { for h in 0..<2 { for i in 0..<2 { #expect(jv[(t * 2 + h) * 6 + 4 + i] == sv[t * 2 + i]) } } }
        let back = try backend.splitColumns(joined, widths: [4, 2], summingGroups: [1, 2])
        #expect(back[1].shape == [3, 2])
        #expect(back[1].toFloats() == sv.map { 2 * $0 })
        #expect(throws: KiteTensorError.self) { try backend.splitColumns(x, widths: [4, 4], summingGroups: nil) }
        #expect(throws: KiteTensorError.self) { try backend.concatenateColumns([Tensor(zeros: [3, 2]), Tensor(zeros: [2, 2])]) }
    }

    @Test func gatherColumnsPermutesAndSwapExchangesLeadingDimensions() throws {
        var random = SeededRandom(seed: 22)
        let x = random.tensor([2, 3, 6])
        let deinterleave = [0, 2, 4, 1, 3, 5], interleave = [0, 3, 1, 4, 2, 5]
        let gathered = try backend.gatherColumns(x, columns: deinterleave)
        let xv = x.toFloats(), gv = gathered.toFloats()
        for row in 0..<6 { for j in 0..<6 { #expect(gv[row * 6 + j] == xv[row * 6 + deinterleave[j]]) } }
        #expect(try backend.gatherColumns(gathered, columns: interleave).toFloats() == xv)
        #expect(throws: KiteTensorError.self) { try backend.gatherColumns(x, columns: [6]) }

        let swapped = try backend.swapLeadingDimensions(x)
        #expect(swapped.shape == [3, 2, 6])
        let sv = swapped.toFloats()
        for a in 0..<2 { for b in 0..<3 { for c in 0..<6 { #expect(sv[(b * 2 + a) * 6 + c] == xv[(a * 3 + b) * 6 + c]) } } }
        #expect(try backend.swapLeadingDimensions(swapped).toFloats() == xv)
    }

    // MARK: Routing

    /// The three routers, written out for one row in fp64.
    func referenceRoute(_ logits: [Float], bias: [Float]?, _ p: RoutingParameters) -> (experts: [Int], weights: [Double]) {
        let l = logits.map(Double.init)
        let scores: [Double]
        switch p.scoring {
        case .sigmoid: scores = l.map { 1 / (1 + exp(-$0)) }
        case .softmax:
            let m = l.max()!
            let e = l.map { exp($0 - m) }
            scores = e.map { $0 / e.reduce(0, +) }
        }
        let choice = bias.map { b in zip(scores, b).map { $0 + Double($1) } } ?? scores
        let size = l.count / p.groups
        var allowed = Set(0..<l.count)
        if p.groups > 1 {
            let groupScores = (0..<p.groups).map { g -> Double in
                let members = choice[(g * size)..<((g + 1) * size)].sorted(by: >)
                return p.groupScore == .max ? members[0] : members[0] + members[1]
            }
            let kept = Set((0..<p.groups).sorted { groupScores[$0] > groupScores[$1] }.prefix(p.topGroups))
            allowed = Set((0..<l.count).filter { kept.contains($0 / size) })
        }
        let experts = Array(allowed.sorted { choice[$0] > choice[$1] }.prefix(p.topK))
        var weights = experts.map { scores[$0] }
        if p.normalize {
            let sum = weights.reduce(0, +) + Double(p.normalizationEpsilon)
            weights = weights.map { $0 / sum }
        }
        return (experts, weights.map { $0 * Double(p.scale) })
    }

    static let routers: [RoutingParameters] = [
        RoutingParameters(scoring: .softmax, topK: 2, normalize: true),
        RoutingParameters(scoring: .softmax, topK: 3, normalize: false),
        RoutingParameters(scoring: .softmax, topK: 2, groups: 4, topGroups: 2, groupScore: .max, normalize: false, scale: 1.5),
        RoutingParameters(scoring: .sigmoid, topK: 3, groups: 4, topGroups: 2, groupScore: .sumOfTopTwo, normalize: true, normalizationEpsilon: 1e-20, scale: 2.5),
        RoutingParameters(scoring: .sigmoid, topK: 2, normalize: false),
    ]

    @Test(arguments: routers)
    func routeChoosesAndWeighsAsItsDefinition(parameters: RoutingParameters) throws {
        var random = SeededRandom(seed: 23)
        let (tokens, experts) = (6, 8)
        let logits = random.tensor([tokens, experts], scale: 3)
        let bias = parameters.scoring == .sigmoid ? random.tensor([experts], scale: 0.3) : nil
        let (weights, chosen) = try backend.route(logits: logits, correctionBias: bias, parameters: parameters)
        #expect(weights.shape == [tokens, parameters.topK] && chosen.dtype == .i32)
        let lv = logits.toFloats(), wv = weights.toFloats(), ev = chosen.toInt32s()
        for t in 0..<tokens {
            let expected = referenceRoute(Array(lv[(t * experts)..<((t + 1) * experts)]), bias: bias?.toFloats(), parameters)
            let k = parameters.topK
            #expect(ev[(t * k)..<((t + 1) * k)].map(Int.init) == expected.experts, "token \(t)")
            for j in 0..<k { #expect(abs(Double(wv[t * k + j]) - expected.weights[j]) < 1e-6 * max(1, expected.weights[j])) }
        }
    }

    @Test(arguments: routers)
    func routeBackwardMatchesFiniteDifferences(parameters: RoutingParameters) throws {
        var random = SeededRandom(seed: 24)
        let logits = random.tensor([5, 8], scale: 3)
        let bias = parameters.scoring == .sigmoid ? random.tensor([8], scale: 0.3) : nil
        let (_, experts) = try backend.route(logits: logits, correctionBias: bias, parameters: parameters)
        let w = random.floats(5 * parameters.topK)
        let dLogits = try backend.routeBackward(dWeights: Tensor(w, shape: [5, parameters.topK]), logits: logits, experts: experts, parameters: parameters)
        // The choice is held fixed in the loss (it is not differentiable); small steps keep it unchanged anyway.
        let loss = { () throws -> Double in
            let (weights, chosen) = try self.backend.route(logits: logits, correctionBias: bias, parameters: parameters)
            guard chosen.toInt32s() == experts.toInt32s() else { return .nan }
            return weightedSum(weights, w)
        }
        let numeric = try finiteDifferenceGradient(logits, indices: Array(0..<40), step: 1e-3, loss)
        #expect(!numeric.contains { $0.isNaN })
        #expect(maxRelativeError(dLogits.toFloats(), numeric) < 2e-3)
    }

    @Test(arguments: routers)
    func routeWeightsOfRoutesOwnExpertsAreRoutesWeightsToTheBit(parameters: RoutingParameters) throws {
        var random = SeededRandom(seed: 26)
        let logits = random.tensor([9, 8], scale: 3)
        let bias = parameters.scoring == .sigmoid ? random.tensor([8], scale: 0.3) : nil
        let (weights, experts) = try backend.route(logits: logits, correctionBias: bias, parameters: parameters)
        let replayed = try backend.routeWeights(logits: logits, experts: experts, parameters: parameters)
        #expect(replayed.shape == weights.shape)
        #expect(replayed.toFloats().map(\.bitPattern) == weights.toFloats().map(\.bitPattern))
    }

    /// Experts route would not choose (here the lowest-scoring ones, in reverse order) get the weights the
    /// definition gives them: their unbiased scores, renormalised over the row and scaled (fp64 reference).
    @Test(arguments: routers)
    func routeWeightsOfOtherExpertsFollowTheDefinition(parameters: RoutingParameters) throws {
        var random = SeededRandom(seed: 27)
        let (tokens, expertCount, k) = (5, 8, parameters.topK)
        let logits = random.tensor([tokens, expertCount], scale: 3)
        let lv = logits.toFloats().map(Double.init)
        var chosen: [Int32] = []
        for t in 0..<tokens {
            let row = Array(lv[(t * expertCount)..<((t + 1) * expertCount)])
            chosen += (0..<expertCount).sorted { row[$0] < row[$1] }.prefix(k).reversed().map(Int32.init)
        }
        let weights = try backend.routeWeights(logits: logits, experts: Tensor(int32: chosen, shape: [tokens, k]), parameters: parameters).toFloats()
        for t in 0..<tokens {
            let row = Array(lv[(t * expertCount)..<((t + 1) * expertCount)])
            let scores: [Double]
            switch parameters.scoring {
            case .sigmoid: scores = row.map { 1 / (1 + exp(-$0)) }
            case .softmax:
                let e = row.map { exp($0 - row.max()!) }
                scores = e.map { $0 / e.reduce(0, +) }
            }
            var gates = (0..<k).map { scores[Int(chosen[t * k + $0])] }
            if parameters.normalize {
                let sum = gates.reduce(0, +) + Double(parameters.normalizationEpsilon)
                gates = gates.map { $0 / sum }
            }
            for j in 0..<k {
                let expected = gates[j] * Double(parameters.scale)
                #expect(abs(Double(weights[t * k + j]) - expected) < 1e-6 * max(1, expected), "token \(t) choice \(j)")
            }
        }
    }

    @Test func routeWeightsRejectsExpertsOutOfRangeOrRepeated() {
        let parameters = RoutingParameters(scoring: .softmax, topK: 2, normalize: true)
        let logits = Tensor(zeros: [3, 4])
        #expect(throws: KiteTensorError.indexOutOfRange(operation: "routeWeights", index: 4, limit: 4, position: 3)) {
            try backend.routeWeights(logits: logits, experts: Tensor(int32: [0, 1, 2, 4, 3, 0], shape: [3, 2]), parameters: parameters)
        }
        #expect(throws: KiteTensorError.indexOutOfRange(operation: "routeWeights", index: -1, limit: 4, position: 0)) {
            try backend.routeWeights(logits: logits, experts: Tensor(int32: [-1, 1, 2, 3, 3, 0], shape: [3, 2]), parameters: parameters)
        }
        do {
            _ = try backend.routeWeights(logits: logits, experts: Tensor(int32: [0, 1, 2, 2, 3, 0], shape: [3, 2]), parameters: parameters)
            Issue.record("a repeated expert was accepted")
        } catch {
            #expect("\(error)".contains("token 1 names expert 2 twice"))
        }
        #expect(throws: KiteTensorError.self) {
            try backend.routeWeights(logits: logits, experts: Tensor(int32: [0, 1, 2, 3], shape: [2, 2]), parameters: parameters)
        }
        #expect(throws: KiteTensorError.self) {
            try backend.routeWeights(logits: logits, experts: Tensor(int32: [0, 1, 2, 3, 1, 0], shape: [3, 2]).converted(to: .f32), parameters: parameters)
        }
    }

    @Test func routeRejectsImpossibleChoices() {
        #expect(throws: KiteTensorError.self) {
            try backend.route(logits: Tensor(zeros: [2, 8]), correctionBias: nil, parameters: RoutingParameters(scoring: .softmax, topK: 5, groups: 4, topGroups: 2, normalize: false))
        }
        #expect(throws: KiteTensorError.self) {
            try backend.route(logits: Tensor(zeros: [2, 6]), correctionBias: nil, parameters: RoutingParameters(scoring: .softmax, topK: 1, groups: 4, topGroups: 1, normalize: false))
        }
    }

    // MARK: Dispatch, combine, grouped products

    @Test func dispatchSortsByExpertAndCombineBringsRowsBack() throws {
        var random = SeededRandom(seed: 25)
        let x = random.tensor([4, 3])
        let experts = Tensor(int32: [2, 0, 1, 2, 2, 1, 0, 2], shape: [4, 2])
        let (rows, plan) = try backend.dispatch(x, experts: experts, expertCount: 4)
        #expect(plan.tokensPerExpert == [2, 2, 4, 0])
        // Expert 0: tokens 0 and 3; expert 1: tokens 1 and 2; expert 2: tokens 0, 1, 2, 3.
        #expect(plan.assignments.toInt32s() == [1, 6, 2, 5, 0, 3, 4, 7])
        let xv = x.toFloats()
        let order = [0, 3, 1, 2, 0, 1, 2, 3]
        #expect(rows.toFloats() == order.flatMap { xv[($0 * 3)..<($0 * 3 + 3)] })
        for choice in 0..<8 { #expect(plan.assignments.toInt32s()[Int(plan.positions.toInt32s()[choice])] == Int32(choice)) }

        let weights = random.tensor([4, 2])
        let expertRows = random.tensor([8, 3])
        let combined = try backend.combine(expertRows, weights: weights, plan: plan)
        let (wv, rv, positions) = (weights.toFloats(), expertRows.toFloats(), plan.positions.toInt32s())
        var expected = [Float](repeating: 0, count: 12)
        for t in 0..<4 { for j in 0..<2 { for i in 0..<3 { expected[t * 3 + i] += wv[t * 2 + j] * rv[Int(positions[t * 2 + j]) * 3 + i] } } }
        #expect(maxRelativeError(combined.toFloats(), expected) < 1e-6)
        // Unweighted combine is dispatch's adjoint: <dispatch(x), r> = <x, combine(r)>.
        let adjoint = try backend.combine(expertRows, weights: nil, plan: plan)
        #expect(abs(weightedSum(rows, rv) - weightedSum(x, adjoint.toFloats())) < 1e-5)
        #expect(throws: KiteTensorError.self) { try backend.dispatch(x, experts: Tensor(int32: [0, 4, 0, 0, 0, 0, 0, 0], shape: [4, 2]), expertCount: 4) }
    }

    @Test func combineBackwardMatchesFiniteDifferences() throws {
        var random = SeededRandom(seed: 26)
        let x = random.tensor([5, 4])
        let experts = Tensor(int32: [0, 1, 2, 0, 1, 2, 2, 1, 0, 2], shape: [5, 2])
        let (_, plan) = try backend.dispatch(x, experts: experts, expertCount: 3)
        let rows = random.tensor([10, 4]), weights = random.tensor([5, 2])
        let w = random.floats(20)
        let (dRows, dWeights) = try backend.combineBackward(dOutput: Tensor(w, shape: [5, 4]), rows: rows, weights: weights, plan: plan)
        let loss = { weightedSum(try self.backend.combine(rows, weights: weights, plan: plan), w) }
        #expect(maxRelativeError(dRows.toFloats(), try finiteDifferenceGradient(rows, indices: Array(0..<40), loss)) < 2e-3)
        #expect(maxRelativeError(dWeights.toFloats(), try finiteDifferenceGradient(weights, indices: Array(0..<10), loss)) < 2e-3)
    }

    @Test func groupedProductsEqualOneProductPerGroup() throws {
        var random = SeededRandom(seed: 27)
        let sizes = [3, 0, 5, 1]
        let x = random.tensor([9, 6])
        let weights = sizes.map { _ in random.tensor([4, 6]) }
        // The empty group's weight is never read, so it may be of any dtype.
        var mixed = weights
        mixed[1] = Tensor(zeros: [4, 6], dtype: .fp8e4m3)
        let y = try backend.groupedMatmul(x, weights: mixed, groupSizes: sizes, transposeWeights: true)
        var offset = 0
        var expected: [Float] = []
        for (group, size) in sizes.enumerated() {
            if size > 0 { expected += try backend.matmul(x.rows(offset..<(offset + size)), weights[group], transposeA: false, transposeB: true).toFloats() }
            offset += size
        }
        #expect(maxRelativeError(y.toFloats(), expected) < 1e-6)

        // Untransposed weights [K, M], and the weight gradient of the transposed product.
        let dy = random.tensor([9, 4])
        let dx = try backend.groupedMatmul(dy, weights: weights, groupSizes: sizes, transposeWeights: false)
        offset = 0
        expected = []
        for (group, size) in sizes.enumerated() {
            if size > 0 { expected += try backend.matmul(dy.rows(offset..<(offset + size)), weights[group], transposeA: false, transposeB: false).toFloats() }
            offset += size
        }
        #expect(maxRelativeError(dx.toFloats(), expected) < 1e-6)
        let gradients = sizes.map { _ in Tensor(zeros: [4, 6]) }
        try backend.groupedMatmulWeightGradient(dOutput: dy, input: x, groupSizes: sizes, weightGradients: gradients)
        offset = 0
        for (group, size) in sizes.enumerated() {
            let truth = size > 0 ? try backend.matmul(dy.rows(offset..<(offset + size)), x.rows(offset..<(offset + size)), transposeA: true, transposeB: false).toFloats() : [Float](repeating: 0, count: 24)
            #expect(maxRelativeError(gradients[group].toFloats(), truth) < 1e-6)
            offset += size
        }
        #expect(throws: KiteTensorError.self) { try backend.groupedMatmul(x, weights: weights, groupSizes: [3, 0, 5, 2], transposeWeights: true) }
    }

    @Test func manySmallGroupsRunSideBySideWithTheSameResult() throws {
        var random = SeededRandom(seed: 28)
        let sizes = (0..<32).map { $0 % 5 }
        let x = random.tensor([sizes.reduce(0, +), 16])
        let weights = sizes.map { _ in random.tensor([8, 16]) }
        let parallel = try CPUBackend(threads: 4).groupedMatmul(x, weights: weights, groupSizes: sizes, transposeWeights: true)
        let serial = try CPUBackend(threads: 1).groupedMatmul(x, weights: weights, groupSizes: sizes, transposeWeights: true)
        #expect(parallel.toFloats() == serial.toFloats())
    }
}
